"""Locators for Python sources, read with ast (never imported): constants, dataclass defaults, call
arguments and string contents."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from typing import Any

from parity.refs.locators import locator
from parity.refs.source import Located, NotLocated, SourceFile


def _dotted(node: ast.AST) -> list[str]:
    """Name components of a call target: `re.sub` -> [re, sub]; `x["a"].replace` -> [*, replace]."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [*_dotted(node.value), node.attr]
    return ["*"]


def _in_order(nodes: Iterator[ast.AST]) -> list[Any]:
    return sorted(nodes, key=lambda node: (node.lineno, node.col_offset))


def _scope(source: SourceFile, spec: dict[str, Any]) -> ast.AST:
    """The whole module, or the def/class named by the spec's optional `within`."""
    within = spec.get("within")
    if within is None:
        return source.python
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    for node in _in_order(n for n in ast.walk(source.python) if isinstance(n, scopes)):
        if node.name == within:
            return node
    raise NotLocated(f"no def or class '{within}'")


def _python_value(node: ast.expr, spec: dict[str, Any]) -> tuple[Any, str]:
    """A literal's value; a dotted name's last part when `name_tail`; else the source text, flagged."""
    try:
        return ast.literal_eval(node), ""
    except (ValueError, TypeError):
        if spec.get("name_tail") and isinstance(node, ast.Name | ast.Attribute):
            return _dotted(node)[-1], ""
        return ast.unparse(node), "not a literal"


def _matching_call(source: SourceFile, spec: dict[str, Any], has: Callable[[ast.Call], bool]) -> ast.Call:
    wanted = str(spec["call"]).split(".")
    calls = [
        node
        for node in _in_order(n for n in ast.walk(_scope(source, spec)) if isinstance(n, ast.Call))
        if _dotted(node.func)[-len(wanted) :] == wanted and has(node)
    ]
    nth = int(spec.get("nth", 0))
    if not -len(calls) <= nth < len(calls):
        raise NotLocated(f"no call to {spec['call']}() with that argument" + (f" (nth={nth})" if nth else ""))
    return calls[nth]


@locator("python_constant", "name")
def python_constant(source: SourceFile, spec: dict[str, Any]) -> Located:
    """Last module-level `NAME = literal` (or `NAME: T = literal`)."""
    name = spec["name"]
    found = None
    for node in source.python.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            found = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            found = node if node.value is not None else found
    if found is None:
        raise NotLocated(f"no module-level assignment to {name}")
    value, detail = _python_value(found.value, spec)
    return Located(value, found.lineno, detail)


@locator("dataclass_default", "class", "field")
def dataclass_default(source: SourceFile, spec: dict[str, Any]) -> Located:
    """Default of a class-body field: `x: T = value` or `x: T = field(default=value)`."""
    classes = [n for n in ast.walk(source.python) if isinstance(n, ast.ClassDef) and n.name == spec["class"]]
    if not classes:
        raise NotLocated(f"no class {spec['class']}")
    for node in classes[0].body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if not (isinstance(target, ast.Name) and target.id == spec["field"]):
            continue
        value = node.value
        if value is None:
            raise NotLocated(f"{spec['class']}.{spec['field']} has no default")
        if isinstance(value, ast.Call) and _dotted(value.func)[-1] == "field":
            default = next((kw.value for kw in value.keywords if kw.arg == "default"), None)
            if default is None:
                raise NotLocated(f"{spec['class']}.{spec['field']} has no field(default=...)")
            value = default
        found, detail = _python_value(value, spec)
        return Located(found, value.lineno, detail)
    raise NotLocated(f"no field {spec['field']} in class {spec['class']}")


@locator("python_call_arg", "call", "index")
def python_call_arg(source: SourceFile, spec: dict[str, Any]) -> Located:
    """Positional argument `index` of the first (or `nth`) call to `call` (matched on its dotted tail)."""
    index = int(spec["index"])
    call = _matching_call(source, spec, lambda node: len(node.args) > index)
    found, detail = _python_value(call.args[index], spec)
    return Located(found, call.args[index].lineno, detail)


@locator("python_call_kwarg", "call", "keyword")
def python_call_kwarg(source: SourceFile, spec: dict[str, Any]) -> Located:
    """Keyword argument of the first (or `nth`) call to `call` that passes it."""
    call = _matching_call(source, spec, lambda node: any(kw.arg == spec["keyword"] for kw in node.keywords))
    value = next(kw.value for kw in call.keywords if kw.arg == spec["keyword"])
    found, detail = _python_value(value, spec)
    return Located(found, value.lineno, detail)


@locator("python_string_contains", "prefix")
def python_string_contains(source: SourceFile, spec: dict[str, Any]) -> Located:
    """First string literal containing `prefix`; the value runs from `prefix` to the end of that line."""
    prefix = spec["prefix"]
    strings = (
        n for n in ast.walk(_scope(source, spec)) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    )
    for node in _in_order(strings):
        start = node.value.find(prefix)
        if start < 0:
            continue
        spans_lines = (node.end_lineno or node.lineno) > node.lineno
        line = node.lineno + (node.value.count("\n", 0, start) if spans_lines else 0)
        return Located(node.value[start:].split("\n", 1)[0], line)
    raise NotLocated(f"no string literal contains {prefix!r}")
