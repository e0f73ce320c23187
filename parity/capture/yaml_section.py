"""A recipe YAML's `capture:` section: the options of a capture (paths relative to the YAML's folder), run
(cached) when the YAML is resolved, so the YAML stands for the captured recipe."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from parity.capture.options import DEFAULT_WORLD_SIZES, CaptureOptions
from parity.errors import ParityError, unknown_key_error

SECTION_KEYS = (
    "checkout",
    "command",
    "data",
    "tokenizer",
    "stubs",
    "env",
    "python",
    "world_sizes",
    "timeout",
    "out",
    "rows",
    "train_step",
)


def captures_root() -> Path:
    """Where captures declared in YAML recipes live: PARITY_CACHE_DIR/captures, else ~/.cache/parity/captures."""
    if os.environ.get("PARITY_CACHE_DIR"):
        return Path(os.environ["PARITY_CACHE_DIR"]) / "captures"
    return Path.home() / ".cache" / "parity" / "captures"


def _mapping(section: dict[str, Any], key: str, where: str) -> dict[str, str]:
    value = section.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str | int | float) for v in value.values()):
        raise ParityError(f"{where}: 'capture.{key}' must map names to strings")
    return {str(name): str(item) for name, item in value.items()}


def _strings(section: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = section.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ParityError(f"{where}: 'capture.{key}' must be a list of strings")
    return tuple(value)


def _command(section: dict[str, Any], where: str) -> tuple[str, ...]:
    value = section.get("command")
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as err:
            raise ParityError(f"{where}: 'capture.command' cannot be split ({err})") from None
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ParityError(f"{where}: 'capture.command' must be a string or a list of strings")


def _world_sizes(section: dict[str, Any], where: str) -> tuple[int, ...]:
    value = section.get("world_sizes", list(DEFAULT_WORLD_SIZES))
    if not isinstance(value, list) or not value or not all(type(item) is int for item in value):
        raise ParityError(f"{where}: 'capture.world_sizes' must be a list of integers")
    return tuple(value)


def _timeout(section: dict[str, Any], where: str) -> float:
    value = section.get("timeout", 600.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParityError(f"{where}: 'capture.timeout' must be a number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise ParityError(
            f"{where}: 'capture.timeout' must be a finite positive number of seconds, got {value}"
        )
    return float(value)


def _rows(section: dict[str, Any], where: str) -> int | None:
    value = section.get("rows")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ParityError(f"{where}: 'capture.rows' must be a positive whole number")
    return value


def _train_step(section: dict[str, Any], where: str) -> bool:
    value = section.get("train_step", False)
    if not isinstance(value, bool):
        raise ParityError(f"{where}: 'capture.train_step' must be true or false")
    return value


def _python(section: dict[str, Any], base: Path, where: str) -> str:
    value = section.get("python", "current")
    if not isinstance(value, str):
        raise ParityError(f"{where}: 'capture.python' must be current, pinned, framework:NAME or a path")
    if value in ("current", "pinned") or value.startswith("framework:"):
        return value
    return str(base / Path(value).expanduser())


def default_out(options: CaptureOptions) -> Path:
    """The cache folder of a capture declared without `out`: a hash of its options (the capture itself
    re-runs only when the checkout's content changed)."""
    payload = {
        "checkout": str(options.checkout.resolve()),
        "command": list(options.command),
        "data": {name: str(Path(folder).resolve()) for name, folder in sorted(options.data.items())},
        "tokenizers": {name: str(Path(f).resolve()) for name, f in sorted(options.tokenizers.items())},
        "stubs": list(options.stubs),
        "env": dict(sorted(options.env.items())),
        "python": options.python,
        "world_sizes": list(options.world_sizes),
        **({"rows": options.rows} if options.rows is not None else {}),
        **({"train_step": True} if options.train_step else {}),
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
    return captures_root() / digest


def options_from_section(section: Any, yaml_path: Path) -> CaptureOptions:
    """The CaptureOptions a `capture:` section declares (one-line ParityError for a bad section)."""
    where = f"recipe {yaml_path}"
    if not isinstance(section, dict):
        raise ParityError(f"{where}: 'capture' must be a mapping (checkout, command, data, ...)")
    for key in section:
        if key not in SECTION_KEYS:
            raise unknown_key_error(f"key in {yaml_path}'s capture section", str(key), list(SECTION_KEYS))
    for required in ("checkout", "command"):
        if required not in section:
            raise ParityError(f"{where}: 'capture' needs '{required}'")
    if not isinstance(section["checkout"], str):
        raise ParityError(f"{where}: 'capture.checkout' must be a path")
    base = yaml_path.parent

    def local(text: str) -> Path:
        return base / Path(text).expanduser()

    options = CaptureOptions(
        checkout=local(section["checkout"]),
        out=Path(),
        command=_command(section, where),
        data={name: local(folder) for name, folder in _mapping(section, "data", where).items()},
        tokenizers={name: local(folder) for name, folder in _mapping(section, "tokenizer", where).items()},
        stubs=_strings(section, "stubs", where),
        env=_mapping(section, "env", where),
        world_sizes=_world_sizes(section, where),
        python=_python(section, base, where),
        timeout=_timeout(section, where),
        rows=_rows(section, where),
        train_step=_train_step(section, where),
        recipe_file=yaml_path,
    )
    out = section.get("out")
    if out is not None and not isinstance(out, str):
        raise ParityError(f"{where}: 'capture.out' must be a path")
    return replace(options, out=local(out) if out else default_out(options))


def captured_recipe(section: Any, yaml_path: Path):
    """Capture (or reuse the cached capture of) what a YAML's `capture:` section declares; its Recipe."""
    from parity.capture.pipeline import capture
    from parity.capture.source import PREFIX, recipe_for

    result = capture(options_from_section(section, yaml_path))
    return recipe_for(f"{PREFIX}{result.path}")
