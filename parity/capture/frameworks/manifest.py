"""The manifest's framework and rows sections: which framework built the trainer, the stubs its adapter applied,
its launch decisions per world size, every dataset load with full and served row counts, and dataset shuffles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parity.capture.options import CaptureOptions

FRAMEWORK_FILE = "framework.json"


def _events(run: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """One run's events of a kind, each once, without process ids and times."""
    unique: list[dict[str, Any]] = []
    for event in run["events"]:
        if event.get("kind") != kind:
            continue
        stripped = {key: value for key, value in event.items() if key not in ("kind", "pid", "time")}
        if stripped not in unique:
            unique.append(stripped)
    return unique


def _framework(first: dict[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any]:
    path = Path(first["state_dir"]) / FRAMEWORK_FILE
    record = json.loads(path.read_text()) if path.is_file() else {}
    return {
        "name": record.get("framework"),
        "version": record.get("version"),
        "entry": record.get("entry"),
        "stubs": _events(first, "framework-stub"),
        "launch_decisions": {str(run["world_size"]): _events(run, "launch-decision") for run in runs},
    }


def rows_section(limit: int | None, loads: list[dict[str, Any]]) -> dict[str, Any]:
    """Whether rows were limited, and each load's full and served counts per split."""
    limited = any(
        split.get("full_rows") is None or split.get("served_rows") != split.get("full_rows")
        for load in loads
        for split in load.get("splits", {}).values()
    )
    return {
        "limit": limit,
        "limited": bool(limit) and limited,
        "loads": [
            {
                "call": load.get("call"),
                "asked_by": load.get("asked_by"),
                "splits": {
                    name: {key: split.get(key) for key in ("full_rows", "served_rows")}
                    for name, split in load.get("splits", {}).items()
                },
            }
            for load in loads
        ],
    }


def framework_manifest(options: CaptureOptions, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The manifest keys this part adds: `framework`, `rows` and `shuffles` (from the first, full run)."""
    first = runs[0]
    return {
        "framework": _framework(first, runs),
        "rows": rows_section(options.rows, _events(first, "dataset-rows")),
        "shuffles": _events(first, "dataset-shuffle"),
    }
