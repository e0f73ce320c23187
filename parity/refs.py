"""`parity refs verify`: re-extract the pinned facts of vendor_refs/<ref> from a local upstream checkout.

Files are only read and parsed (ast, shlex, yaml, json, tomllib); nothing in the checkout is imported or run."""

from __future__ import annotations

import ast
import json
import math
import re
import shlex
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml

from parity.errors import ParityError, unknown_key_error
from parity.vendor import VENDOR_REFS_DIR, Fact, available_refs, load_facts

Status = Literal["ok", "drift", "missing"]


@dataclass(frozen=True)
class FactCheck:
    """One pinned fact compared with what the checkout says."""

    name: str
    expected: Any
    found: Any
    file: str
    line: int | None
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class RefsReport:
    """Every fact of one ref checked against one checkout."""

    ref: str
    repo: str
    commit: str
    checkout: Path
    facts: list[FactCheck]

    @property
    def ok(self) -> bool:
        return all(check.status == "ok" for check in self.facts)

    def count(self, status: Status) -> int:
        """How many facts have this status."""
        return sum(check.status == status for check in self.facts)

    def by_name(self, name: str) -> FactCheck:
        """The check of one fact."""
        return next(check for check in self.facts if check.name == name)


# --- locator protocol -------------------------------------------------------------------------------


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
class Locator:
    """A registered locator kind: the function and the spec keys it needs."""

    kind: str
    find: Callable[[SourceFile, dict[str, Any]], Located]
    requires: tuple[str, ...]


LOCATORS: dict[str, Locator] = {}


def locator(kind: str, *requires: str) -> Callable:
    """Register a locator function under `kind`; `requires` are the spec keys it reads."""

    def register(find: Callable[[SourceFile, dict[str, Any]], Located]) -> Callable:
        LOCATORS[kind] = Locator(kind=kind, find=find, requires=requires)
        return find

    return register


# --- reading and parsing checkout files ---------------------------------------------------------------


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


_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.DOTALL)
_DECLARATIONS = {"export", "readonly", "declare", "local", "typeset"}


def shell_assignments(commands: list[ShellCommand]) -> list[tuple[str, str, int]]:
    """(name, value, line) of every `NAME=value` at the head of a command, in file order."""
    found = []
    for command in commands:
        words = list(zip(command.words, command.word_lines, strict=True))
        while words and (words[0][0] in _DECLARATIONS or words[0][0].startswith("-")):
            words.pop(0)
        for word, line in words:
            match = _ASSIGNMENT.fullmatch(word)
            if not match:
                break
            found.append((match[1], match[2], line))
    return found


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
            raise NotLocated(f"cannot parse as YAML: {_one_line(error)}") from None

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


def _one_line(error: Exception) -> str:
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


# --- value coercion and comparison ------------------------------------------------------------------

_INT_WORD = re.compile(r"[-+]?\d+")
_FLOAT_WORD = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def scalar(word: str) -> Any:
    """A shell word or untyped string as YAML 1.2 would read it: int, float (1e-4 too), true/false, else str."""
    if _INT_WORD.fullmatch(word):
        return int(word)
    if _FLOAT_WORD.fullmatch(word):
        return float(word)
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    return word


def _coerce_towards(value: Any, other: Any) -> Any:
    if isinstance(value, str) and isinstance(other, bool | int | float):
        return scalar(value)
    return value


