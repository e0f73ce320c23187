"""Pinned Python environments for a capture: a uv-built venv from a checkout's declared dependencies.

Exact pins kept, ranges resolved as of the commit date, CPU torch, GPU-only packages skipped; cached by key.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from parity.errors import ParityError

# Bumped whenever the way an environment is built changes, so old cache entries are not reused.
BUILD_FORMAT = 1

# Packages that need a GPU to install or import; a CPU capture never runs their code.
GPU_ONLY = frozenset(
    {"flash-attn", "deepspeed", "vllm", "xformers", "bitsandbytes", "triton", "apex", "flashinfer-python"}
)
# Built against one torch release; next to a substituted CPU torch they would not import.
TORCH_COMPANIONS = frozenset({"torchvision", "torchaudio"})
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
RECORD_FILE = "environment.json"
UV_TIMEOUT_S = 1800

# Upstream exports without git metadata whose commit dates are known (folder suffix = commit prefix).
KNOWN_EXPORTS: dict[str, tuple[str, str, str]] = {
    "f899ae51": ("llmhalluc", "github.com/Tianyi-Billy-Ma/Halluc", "2026-01-22"),
    "35ed7cf": ("revise", "github.com/seunghyukoh/ReVISE", "2025-08-11"),
}


@dataclass(frozen=True)
class Environment:
    """A built virtual environment: its interpreter, what was asked, what it holds and what was changed."""

    python: Path
    key: str
    requirements: list[str]
    installed: dict[str, str]
    exclude_newer: str | None
    notes: list[str]
    cached: bool
    bytecode: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Declared:
    """The requirements a checkout declares (normalized, sorted) and what reading them skipped or found."""

    requirements: list[str]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TorchSource:
    """Where the CPU torch comes from: a local wheel file, else a CPU-only package index."""

    wheel: Path | None = None
    index_url: str | None = None

    @property
    def version(self) -> str | None:
        """The wheel's torch version (e.g. '2.13.0+cpu'); None for an index."""
        return self.wheel.name.split("-")[1] if self.wheel else None

    def describe(self) -> str:
        if self.wheel:
            return f"the CPU wheel torch {self.version} from {self.wheel.parent}"
        return f"a CPU torch from {self.index_url}"

    def cache_part(self) -> str:
        if self.wheel:
            return f"{self.wheel.name}:{self.wheel.stat().st_size}"
        return f"index:{self.index_url}"


@dataclass(frozen=True)
class InstallPlan:
    """What uv is asked for: torch first, then the rest with overrides that keep torch and drop skipped."""

    requirements: list[str]
    torch: TorchSource
    torch_requirement: str
    install: list[str]
    dropped: list[str]
    notes: list[str]


# --- reading a checkout's declared dependencies -------------------------------------------------------


def normalize_requirement(text: str) -> str:
    """One requirement in canonical form: `Flash_Attn >= 2.5` -> `flash-attn>=2.5`; bad text raises ValueError."""
    requirement = Requirement(text.strip())
    extras = (
        f"[{','.join(sorted(canonicalize_name(e) for e in requirement.extras))}]"
        if requirement.extras
        else ""
    )
    if requirement.url:
        version = f" @ {requirement.url}"
    else:
        version = ",".join(sorted(str(spec) for spec in requirement.specifier))
    marker = f"; {requirement.marker}" if requirement.marker else ""
    return f"{canonicalize_name(requirement.name)}{extras}{version}{marker}"


def requirement_name(text: str) -> str:
    """The canonical distribution name of a normalized requirement."""
    return canonicalize_name(Requirement(text).name)


def declared_requirements(checkout: Path, optional_groups: Sequence[str] = ()) -> Declared:
    """Read pyproject.toml, requirements*.txt and environment.y(a)ml's pip section of `checkout`."""
    checkout = Path(checkout).resolve()
    reader = _Reader(checkout)
    pyproject = checkout / "pyproject.toml"
    if pyproject.is_file():
        reader.read_project(checkout, optional_groups, origin="pyproject.toml")
    for path in sorted(checkout.glob("requirements*.txt")):
        reader.read_requirements_file(path)
    for name in ("environment.yaml", "environment.yml"):
        if (checkout / name).is_file():
            reader.read_environment_yaml(checkout / name)
    if not reader.requirements:
        raise ParityError(
            f"{checkout} declares no dependencies (pyproject.toml [project] dependencies, requirements*.txt, "
            "environment.yaml pip section); use --python current or --python PATH"
        )
    return Declared(sorted(set(reader.requirements)), reader.notes)


