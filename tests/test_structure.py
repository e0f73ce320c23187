"""Structure of the package: no import cycles, findings built only through the probe helper, axis names in one
place (parity.axes), and nothing outside parity/run and the CLI importing parity.run."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

from parity.axes import AXIS_TABLE
from parity.run.options import RunOptions
from parity.spec import Recipe

PACKAGE = Path(__file__).resolve().parent.parent / "parity"
AXIS_NAMES = {axis.name for axis in AXIS_TABLE}
RECIPE_SECTIONS = {f.name for f in dataclasses.fields(Recipe)}
"""Recipe sections share some names with axes (template, data, ...); a list of sections is not an axis list."""
RUN_OPTIONS_ONLY = {f.name for f in dataclasses.fields(RunOptions)} - AXIS_NAMES
"""Run options share names with axes too (data, model, seed); a list holding another option is not an axis list."""


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """parity modules `path` imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = modules()
    known = set(files)
    return {name: imported_modules(path, known) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of module names, or None (submodule -> own package edges are not cycles)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if node.startswith(target + "."):
                continue  # a package's submodule importing the package itself
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_among_parity_modules():
    assert find_cycle(import_graph()) is None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}}) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({"p.a": {"p.b"}, "p.b": set()}) is None


def test_only_run_the_layers_above_it_and_the_cli_import_parity_run():
    """Above run: bisect (trains legs through it) and results (reads run directories for parity.load)."""
    above = ("parity.run.", "parity.cli", "parity.bisect", "parity.results")
    offenders = [
        name
        for name, targets in import_graph().items()
        if not (name == "parity.run" or name.startswith(above))
        and any(t == "parity.run" or t.startswith("parity.run.") for t in targets)
    ]
    assert offenders == []


def test_findings_are_built_only_by_the_probe_helper():
    allowed = {PACKAGE / "probes" / "__init__.py"}
    calls = [
        f"{path.relative_to(PACKAGE)}:{n}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in allowed
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"(?<![\w.])Finding\(", line)
    ]
    assert calls == []


def test_axis_name_lists_exist_only_in_the_axis_table():
    """No literal tuple, list, set or dict keys of three or more axis names outside parity/axes.py (lists of
    recipe sections or of run options aside)."""
    lists = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "axes.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
            if not isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Dict) or not items:
                continue
            strings = [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
            names = [s for s in strings if s in AXIS_NAMES]
            if (
                len(names) >= 3
                and not set(strings) <= RECIPE_SECTIONS
                and not set(strings) & RUN_OPTIONS_ONLY
            ):
                lists.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {names}")
    assert lists == []