def values_equal(expected: Any, found: Any) -> bool:
    """Pinned vs found: numbers by value (1e-4 == 0.0001), bools only equal bools, containers recursively."""
    expected, found = _coerce_towards(expected, found), _coerce_towards(found, expected)
    if isinstance(expected, bool) or isinstance(found, bool):
        return isinstance(expected, bool) and isinstance(found, bool) and expected == found
    if isinstance(expected, int | float) and isinstance(found, int | float):
        return math.isclose(expected, found, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(expected, dict) and isinstance(found, dict):
        return expected.keys() == found.keys() and all(values_equal(expected[k], found[k]) for k in expected)
    if isinstance(expected, list | tuple) and isinstance(found, list | tuple):
        return len(expected) == len(found) and all(map(values_equal, expected, found))
    return expected == found


# --- python locators ----------------------------------------------------------------------------------


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


# --- shell locators -----------------------------------------------------------------------------------

_VARIABLE_REF = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _flag_commands(source: SourceFile, spec: dict[str, Any]) -> list[ShellCommand]:
    program = spec.get("command")
    return [c for c in source.shell if program is None or c.words[0] == program]


def _resolve(source: SourceFile, word: str, used_at: int) -> tuple[str, int | None, str]:
    """A word that is exactly `$VAR`/`${VAR}` takes the script's last assignment before use."""
    match = _VARIABLE_REF.fullmatch(word)
    if not match:
        return word, None, ""
    name = match[1] or match[2]
    earlier = [
        (value, line)
        for var, value, line in shell_assignments(source.shell)
        if var == name and line < used_at
    ]
    if not earlier:
        return word, None, ""
    value, line = earlier[-1]
    return value, line, f"via {word} (used on line {used_at})"


@locator("shell_var", "name")
def shell_var(source: SourceFile, spec: dict[str, Any]) -> Located:
    """Last `NAME=value` assignment in the script."""
    assignments = [
        (value, line) for var, value, line in shell_assignments(source.shell) if var == spec["name"]
    ]
    if not assignments:
        raise NotLocated(f"no assignment {spec['name']}=...")
    value, line = assignments[-1]
    return Located(scalar(value), line)


@locator("shell_arg", "flag")
def shell_arg(source: SourceFile, spec: dict[str, Any]) -> Located:
    """The word after `flag` (or after `flag=`) on the first command line passing it; `$VAR` is resolved."""
    flag = spec["flag"]
    for command in _flag_commands(source, spec):
        for position, word in enumerate(command.words):
            if word == flag:
                if position + 1 >= len(command.words):
                    raise NotLocated(f"{flag} has no value")
                value, line = command.words[position + 1], command.word_lines[position + 1]
            elif word.startswith(flag + "="):
                value, line = word[len(flag) + 1 :], command.word_lines[position]
            else:
                continue
            resolved, assigned_at, detail = _resolve(source, value, line)
            return Located(scalar(resolved), assigned_at or line, detail)
    raise NotLocated(f"no command passes {flag}")


@locator("shell_flag", "flag")
def shell_flag(source: SourceFile, spec: dict[str, Any]) -> Located:
    """Whether a bare switch (e.g. `--apply_chat_template`) is passed: true where present, false if not."""
    for command in _flag_commands(source, spec):
        if spec["flag"] in command.words:
            return Located(True, command.word_lines[command.words.index(spec["flag"])])
    return Located(False, None, f"no command passes {spec['flag']}")


@locator("shell_command", "program")
def shell_command(source: SourceFile, spec: dict[str, Any]) -> Located:
    """The words of the first `program ...` command up to its first option: `accelerate launch x.py`."""
    for command in source.shell:
        if command.words[0] == spec["program"]:
            head = []
            for word in command.words:
                if word.startswith("-"):
                    break
                head.append(word)
            return Located(" ".join(head), command.line)
    raise NotLocated(f"no command runs {spec['program']}")


# --- config-file locators -----------------------------------------------------------------------------

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


# --- snippet locators (facts derived from code rather than written as one value) ----------------------


def _snippets(spec: dict[str, Any]) -> list[str]:
    return [spec["text"]] if isinstance(spec["text"], str) else list(spec["text"])


def _find_snippet(source: SourceFile, snippet: str) -> re.Match | None:
    """Find a snippet, any run of whitespace in it matching any run in the file."""
    return re.search(r"\s+".join(map(re.escape, snippet.split())), source.text)


@locator("source_contains", "text", "means")
def source_contains(source: SourceFile, spec: dict[str, Any]) -> Located:
    """`means` while every snippet in `text` is present; a snippet gone is drift (found: None)."""
    first_line = None
    for snippet in _snippets(spec):
        match = _find_snippet(source, snippet)
        if match is None:
            return Located(None, None, f"snippet gone: {snippet!r}")
        first_line = first_line or source.line_of(match.start())
    return Located(spec["means"], first_line)


@locator("source_absent", "text", "means")
def source_absent(source: SourceFile, spec: dict[str, Any]) -> Located:
    """`means` while no snippet in `text` appears; one that appears is drift (found: its line)."""
    for snippet in _snippets(spec):
        match = _find_snippet(source, snippet)
        if match is not None:
            line = source.line_of(match.start())
            return Located(
                source.text.splitlines()[line - 1].strip(), line, f"unexpected snippet: {snippet!r}"
            )
    return Located(spec["means"], None)


# --- verification -------------------------------------------------------------------------------------


def locators_path(ref: str) -> Path:
    """vendor_refs/<ref>/locators.yaml."""
    return VENDOR_REFS_DIR / ref / "locators.yaml"


def load_locators(ref: str) -> dict[str, dict[str, Any]]:
    """Read and validate vendor_refs/<ref>/locators.yaml: fact name -> locator spec."""
    path = locators_path(ref)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ParityError(f"cannot read locators for '{ref}': {path} ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ParityError(f"malformed {path}: {_one_line(error)}") from None
    specs = raw.get("locators") if isinstance(raw, dict) else None
    if not isinstance(specs, dict):
        raise ParityError(f"malformed {path}: expected a 'locators' mapping of fact name to locator")
    for name, spec in specs.items():
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ParityError(f"malformed {path}: locator for '{name}' needs a 'kind'")
        if spec["kind"] not in LOCATORS:
            raise unknown_key_error(
                f"locator kind (fact '{name}' in {path.name})", spec["kind"], set(LOCATORS)
            )
        lacking = [key for key in LOCATORS[spec["kind"]].requires if key not in spec]
        if lacking:
            raise ParityError(
                f"malformed {path}: locator for '{name}' ({spec['kind']}) needs {', '.join(lacking)}"
            )
    return specs


def _check(fact: Fact, spec: dict[str, Any], checkout: Path, files: dict[str, SourceFile]) -> FactCheck:
    relative = str(spec.get("file", fact.file))
    try:
        if relative not in files:
            files[relative] = read_source(checkout, relative)
        located = LOCATORS[spec["kind"]].find(files[relative], spec)
    except NotLocated as miss:
        return FactCheck(fact.name, fact.value, None, relative, None, "missing", str(miss))
    if values_equal(fact.value, located.value):
        return FactCheck(fact.name, fact.value, located.value, relative, located.line, "ok", located.detail)
    line = located.line
    if isinstance(fact.value, dict) and isinstance(located.value, dict):
        changed = [
            k
            for k in located.value
            if k not in fact.value or not values_equal(fact.value[k], located.value[k])
        ]
        line = min((located.key_lines[k] for k in changed if k in located.key_lines), default=line)
    return FactCheck(fact.name, fact.value, located.value, relative, line, "drift", located.detail)


def verify_ref(ref: str, checkout: Path) -> RefsReport:
    """Re-extract every pinned fact of `ref` from `checkout` and compare with vendor_refs."""
    refs = available_refs()
    if ref not in refs:
        raise unknown_key_error("ref", ref, refs)
    checkout = Path(checkout)
    if not checkout.exists():
        raise ParityError(f"checkout '{checkout}' does not exist")
    if not checkout.is_dir():
        raise ParityError(f"checkout '{checkout}' is not a directory")
    sheet = load_facts(ref)
    specs = load_locators(ref)
    unlocated = sorted(set(sheet.facts) - set(specs))
    if unlocated:
        raise ParityError(f"{locators_path(ref)} has no locator for: {', '.join(unlocated)}")
    stale = sorted(set(specs) - set(sheet.facts))
    if stale:
        raise ParityError(f"{locators_path(ref)} locates facts that facts.yaml lacks: {', '.join(stale)}")
    files: dict[str, SourceFile] = {}
    checks = [_check(fact, specs[name], checkout, files) for name, fact in sheet.facts.items()]
    return RefsReport(ref=ref, repo=sheet.repo, commit=sheet.commit, checkout=checkout, facts=checks)


# --- formatting ---------------------------------------------------------------------------------------

SHOWN_CHARS = 60


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _excerpt(text: str, around: int) -> str:
    """A window of a long string around one character, with … where it was cut."""
    start = max(0, around - SHOWN_CHARS // 2)
    end = start + SHOWN_CHARS
    return ("…" if start else "") + repr(text[start:end]) + ("…" if end < len(text) else "")


def _show(value: Any, around: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{_excerpt(value, around)} ({len(value)} chars)"
    shown = repr(value)
    return shown if len(shown) <= 2 * SHOWN_CHARS else shown[: 2 * SHOWN_CHARS] + "…"


def _drift_lines(check: FactCheck) -> list[str]:
    pinned, found = check.expected, check.found
    if isinstance(pinned, dict) and isinstance(found, dict):
        lines = []
        for key, value in pinned.items():
            if key not in found:
                lines.append(f"{key}: pinned {_show(value)}, absent")
            elif not values_equal(value, found[key]):
                lines.append(f"{key}: pinned {_show(value)}, found {_show(found[key])}")
        return lines + [f"{key}: not pinned, found {_show(found[key])}" for key in found if key not in pinned]
    if isinstance(pinned, str) and isinstance(found, str):
        at = _first_difference(pinned, found)
        shown = [f"pinned {_show(pinned, at)}", f"found  {_show(found, at)}"]
        if at == 0 and max(len(pinned), len(found)) <= SHOWN_CHARS:
            return shown
        return shown + [
            f"first difference at char {at}: pinned {pinned[at : at + 1]!r}, found {found[at : at + 1]!r}"
        ]
    return [f"pinned {_show(pinned)}", f"found  {_show(found)}"]


def format_refs_report(report: RefsReport, show_ok: bool = True) -> str:
    """Readable report: a summary line, then one line per fact, with pinned/found under each drift."""
    total = len(report.facts)
    counts = f"{report.count('ok')} ok, {report.count('drift')} drift, {report.count('missing')} missing"
    lines = [
        f"refs verify {report.ref} ({report.repo} @ {report.commit}) against {report.checkout}",
        f"{total} facts: {counts}",
    ]
    width = max((len(check.name) for check in report.facts), default=0)
    for check in report.facts:
        if check.status == "ok" and not show_ok:
            continue
        where = check.file + (f":{check.line}" if check.line else "")
        lines.append(
            f"  {check.status.upper() if check.status != 'ok' else 'ok':8} {check.name:{width}}  {where}"
        )
        details = _drift_lines(check) if check.status == "drift" else []
        details += [check.detail] if check.detail and check.status != "ok" else []
        lines += [f"  {'':8} {detail}" for detail in details]
    return "\n".join(lines)


def verify_ref_cli(ref: str, checkout: str) -> int:
    """`parity refs verify --ref NAME --checkout PATH`: print the report; 0 when every fact is ok, else 1."""
    report = verify_ref(ref, Path(checkout))
    print(format_refs_report(report))
    return 0 if report.ok else 1