class _Reader:
    """Accumulates requirements and notes while following local projects and nested requirement files."""

    def __init__(self, checkout: Path):
        self.checkout = checkout
        self.requirements: list[str] = []
        self.notes: list[str] = []
        self.projects_read: set[Path] = set()
        self.files_read: set[Path] = set()

    def rel(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.checkout)) or "."
        except ValueError:
            return str(path)

    def add(self, text: str, origin: str) -> None:
        try:
            self.requirements.append(normalize_requirement(text))
        except InvalidRequirement as error:
            raise ParityError(f"{origin}: cannot read requirement '{text.strip()}': {error}") from None

    def read_project(self, directory: Path, groups: Sequence[str], origin: str) -> None:
        """Add a local project's [project] dependencies and the optional groups asked for."""
        directory = directory.resolve()
        pyproject = directory / "pyproject.toml"
        if not pyproject.is_file():
            self.notes.append(
                f"{origin}: {self.rel(directory)} has no pyproject.toml; its dependencies were not read"
            )
            return
        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except tomllib.TOMLDecodeError as error:
            raise ParityError(f"{self.rel(pyproject)}: not valid TOML: {error}") from None
        name = project.get("name", self.rel(directory))
        available = project.get("optional-dependencies", {})
        key = (directory, tuple(sorted(groups)))
        if key in self.projects_read:
            return
        self.projects_read.add(key)
        where = self.rel(pyproject)
        for text in project.get("dependencies", []):
            self.add(text, where)
        taken = [group for group in groups if group in available]
        for group in taken:
            for text in available[group]:
                self.add(text, f"{where} [{group}]")
        missing = [group for group in groups if group not in available]
        if missing:
            self.notes.append(f"{where}: optional group(s) {', '.join(missing)} not declared by {name}")
        not_taken = sorted(set(available) - set(taken))
        if not_taken:
            shown = ", ".join(not_taken[:8]) + (
                f" and {len(not_taken) - 8} more" if len(not_taken) > 8 else ""
            )
            self.notes.append(f"{where}: optional groups of {name} not taken: {shown}")
        if "dynamic" in project and "dependencies" in project["dynamic"]:
            self.notes.append(f"{where}: {name} declares its dependencies dynamically; they were not read")

    def read_requirements_file(self, path: Path) -> None:
        path = path.resolve()
        if path in self.files_read:
            return
        self.files_read.add(path)
        for line in _logical_lines(path.read_text(encoding="utf-8")):
            self.read_requirement_line(line, path.parent, self.rel(path))

    def read_requirement_line(self, line: str, base: Path, origin: str) -> None:
        """One requirements-file line: a requirement, a nested file, a local project, or an option."""
        option, _, value = line.partition(" ")
        value = value.strip()
        if option in ("-r", "--requirement"):
            self.read_requirements_file(base / value)
        elif option in ("-e", "--editable"):
            self.read_local_or_url(value, base, origin, editable=True)
        elif line.startswith("-"):
            self.notes.append(f"{origin}: option '{line}' ignored")
        elif _looks_local(line):
            self.read_local_or_url(line, base, origin, editable=False)
        else:
            self.add(line, origin)

    def read_local_or_url(self, target: str, base: Path, origin: str, editable: bool) -> None:
        """A local project contributes its declared dependencies; the project itself runs from the copy."""
        if not _looks_local(target):
            self.notes.append(f"{origin}: '{target}' skipped: not a local project or an index requirement")
            return
        location, groups = _split_extras(target.removeprefix("file:"))
        directory = (base / location).resolve()
        flag = "-e " if editable else ""
        if directory == self.checkout:
            self.notes.append(
                f"{origin}: '{flag}{target}' is the checkout itself: its dependencies come from pyproject.toml; "
                "its code runs from the checkout copy"
            )
            self.read_project(directory, groups, origin)
            return
        self.notes.append(
            f"{origin}: '{flag}{target}' is a local project: its declared dependencies are installed, "
            "its code is not"
        )
        self.read_project(directory, groups, origin)

    def read_environment_yaml(self, path: Path) -> None:
        """The pip section of a conda environment file; conda-only entries are noted and skipped."""
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ParityError(f"{self.rel(path)}: not valid YAML: {str(error).splitlines()[0]}") from None
        conda_only: list[str] = []
        for entry in spec.get("dependencies") or []:
            if isinstance(entry, dict):
                for line in entry.get("pip") or []:
                    self.read_requirement_line(str(line).strip(), path.parent, self.rel(path))
            elif str(entry).split("=")[0].strip() == "python":
                running = ".".join(map(str, sys.version_info[:3]))
                self.notes.append(f"{self.rel(path)} asks {entry}; built with the running Python {running}")
            else:
                conda_only.append(str(entry))
        if conda_only:
            self.notes.append(f"{self.rel(path)}: conda-only entries skipped: {', '.join(conda_only)}")


