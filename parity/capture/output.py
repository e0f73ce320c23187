"""The captured recipe directory, written atomically: artifacts of the first world size, the training
arguments of every world size, the manifest and the full log, renamed into place only once complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

ARTIFACTS = (
    "training_args.json",
    "collator.json",
    "model.json",
    "tokenizer",
    "raw",
    "prepared",
    "collated",
    "framework.json",
    "loaded",
)
"""What the first (full) run writes into its state directory and the capture keeps."""


def _install(staging: Path, out: Path) -> None:
    """Replace `out` by the fully written `staging` folder (rename; the old one removed afterwards)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_capture(out: Path, runs: list[dict[str, Any]], manifest: dict[str, Any], log: Path) -> None:
    """Assemble the capture in a staging folder beside `out`, then replace `out` with it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        first = runs[0]["state_dir"]
        for name in ARTIFACTS:
            if (first / name).exists():
                shutil.move(str(first / name), staging / name)
        for run in runs:
            folder = staging / "world_sizes" / str(run["world_size"])
            folder.mkdir(parents=True)
            (folder / "training_args.json").write_text(
                json.dumps(run["training_args"], indent=2, sort_keys=True)
            )
        shutil.copyfile(log, staging / "log.txt")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        _install(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
