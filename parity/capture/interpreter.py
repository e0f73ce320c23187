"""The interpreter a recipe runs under (parity's own, the checkout's pinned environment, or a path) and what
identifies it for the capture cache: its real path and file, its version and its installed distributions."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.errors import ParityError

MINIMUM_PYTHON = (3, 9)
_PROBE = (
    "import sys\n"
    "sys.stdout.write('parity-python %d %d %d\\n' % tuple(sys.version_info[:3]))\n"
    "sys.stdout.flush()\n"
    "import json, importlib.metadata as m\n"
    "print(json.dumps({'version': sys.version, 'distributions': sorted("
    "'%s==%s' % (d.metadata['Name'], d.version) for d in m.distributions() if d.metadata['Name'])}))\n"
)
"""Asks for sys.version_info first (any Python answers it), then the version and the distributions."""


@dataclass(frozen=True)
class Interpreter:
    python: Path
    description: dict[str, Any]


def _file_identity(path: Path) -> dict[str, Any]:
    real = path.resolve()
    stat = real.stat()
    return {"real_path": str(real), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "inode": stat.st_ino}


def _distributions_here() -> list[str]:
    import importlib.metadata

    return sorted(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    )


def probe_python(path: Path, flag: str = "--python") -> dict[str, Any]:
    """Run `path` as a Python interpreter and read its version and distributions; a ParityError when it is not
    a Python (or too old to capture with)."""
    shown = f"{flag} {path}"
    try:
        done = subprocess.run(
            [str(path), "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONNOUSERSITE": "1"},
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ParityError(f"{shown}: did not answer within 60 s; is it a Python interpreter?") from None
    except OSError as err:
        raise ParityError(f"{shown}: cannot be run ({err.strerror or err})") from None
    lines = done.stdout.splitlines()
    words = lines[0].split() if lines else []
    if len(words) != 4 or words[0] != "parity-python" or not all(word.isdigit() for word in words[1:]):
        raise ParityError(
            f"{shown}: not a Python interpreter (it did not report sys.version_info); "
            "give the path of a python executable, or current or pinned"
        )
    version = tuple(int(word) for word in words[1:])
    if version[:2] < MINIMUM_PYTHON:
        wanted = ".".join(map(str, MINIMUM_PYTHON))
        raise ParityError(
            f"{shown}: Python {'.'.join(map(str, version))} is too old for a capture ({wanted}+)"
        )
    try:
        found = json.loads(lines[1])
    except (IndexError, json.JSONDecodeError):
        raise ParityError(
            f"{shown}: Python {'.'.join(map(str, version))} could not list its packages"
        ) from None
    return {"version": found["version"], "distributions": found["distributions"]}


def identity(choice: str, flag: str = "--python") -> dict[str, Any]:
    """What names the interpreter in the cache key: parity's own or a path by its real file, version and
    installed distributions; 'pinned' by name (the checkout's dependency files are in its content hash) and a
    framework environment by its name and version (pinned, built as of a fixed date)."""
    if choice == "pinned" or choice.startswith("framework:"):
        return {"requested": choice}
    if choice == "current":
        path, found = Path(sys.executable), {"version": sys.version, "distributions": _distributions_here()}
    else:
        path = interpreter_path(choice, flag)
        found = probe_python(path, flag)
    distributions = hashlib.sha256("\n".join(found["distributions"]).encode()).hexdigest()
    return {
        "requested": choice,
        **_file_identity(path),
        "version": found["version"],
        "distributions_sha256": distributions,
    }


def interpreter_path(choice: str, flag: str = "--python") -> Path:
    """The executable a `--python PATH` names (a ParityError when there is none)."""
    path = Path(os.path.abspath(os.path.expanduser(choice)))
    if path.is_dir():
        raise ParityError(f"{flag} {choice}: a folder; give the python executable inside it (bin/python)")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ParityError(f"{flag} {choice}: not an executable interpreter (use current, pinned or a path)")
    return path


def resolve_interpreter(
    choice: str, checkout: Path, stubs: tuple[str, ...] = (), flag: str = "--python"
) -> Interpreter:
    """The interpreter the recipe runs under: parity's own, the checkout's pinned environment (the stubbed
    modules not installed), or a path (checked to be a Python)."""
    if choice == "current":
        return Interpreter(Path(sys.executable), {"requested": "current", "executable": sys.executable})
    if choice == "pinned":
        try:
            from parity.capture.environment import build_environment
        except ImportError:
            raise ParityError(
                "--python pinned: the environment builder is not available in this parity"
            ) from None
        environment = build_environment(checkout, skip=tuple(stubs))
        return Interpreter(
            Path(environment.python),
            {
                "requested": "pinned",
                "executable": str(environment.python),
                "installed": getattr(environment, "installed", None),
                "exclude_newer": getattr(environment, "exclude_newer", None),
                "notes": getattr(environment, "notes", None),
                "cached": getattr(environment, "cached", None),
                "bytecode": getattr(environment, "bytecode", None),
            },
        )
    if choice.startswith("framework:"):
        from parity.capture.frameworks.environments import build_framework_environment

        environment = build_framework_environment(choice)
        return Interpreter(
            Path(environment.python),
            {
                "requested": choice,
                "executable": str(environment.python),
                "installed": environment.installed,
                "exclude_newer": environment.exclude_newer,
                "notes": environment.notes,
                "cached": environment.cached,
                "bytecode": environment.bytecode,
            },
        )
    path = interpreter_path(choice, flag)
    found = probe_python(path, flag)
    return Interpreter(path, {"requested": choice, "executable": str(path), "version": found["version"]})
