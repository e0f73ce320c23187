"""Run-directory files: atomic JSON writes (parity.atomic), JSONL step logs, the INCOMPLETE marker.

A JSONL line is written in one call; a reader drops a torn last line left by a killed run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parity.atomic import write_text_atomic

INCOMPLETE = "INCOMPLETE"


def write_json_atomic(path: Path, value: Any) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one record as a single line (one write call, flushed)."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every complete record; a torn last line (killed mid-write) is dropped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def truncate_jsonl(path: Path, last_step: int) -> list[dict[str, Any]]:
    """Keep records up to `last_step` (the checkpoint a resumed leg continues from); rewrite atomically."""
    kept = [r for r in read_jsonl(path) if r.get("step", 0) <= last_step]
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    return kept


def mark_incomplete(run_dir: Path) -> None:
    write_text_atomic(
        run_dir / INCOMPLETE, "this run has not finished; `parity run ... --resume` continues it\n"
    )


def mark_complete(run_dir: Path) -> None:
    (run_dir / INCOMPLETE).unlink(missing_ok=True)