def _logical_lines(text: str) -> list[str]:
    """Requirements-file lines with comments dropped and backslash continuations joined."""
    joined = re.sub(r"\\\r?\n", " ", text)
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined.splitlines())
    return [line for line in lines if line]


def _looks_local(target: str) -> bool:
    return target.startswith((".", "/", "file:"))


def _split_extras(target: str) -> tuple[str, list[str]]:
    match = re.fullmatch(r"(.*?)\[([^\]]*)\]", target.strip())
    if not match:
        return target.strip(), []
    return match.group(1), [group.strip() for group in match.group(2).split(",") if group.strip()]


# --- torch, skipping, commit date ----------------------------------------------------------------------


def find_torch_wheel(
    explicit: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    pip_config_files: Sequence[Path] | None = None,
) -> TorchSource:
    """The CPU torch to install: `explicit`, PARITY_TORCH_WHEEL, a wheel in pip's find-links, else the CPU index."""
    environ = os.environ if environ is None else environ
    chosen = explicit or environ.get("PARITY_TORCH_WHEEL")
    if chosen:
        wheel = Path(chosen).expanduser().resolve()
        if not wheel.is_file() or not wheel.name.startswith("torch-") or wheel.suffix != ".whl":
            raise ParityError(f"torch wheel not found or not a torch wheel: {chosen}")
        return TorchSource(wheel=wheel)
    files = _pip_config_files(environ) if pip_config_files is None else pip_config_files
    candidates = [
        wheel
        for directory in pip_find_links(environ, files)
        for wheel in directory.glob("torch-*.whl")
        if _wheel_fits_this_python(wheel.name)
    ]
    if candidates:
        return TorchSource(wheel=max(candidates, key=_torch_wheel_rank))
    return TorchSource(index_url=CPU_TORCH_INDEX)


def pip_find_links(environ: Mapping[str, str], config_files: Sequence[Path]) -> list[Path]:
    """Local directories pip's configuration lists as find-links (PIP_FIND_LINKS, then config files)."""
    values = environ.get("PIP_FIND_LINKS", "").split()
    for path in config_files:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, OSError):
            continue
        for section in ("global", "install", "download"):
            for key in ("find-links", "find_links"):
                values += parser.get(section, key, fallback="").split()
    directories: list[Path] = []
    for value in values:
        directory = Path(value.removeprefix("file://")).expanduser()
        if directory.is_dir() and directory not in directories:
            directories.append(directory)
    return directories


def _pip_config_files(environ: Mapping[str, str]) -> list[Path]:
    xdg_dirs = environ.get("XDG_CONFIG_DIRS", "/etc/xdg").split(":")
    home = Path(environ.get("HOME", str(Path.home())))
    files = [Path(d) / "pip" / "pip.conf" for d in xdg_dirs if d] + [Path("/etc/pip.conf")]
    files += [
        home / ".pip" / "pip.conf",
        Path(environ.get("XDG_CONFIG_HOME", home / ".config")) / "pip" / "pip.conf",
    ]
    files += [Path(sys.prefix) / "pip.conf"]
    if environ.get("PIP_CONFIG_FILE"):
        files.append(Path(environ["PIP_CONFIG_FILE"]))
    return [path for path in files if path.is_file()]


