"""One file of an upstream checkout, read once and parsed lazily (ast, shlex, yaml, json, tomllib), and what
a locator returns from it. Nothing in the checkout is imported or run."""

from __future__ import annotations

import ast
import json
import shlex
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class Located:
    """What a locator found: the value, its 1-based line, and for mappings the line of each key."""

    value: Any
    line: int | None
    detail: str = ""
    key_lines: dict[str, int] = field(default_factory=dict)


class NotLocated(Exception):
    """The locator's target is not in the file (reported as 'missing')."""


@dataclass(frozen=True)
class ShellCommand:
    """One logical shell line (backslash-continuations joined): its words and each word's line."""

    line: int
    words: tuple[str, ...]
    word_lines: tuple[int, ...]


def _shell_words(text: str) -> list[str]:
    """shlex words of one line, comments dropped; a line shlex cannot split falls back to whitespace."""
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


def parse_shell(text: str) -> list[ShellCommand]:
    """Logical command lines of a bash script."""
    commands: list[ShellCommand] = []
    pieces: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.rstrip()
        continued = stripped.endswith("\\")
        pieces.append((number, stripped[:-1] if continued else stripped))
        if continued:
            continue
        words: list[str] = []
        lines: list[int] = []
        for piece_line, piece in pieces:
            piece_words = _shell_words(piece)
            words += piece_words
            lines += [piece_line] * len(piece_words)
        if words:
            commands.append(ShellCommand(line=pieces[0][0], words=tuple(words), word_lines=tuple(lines)))
        pieces = []
    return commands


class _TolerantLoader(yaml.SafeLoader):
    """SafeLoader that reads unknown tags (lm-eval's `!function module.fn`) as plain values."""


def _construct_unknown_tag(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_scalar(node)


_TolerantLoader.add_constructor(None, _construct_unknown_tag)


@dataclass
class SourceFile:
    """One checkout file's text, parsed lazily and at most once per verification."""

    path: str
    text: str

    @cached_property
    def python(self) -> ast.Module:
        try:
            return ast.parse(self.text, filename=self.path)
        except SyntaxError as error:
            raise NotLocated(f"cannot parse as Python: {error.msg} (line {error.lineno})") from None

    @cached_property
    def shell(self) -> list[ShellCommand]:
        return parse_shell(self.text)

    @cached_property
    def yaml(self) -> tuple[Any, yaml.Node | None]:
        try:
            data = yaml.load(self.text, Loader=_TolerantLoader)
            return data, yaml.compose(self.text, Loader=_TolerantLoader)
        except yaml.YAMLError as error:
            raise NotLocated(f"cannot parse as YAML: {one_line(error)}") from None

    @cached_property
    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as error:
            raise NotLocated(f"cannot parse as JSON: {error.msg} (line {error.lineno})") from None

    @cached_property
    def toml(self) -> dict[str, Any]:
        try:
            return tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as error:
            raise NotLocated(f"cannot parse as TOML: {error}") from None

    def line_of(self, offset: int) -> int:
        """1-based line of a character offset."""
        return self.text.count("\n", 0, offset) + 1


def one_line(error: Exception) -> str:
    """An error message on one line."""
    return " ".join(str(error).split())


def read_source(checkout: Path, relative: str) -> SourceFile:
    """Read one file of the checkout, refusing paths that leave it."""
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise NotLocated(f"path '{relative}' leaves the checkout")
    path = checkout / relative
    if not path.is_file():
        raise NotLocated("file not found")
    try:
        return SourceFile(path=relative, text=path.read_text(encoding="utf-8", errors="replace"))
    except OSError as error:
        raise NotLocated(f"cannot read file: {error.strerror}") from None
