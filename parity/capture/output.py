"""The captured recipe directory, written whole: artifacts of the first world size, the training arguments of
every world size, the kept log and the manifest (with a digest of every file), assembled in a staging folder
beside --out and put in place only once complete."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from parity.capture.integrity import seal
from parity.capture.outdir import install
from parity.capture.workspace import remove_tree

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
    "loss_step.json",
)
"""What the first (full) run writes into its state directory and the capture keeps."""


def _redact_files(folder: Path, secrets: list[str]) -> None:
    """Replace secret values in every JSON and text file of the capture (a recipe may copy a token into its
    training arguments or a hub call)."""
    spelled = [(secret, json.dumps(secret)[1:-1]) for secret in secrets]
    for path in folder.rglob("*"):
        if not path.is_file() or path.suffix not in (".json", ".txt", ".jinja", ".jsonl"):
            continue
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        redacted = text
        for secret, escaped in spelled:
            redacted = redacted.replace(secret, "<redacted>").replace(escaped, "<redacted>")
        if redacted != text:
            path.write_bytes(redacted.encode("utf-8", errors="surrogateescape"))


def write_capture(
    out: Path, runs: list[dict[str, Any]], manifest: dict[str, Any], log: Path, secrets: list[str] = ()
) -> dict[str, Any]:
    """Assemble the capture in a staging folder beside `out` (secret --env values redacted), then put it at
    `out`; the sealed manifest."""
    folder = Path(os.path.abspath(out)).parent
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{Path(os.path.abspath(out)).name}.staging-", dir=folder))
    try:
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700; a capture gets ordinary permissions
        first = runs[0]["state_dir"]
        for name in ARTIFACTS:
            if (first / name).exists():
                shutil.move(str(first / name), staging / name)
        for run in runs:
            target = staging / "world_sizes" / str(run["world_size"])
            target.mkdir(parents=True)
            (target / "training_args.json").write_text(
                json.dumps(run["training_args"], indent=2, sort_keys=True)
            )
        shutil.copyfile(log, staging / "log.txt")
        (staging / "manifest.json").write_text(json.dumps(manifest, default=str))
        if secrets:
            _redact_files(staging, list(secrets))
        unsealed = json.loads((staging / "manifest.json").read_text())
        (staging / "manifest.json").unlink()
        sealed = seal(unsealed, staging)
        (staging / "manifest.json").write_text(json.dumps(sealed, indent=2, sort_keys=True))
        install(staging, out)
    except BaseException:
        remove_tree(staging)
        raise
    return sealed


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