def _wheel_fits_this_python(filename: str) -> bool:
    parts = filename.removesuffix(".whl").split("-")
    if len(parts) != 5:
        return False
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    machine = os.uname().machine if hasattr(os, "uname") else ""
    return parts[2] == tag and sys.platform in parts[4] and machine in parts[4]


def _torch_wheel_rank(wheel: Path) -> tuple[bool, Version]:
    version = wheel.name.split("-")[1]
    try:
        return ("+cpu" in version, Version(version))
    except InvalidVersion:
        return ("+cpu" in version, Version("0"))


def plan_install(
    requirements: Sequence[str], torch: TorchSource, skip: Sequence[str] = (), keep: Sequence[str] = ()
) -> InstallPlan:
    """Split the asked requirements into torch, what uv installs, and what is dropped (with a note each).

    `keep` names GPU-only packages installed all the same (a framework that imports them unconditionally)."""
    skip_names = {canonicalize_name(name) for name in skip}
    kept = {canonicalize_name(name) for name in keep}
    install: list[str] = []
    dropped: set[str] = (set(GPU_ONLY) - kept) | skip_names
    notes: list[str] = []
    torch_asked: list[str] = []
    for text in requirements:
        name = requirement_name(text)
        if name == "torch":
            torch_asked.append(text)
        elif name in skip_names:
            notes.append(f"{name} skipped: listed in skip (the capture stubs it)")
        elif name not in kept and (name in GPU_ONLY or name.startswith("nvidia-")):
            dropped.add(name)
            notes.append(f"{name} skipped: GPU-only")
        elif name in TORCH_COMPANIONS:
            dropped.add(name)
            notes.append(f"{text} skipped: built for the torch it pins, not for the CPU torch installed")
        else:
            install.append(text)
    asked = ", ".join(torch_asked) if torch_asked else "torch not declared"
    if torch.wheel:
        torch_requirement = str(torch.wheel)
        verb = "pinned upstream" if any("==" in text for text in torch_asked) else "declared upstream"
        prefix = f"{asked} {verb}" if torch_asked else asked
        notes.append(f"{prefix}; installed {torch.describe()} instead")
    else:
        torch_requirement = _torch_from_index(torch_asked)
        notes.append(f"{asked}; installed {torch_requirement} from {torch.index_url}")
    return InstallPlan(list(requirements), torch, torch_requirement, install, sorted(dropped), notes)


def _torch_from_index(torch_asked: Sequence[str]) -> str:
    """The torch requirement for a CPU index: the declared specifiers, local versions dropped."""
    specifiers = SpecifierSet()
    for text in torch_asked:
        requirement = Requirement(text)
        specifiers &= SpecifierSet(re.sub(r"\+[\w.]+", "", str(requirement.specifier)))
    return f"torch{specifiers}"


def resolution_date(checkout: Path, explicit: str | date | None = None) -> tuple[str | None, str]:
    """The date ranges are resolved as of, and a note saying where it came from (None: newest)."""
    if explicit:
        value = _normalize_date(str(explicit))
        return value, f"ranges resolved as of {value} (the commit date given)"
    checkout = Path(checkout).resolve()
    from_git = _git_commit_date(checkout)
    if from_git:
        stamp, commit = from_git
        return stamp, f"ranges resolved as of {stamp} (the checkout's commit date, {commit[:8]})"
    for prefix, (project, repo, day) in KNOWN_EXPORTS.items():
        if checkout.name.endswith(f"-{prefix}") and _project_name(checkout) == project:
            return day, f"ranges resolved as of {day} (the commit date of {repo} {prefix}, a known export)"
    return None, "ranges resolved to the newest versions: no commit date (not a git checkout, none given)"


