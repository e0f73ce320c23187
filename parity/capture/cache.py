"""The capture cache key: what a captured recipe depends on (checkout content, command, options, interpreter
and the hook code itself), so an unchanged recipe is not run again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from parity.capture.checkout import content_hash
from parity.capture.interpreter import identity
from parity.capture.options import CaptureOptions
from parity.capture.runner import HOOK_DIR

SCHEMA_VERSION = 2
"""2: every file's digest in the manifest (verified on load), telemetry variables recorded."""


def hook_hash() -> str:
    """sha256 of the capture's own code (a changed hook invalidates every cached capture)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted({*package.rglob("*.py"), *HOOK_DIR.rglob("*.py")}):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def cache_key(options: CaptureOptions, checkout_hash: str | None = None) -> str:
    """sha256 over what a capture depends on: the checkout's content (data behind links included), the
    command, the --data and --tokenizer folders' content, stubs, --env, world sizes, the interpreter's identity
    (real file, version, installed distributions), the capture's own code and whether the first optimizer step
    runs."""
    payload = {
        "schema_version": SCHEMA_VERSION,
        "checkout": checkout_hash or content_hash(options.checkout),
        "command": list(options.command),
        "data": {name: content_hash(Path(folder)) for name, folder in sorted(options.data.items())},
        "tokenizers": {
            name: content_hash(Path(folder)) for name, folder in sorted(options.tokenizers.items())
        },
        "stubs": sorted(options.stubs),
        "env": {
            name: hashlib.sha256(value.encode()).hexdigest() for name, value in sorted(options.env.items())
        },
        "world_sizes": list(options.world_sizes),
        "python": identity(options.python, options.name("python")),
        "hook": hook_hash(),
        **({"rows": options.rows} if options.rows is not None else {}),
        **({"train_step": True} if options.train_step else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
