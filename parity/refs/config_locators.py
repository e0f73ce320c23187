"""Locators for configuration files: YAML and JSON values by key path, pyproject.toml dependency pins."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from parity.errors import ParityError
from parity.refs.locators import locator
from parity.refs.source import Located, NotLocated, SourceFile

_KEY_SEGMENT = re.compile(
    r"\.?(?:\[(?:(?P<index>-?\d+)|(?P<field>[^=\]]+)=(?P<equals>[^\]]*))\]|(?P<key>[^.\[\]]+))"
)


def parse_key_path(key: str | list[Any]) -> list[Any]:
    """`a.b[2].c[name=x]` (or a list of keys, for keys with dots) -> ['a', 'b', 2, 'c', ('name', 'x')]."""
    if isinstance(key, list):
        return key
    path: list[Any] = []
    position = 0
    while position < len(key):
        match = _KEY_SEGMENT.match(key, position)
        if not match or (position == 0 and key.startswith(".")):
            raise ParityError(f"malformed key path '{key}' at character {position}")
        if match["index"] is not None:
            path.append(int(match["index"]))
        elif match["field"] is not None:
            path.append((match["field"], match["equals"]))
        else:
            path.append(int(match["key"]) if match["key"].isdigit() else match["key"])
        position = match.end()
    return path


def _walk(data: Any, path: list[Any]) -> tuple[Any, list[str | int]]:
    """Follow a key path; returns the value and the path with selectors made concrete indexes."""
    concrete: list[str | int] = []
    for segment in path:
        shown = ".".join(map(str, concrete + [segment]))
        if isinstance(segment, tuple) and isinstance(data, list):
            name, equals = segment
            hits = [
                i for i, item in enumerate(data) if isinstance(item, dict) and str(item.get(name)) == equals
            ]
            if not hits:
                raise NotLocated(f"no item with {name}={equals} at {shown}")
            segment = hits[0]
        elif isinstance(segment, int) and isinstance(data, list):
            if not -len(data) <= segment < len(data):
                raise NotLocated(f"no item {shown}")
            segment %= len(data)
        elif not (isinstance(data, dict) and segment in data):
            raise NotLocated(f"no key {shown}")
        data = data[segment]
        concrete.append(segment)
    return data, concrete


def _yaml_line(node: yaml.Node | None, concrete: list[str | int]) -> int | None:
    """Line of the last key (or item) along a concrete path in a composed YAML tree."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for segment in concrete:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(segment)), None)
            if pair is None:
                return line
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(segment, int):
            node = node.value[segment]
            line = node.start_mark.line + 1
    return line


@locator("yaml_key", "key")
def yaml_key(source: SourceFile, spec: dict[str, Any]) -> Located:
    """A value in a YAML file by key path (`a.b`, `list[2]`, `list[name=x]`)."""
    data, node = source.yaml
    value, concrete = _walk(data, parse_key_path(spec["key"]))
    return Located(value, _yaml_line(node, concrete))


@locator("yaml_document")
def yaml_document(source: SourceFile, spec: dict[str, Any]) -> Located:
    """The whole YAML mapping, with each top-level key's line."""
    data, node = source.yaml
    if not isinstance(data, dict):
        raise NotLocated("the YAML document is not a mapping")
    key_lines = {str(k.value): k.start_mark.line + 1 for k, _ in node.value} if node is not None else {}
    return Located(data, min(key_lines.values(), default=1), key_lines=key_lines)


@locator("json_key", "key")
def json_key(source: SourceFile, spec: dict[str, Any]) -> Located:
    """A value in a JSON file by key path; the line is that of the last key along the path."""
    value, concrete = _walk(source.json, parse_key_path(spec["key"]))
    position, line = 0, 1
    for segment in concrete:
        if not isinstance(segment, str):
            break
        match = re.compile(re.escape(json.dumps(segment)) + r"\s*:").search(source.text, position)
        if match is None:
            break
        position, line = match.end(), source.line_of(match.start())
    return Located(value, line)


_REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")


def _normalized(package: str) -> str:
    return re.sub(r"[-_.]+", "-", package).lower()


@locator("toml_dependency", "package")
def toml_dependency(source: SourceFile, spec: dict[str, Any]) -> Located:
    """The version specifier of a package in pyproject.toml's [project].dependencies ('' when unpinned)."""
    requirements = source.toml.get("project", {}).get("dependencies", [])
    for requirement in requirements:
        match = _REQUIREMENT.match(requirement)
        if match and _normalized(match[1]) == _normalized(spec["package"]):
            offset = source.text.find(requirement)
            line = source.line_of(offset) if offset >= 0 else None
            return Located("".join(match[2].split()), line)
    raise NotLocated(f"{spec['package']} is not in [project].dependencies")