def _normalize_date(text: str) -> str:
    """A date stays a date; a timestamp becomes UTC `...Z`; anything else raises ParityError."""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ParityError(f"commit date must be YYYY-MM-DD or an ISO timestamp, got '{text}'") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git_commit_date(checkout: Path) -> tuple[str, str] | None:
    """(commit timestamp in UTC, commit) when `checkout` is itself the top of a git work tree."""
    try:
        top = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != checkout:
            return None
        log = subprocess.run(
            ["git", "-C", str(checkout), "log", "-1", "--format=%cI %H"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if log.returncode != 0 or not log.stdout.strip():
        return None
    stamp, commit = log.stdout.split()
    return _normalize_date(stamp), commit


def _project_name(checkout: Path) -> str | None:
    try:
        return tomllib.loads((checkout / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None


# --- the cache key and the build -----------------------------------------------------------------------


def environment_key(plan: InstallPlan, exclude_newer: str | None, steps: dict | None = None) -> str:
    """Hash of everything that decides the environment's contents (16 hex characters); `steps` names build
    steps beyond the plan (absent for a checkout's environment, so its key is unchanged)."""
    payload = {
        "format": BUILD_FORMAT,
        "python": [sys.implementation.name, list(sys.version_info[:3]), str(Path(sys.base_prefix).resolve())],
        "install": sorted(plan.install),
        "dropped": sorted(plan.dropped),
        "torch": [plan.torch.cache_part(), plan.torch_requirement],
        "exclude_newer": exclude_newer,
        **({"steps": steps} if steps else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(cache_dir: Path | None = None) -> Path:
    """Where environments live: `cache_dir`, else PARITY_CACHE_DIR/envs, else ~/.cache/parity/envs."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("PARITY_CACHE_DIR"):
        return Path(os.environ["PARITY_CACHE_DIR"]) / "envs"
    return Path.home() / ".cache" / "parity" / "envs"


def build_environment(
    checkout: Path,
    *,
    cache_dir: Path | None = None,
    extra: Sequence[str] = (),
    skip: Sequence[str] = (),
    optional_groups: Sequence[str] = (),
    commit_date: str | date | None = None,
    torch_wheel: str | Path | None = None,
    offline_ok: bool = True,
) -> Environment:
    """A venv with the checkout's declared dependencies (cached by key); see the module docstring.

    `extra` adds requirements, `skip` drops packages the capture stubs, `optional_groups` takes pyproject
    extras; `offline_ok` retries from uv's own cache when the package index cannot be reached.
    """
    checkout = Path(checkout)
    if not checkout.is_dir():
        raise ParityError(f"checkout not found: {checkout}")
    declared = declared_requirements(checkout, optional_groups)
    asked = sorted(set(declared.requirements) | {_normalize_extra(text) for text in extra})
    plan = plan_install(asked, find_torch_wheel(torch_wheel), skip)
    exclude_newer, date_note = resolution_date(checkout, commit_date)
    return build_planned(
        plan, exclude_newer, date_note, declared.notes, cache_dir=cache_dir, offline_ok=offline_ok
    )


def build_planned(
    plan: InstallPlan,
    exclude_newer: str | None,
    date_note: str,
    notes: Sequence[str] = (),
    *,
    cache_dir: Path | None = None,
    offline_ok: bool = True,
    fix_wheel_tags: bool = False,
) -> Environment:
    """The environment of an install plan, from the cache or built (see `build_environment`).

    `fix_wheel_tags` reinstalls pure-Python wheels uv took for an older Python than this one (see
    `wheels_for_other_pythons`); it is part of the cache key."""
    key = environment_key(plan, exclude_newer, {"fix_wheel_tags": True} if fix_wheel_tags else None)
    root = cache_root(cache_dir)
    target = root / key
    record = _read_record(target)
    if record is not None:
        return _environment(target, key, plan.requirements, _with_bytecode(target, record), cached=True)
    log = root / "logs" / f"{key}.log"
    record = _build(
        plan, exclude_newer, root, target, log, offline_ok, [*notes, *plan.notes], date_note, fix_wheel_tags
    )
    return _environment(target, key, plan.requirements, _with_bytecode(target, record), cached=False)


def resolve_python(spec: str, checkout: Path, **options) -> Environment | Path:
    """`current` -> this interpreter, `pinned` -> build_environment(checkout, **options), else a runnable path."""
    if spec == "current":
        return Path(sys.executable)
    if spec == "pinned":
        return build_environment(checkout, **options)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ParityError(f"--python must be current, pinned or an interpreter path; not found: {spec}")
    try:
        probe = subprocess.run(
            [str(path), "-c", "import sys; print(sys.version_info[0])"], capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ParityError(f"--python {spec} does not run: {error}") from None
    if probe.returncode != 0 or probe.stdout.strip() != b"3":
        reason = (
            probe.stderr.decode(errors="replace").strip().splitlines() or ["not a Python 3 interpreter"]
        )[-1]
        raise ParityError(f"--python {spec} does not run: {reason}")
    return path.absolute()


def _normalize_extra(text: str) -> str:
    try:
        return normalize_requirement(text)
    except InvalidRequirement as error:
        raise ParityError(f"extra requirement '{text}' cannot be read: {error}") from None


def _read_record(target: Path) -> dict | None:
    """The record of a complete cached environment, or None (absent, or its interpreter is gone)."""
    try:
        record = json.loads((target / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if (target / "bin" / "python").exists() else None


def compile_bytecode(target: Path) -> dict:
    """Compile the environment's installed modules to bytecode (uv installs sources only). A capture runs its
    interpreters with PYTHONDONTWRITEBYTECODE, so without this every run recompiles torch, transformers and trl
    from source: about 40 s of each revise run on 2 CPUs."""
    started = time.monotonic()
    folders = [str(path) for path in sorted((target / "lib").glob("python*/site-packages"))]
    if not folders:
        return {"compiled": False, "reason": "no site-packages folder"}
    command = [str(target / "bin" / "python"), "-m", "compileall", "-q", "-j", "0", *folders]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=UV_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"compiled": False, "reason": f"compileall did not finish: {error}"}
    failed = sum(1 for line in done.stdout.splitlines() if line.startswith("*** Error compiling"))
    return {
        "compiled": True,
        "files_not_compiled": failed,
        "seconds": round(time.monotonic() - started, 1),
    }


def _with_bytecode(target: Path, record: dict) -> dict:
    """The record of an environment whose modules are compiled, compiling them (once) when they are not."""
    if record.get("bytecode", {}).get("compiled"):
        return record
    updated = {**record, "bytecode": compile_bytecode(target)}
    temporary = target / f".{RECORD_FILE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(updated, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(temporary, target / RECORD_FILE)
    return updated


def _environment(target: Path, key: str, asked: list[str], record: dict, cached: bool) -> Environment:
    return Environment(
        python=target / "bin" / "python",
        key=key,
        requirements=asked,
        installed=dict(record["installed"]),
        exclude_newer=record["exclude_newer"],
        notes=list(record["notes"]),
        cached=cached,
        bytecode=dict(record.get("bytecode", {})),
    )


def _build(
    plan: InstallPlan,
    exclude_newer: str | None,
    root: Path,
    target: Path,
    log: Path,
    offline_ok: bool,
    notes: list[str],
    date_note: str,
    fix_wheel_tags: bool = False,
) -> dict:
    """Build into a temporary directory next to `target`, then rename it into place; nothing left on failure.

    The record file is written last, inside the temporary directory: a directory that has one is complete."""
    root.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("", encoding="utf-8")
    staging = Path(tempfile.mkdtemp(prefix=f".build-{target.name}-", dir=root))
    # uv's own temporary files (lock files of sdist builds) go here, not to the user's TMPDIR
    scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    started = time.monotonic()
    try:
        builder = _Builder(uv_command(), staging, log, offline_ok, scratch)
        builder.run(["venv", "--relocatable", "--python", sys.executable, str(staging)], "creating the venv")
        if plan.torch.wheel and exclude_newer:
            builder.install_as_of([plan.torch_requirement], exclude_newer, "torch's own dependencies")
        elif plan.torch.wheel:
            builder.pip_install([plan.torch_requirement], "installing torch")
        else:
            index_args = ["--index-url", str(plan.torch.index_url)]
            builder.pip_install([*index_args, plan.torch_requirement], "installing torch")
        torch_version = installed_versions(staging / "bin" / "python").get("torch")
        if not torch_version:
            raise ParityError(f"environment build did not install torch (full log: {log})")
        if plan.install:
            overrides = staging / "parity-overrides.txt"
            dropped = [f'{name}; sys_platform == "never"' for name in plan.dropped]
            overrides.write_text("\n".join([f"torch=={torch_version}", *dropped]) + "\n", encoding="utf-8")
            requirements = staging / "parity-requirements.txt"
            requirements.write_text("\n".join(plan.install) + "\n", encoding="utf-8")
            rest = ["--override", str(overrides), "-r", str(requirements)]
            if not exclude_newer:
                builder.pip_install(rest, "installing the declared requirements")
            elif not builder.install_as_of(rest, exclude_newer, "ranges"):
                exclude_newer, date_note = None, builder.notes.pop()
        if fix_wheel_tags:
            builder.notes.extend(_reinstall_for_this_python(builder, staging, log))
        installed = installed_versions(staging / "bin" / "python")
        if installed.get("torch") != torch_version:
            raise ParityError(f"environment build replaced the CPU torch {torch_version} (full log: {log})")
        record = {
            "format": BUILD_FORMAT,
            "installed": installed,
            "exclude_newer": exclude_newer,
            "notes": [*notes, date_note, *builder.notes],
            "build_seconds": round(time.monotonic() - started, 1),
            "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        shutil.copyfile(log, staging / "build.log")
        (staging / RECORD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        _move_into_place(staging, target)
        return record
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished build onto `target`; a stale incomplete target is replaced, a complete one kept."""
    if target.exists() and _read_record(target) is None:
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        if not target.exists():
            raise


class _Builder:
    """Runs uv steps into one log; turns a failure into a one-line ParityError that names the log."""

    def __init__(self, uv: list[str], venv: Path, log: Path, offline_ok: bool, scratch: Path | None = None):
        self.uv, self.log, self.offline_ok = uv, log, offline_ok
        self.python = str(venv / "bin" / "python")
        self.notes: list[str] = []
        self.env = {**os.environ, "TMPDIR": str(scratch)} if scratch is not None else None
        """uv's environment: TMPDIR in a scratch folder the build removes."""

    def run(self, args: list[str], what: str) -> None:
        self.settle(args, what, self._attempt(args))

    def settle(self, args: list[str], what: str, output: str | None) -> None:
        """Accept a finished attempt; retry it offline when the index is down; else raise one line."""
        if output is None:
            return
        if self.offline_ok and _unreachable(output) and self._attempt(args, offline=True) is None:
            self.notes.append(f"package index unreachable while {what}; installed from uv's cache")
            return
        raise ParityError(
            f"environment build failed while {what}: {_failure_line(output)} (full log: {self.log})"
        )

    def pip_install(self, args: list[str], what: str) -> None:
        self.run(["pip", "install", "--python", self.python, *args], what)

    def install_as_of(self, args: list[str], exclude_newer: str, subject: str) -> bool:
        """Install as of the date; False when the date excluded a requirement and the newest were taken (noted)."""
        what = "installing torch" if subject != "ranges" else "installing the declared requirements"
        dated = ["pip", "install", "--python", self.python, "--exclude-newer", exclude_newer, *args]
        output = self._attempt(dated)
        if output is None or "exclude-newer" not in output:
            self.settle(dated, what, output)
            return True
        self.pip_install(args, what)
        self.notes.append(
            f"{subject} resolved to the newest versions: resolving as of {exclude_newer} failed "
            f"({_failure_line(output)})"
        )
        return False

    def _attempt(self, args: list[str], offline: bool = False) -> str | None:
        """Run one uv command (user uv configuration ignored); None on success, its output on failure."""
        command = [*self.uv, *args, "--no-config", *(["--offline"] if offline else [])]
        with self.log.open("a", encoding="utf-8") as handle:
            handle.write("$ " + " ".join(command) + "\n")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=UV_TIMEOUT_S, env=self.env)
        except subprocess.TimeoutExpired:
            raise ParityError(
                f"environment build timed out after {UV_TIMEOUT_S} s (full log: {self.log})"
            ) from None
        with self.log.open("a", encoding="utf-8") as handle:
            handle.write(done.stdout + done.stderr + f"[exit {done.returncode}]\n")
        return None if done.returncode == 0 else done.stdout + done.stderr


def _unreachable(output: str) -> bool:
    markers = (
        "failed to fetch",
        "dns error",
        "error sending request",
        "connection refused",
        "could not connect",
    )
    return any(marker in output.lower() for marker in markers)


def _failure_line(output: str) -> str:
    """uv's own error and its cause, on one line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    error = next(
        (line for line in lines if line.lower().startswith(("error:", "×"))), lines[-1] if lines else ""
    )
    cause = next((line for line in lines if line.lower().startswith(("cause:", "caused by:", "╰─▶"))), "")
    parts = [
        re.sub(r"^(error:|cause:|caused by:|×|╰─▶)\s*", "", part, flags=re.I)
        for part in (error, cause)
        if part
    ]
    return re.sub(r"\s+", " ", ": ".join(parts))[:400]


def uv_command() -> list[str]:
    """The uv executable: the `uv` module of this interpreter, else `uv` on PATH."""
    try:
        from uv import find_uv_bin

        return [find_uv_bin()]
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return [found]
    raise ParityError("uv not found: pinned environments are built with uv (pip install uv)")


def installed_versions(python: Path) -> dict[str, str]:
    """Every distribution in `python`'s environment, canonical name -> version, read by that interpreter."""
    script = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions() if d.metadata['Name']}))"
    )
    done = subprocess.run([str(python), "-c", script], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ParityError(
            f"{python} cannot list its packages: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
        )
    return {canonicalize_name(name): version for name, version in sorted(json.loads(done.stdout).items())}


# --- pure-Python wheels built for another Python -------------------------------------------------------

_VERSIONED_PURE_TAG = re.compile(r"^py(\d)(\d+)-none-any$")


def wheels_for_other_pythons(site_packages: Path) -> dict[str, str]:
    """{distribution: version} of installed wheels tagged only for another Python minor version (`py310-none-any`
    under 3.11): multiprocess ships one wheel per Python and its py310 one breaks datasets on 3.11
    (`fork_exec() takes exactly 23 arguments`)."""
    running = f"{sys.version_info.major}{sys.version_info.minor}"
    found: dict[str, str] = {}
    for wheel_file in sorted(Path(site_packages).glob("*.dist-info/WHEEL")):
        tags = [
            line.split(":", 1)[1].strip()
            for line in wheel_file.read_text(encoding="utf-8", errors="replace").splitlines()
            if line.startswith("Tag:")
        ]
        versions = [
            match.group(1) + match.group(2) for tag in tags if (match := _VERSIONED_PURE_TAG.match(tag))
        ]
        if versions and len(versions) == len(tags) and running not in versions:
            name, _, version = wheel_file.parent.name.removesuffix(".dist-info").rpartition("-")
            found[canonicalize_name(name)] = version
    return found


def _reinstall_for_this_python(builder: _Builder, venv: Path, log: Path) -> list[str]:
    """Replace each wheel built for another Python by the release's wheel for this one (pip download picks
    the most specific tag; uv installs it). Notes say what was replaced or why it could not be."""
    notes = []
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    for site_packages in sorted((venv / "lib").glob("python*/site-packages")):
        for name, version in wheels_for_other_pythons(site_packages).items():
            with tempfile.TemporaryDirectory(prefix="parity-wheel-") as folder:
                command = [
                    sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
                    "--dest", folder, f"{name}=={version}",
                ]  # fmt: skip
                with log.open("a", encoding="utf-8") as handle:
                    handle.write("$ " + " ".join(command) + "\n")
                try:
                    done = subprocess.run(command, capture_output=True, text=True, timeout=UV_TIMEOUT_S)
                except (OSError, subprocess.TimeoutExpired) as error:
                    notes.append(
                        f"{name} {version}: its wheel is for another Python; no {tag} wheel ({error})"
                    )
                    continue
                with log.open("a", encoding="utf-8") as handle:
                    handle.write(done.stdout + done.stderr + f"[exit {done.returncode}]\n")
                wheels = sorted(Path(folder).glob("*.whl"))
                if done.returncode != 0 or not wheels or f"-{tag}-" not in wheels[0].name:
                    notes.append(
                        f"{name} {version}: its wheel is for another Python and no {tag} wheel was found"
                    )
                    continue
                builder.pip_install(["--reinstall", "--no-deps", str(wheels[0])], f"reinstalling {name}")
                notes.append(
                    f"{name} {version}: uv took a wheel for another Python; reinstalled {wheels[0].name}"
                )
    return notes
