"""What every capture process shares: the runner's configuration, the event log and the stop/fail markers.

Events are JSON lines appended to `events.jsonl` in the run's state directory; the runner merges them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NoReturn

_config: dict[str, Any] | None = None
_MAX_EVENTS_PER_PROCESS = 400
_events_written = 0


def config() -> dict[str, Any]:
    """The configuration the runner wrote for this run (empty outside a capture)."""
    global _config
    if _config is None:
        path = os.environ.get("PARITY_CAPTURE_CONFIG")
        _config = json.loads(Path(path).read_text()) if path else {}
    return _config


def state_dir() -> Path:
    return Path(config()["state_dir"])


def portable(text: str) -> str:
    """A string with the temporary checkout copy and home replaced by stable placeholders."""
    for placeholder, key in (("<checkout>", "checkout_copy"), ("<capture-home>", "temp_root")):
        root = config().get(key)
        if root and root in text:
            text = text.replace(root, placeholder)
    return text


def jsonable(value: Any) -> Any:
    """A JSON-safe rendering of a configuration value (enums by value, unknown objects by repr)."""
    import dataclasses
    import enum
    import math

    if isinstance(value, str):
        return portable(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [jsonable(item) for item in items]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name, None)) for f in dataclasses.fields(value)}
    if hasattr(value, "to_dict") and callable(value.to_dict):
        try:
            return jsonable(value.to_dict())
        except Exception:  # noqa: BLE001 - fall back to repr for objects whose to_dict fails
            pass
    return portable(
        repr(value) if not isinstance(value, type) else f"{value.__module__}.{value.__qualname__}"
    )


def record(kind: str, **detail: Any) -> None:
    """Append one event to the run's log (a bounded number per process)."""
    global _events_written
    if not config() or _events_written >= _MAX_EVENTS_PER_PROCESS:
        return
    _events_written += 1
    line = json.dumps({"kind": kind, "pid": os.getpid(), "time": time.time(), **jsonable(detail)})
    with open(state_dir() / "events.jsonl", "a", encoding="utf-8") as handle:
        handle.write(line + "\n")


def write_json(name: str, payload: Any) -> None:
    """Write one JSON artifact into the state directory (temp file + rename)."""
    target = state_dir() / name
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(json.dumps(jsonable(payload), indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, target)


def _exit(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed stream must not block the exit
            stream.flush()
    os._exit(code)


def stop_captured() -> NoReturn:
    """Mark the run as captured and end this process (nothing trains)."""
    write_json("stopped.json", {"pid": os.getpid(), "time": time.time()})
    print("[parity capture] trainer constructed: captured, stopping before training", file=sys.stderr)
    _exit(int(config()["exit_captured"]))


def fail(reason: str, message: str) -> NoReturn:
    """Stop the capture with one line the user can act on."""
    write_json("failure.json", {"reason": reason, "message": message, "pid": os.getpid()})
    print(f"[parity capture] stopped: {message}", file=sys.stderr)
    _exit(int(config()["exit_failed"]))


class _WarningLogHandler(logging.Handler):
    """Records library log warnings (transformers, trl, ...) as capture warnings."""

    def emit(self, record_: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # recording must never break the recipe
            record("warning", source=f"log:{record_.name}", message=record_.getMessage()[:2000])


def install_warning_recorder() -> None:
    """Record every shown Python warning and every library log warning."""
    shown = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        try:
            where = f"{portable(str(filename))}:{lineno}"
            record(
                "warning", source=f"warnings:{category.__name__}", message=str(message)[:2000], where=where
            )
        except Exception:  # noqa: BLE001
            pass
        return shown(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    handler = _WarningLogHandler(level=logging.WARNING)
    for name in ("transformers", "trl", "peft", "datasets", "accelerate", ""):
        logging.getLogger(name).addHandler(handler)
