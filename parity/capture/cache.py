"""The capture cache key: what a captured recipe depends on (checkout content, command, options, interpreter
and the hook code itself), so an unchanged recipe is not run again."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from parity.capture.checkout import content_hash
from parity.capture.options import CaptureOptions
from parity.capture.runner import HOOK_DIR

SCHEMA_VERSION = 1


def hook_hash() -> str:
    """sha256 of the capture's own code (a changed hook invalidates every cached capture)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    for path in sorted({*package.rglob("*.py"), *HOOK_DIR.rglob("*.py")}):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def interpreter_identity(python: str) -> str:
    """What names the interpreter: parity's own (with its version), 'pinned' (the checkout's dependency
    files are part of its content hash) or the given path."""
    if python == "current":
        return f"current:{sys.executable}:{sys.version}"
    if python == "pinned" or python.startswith("framework:"):
        return python
    return f"path:{Path(python).absolute()}"


def cache_key(options: CaptureOptions) -> str:
    payload = {
        "schema_version": SCHEMA_VERSION,
        "checkout": content_hash(options.checkout),
        "command": list(options.command),
        "data": {name: content_hash(Path(folder)) for name, folder in sorted(options.data.items())},
        "tokenizers": {
            name: content_hash(Path(folder)) for name, folder in sorted(options.tokenizers.items())
        },
        "stubs": sorted(options.stubs),
        "env": dict(sorted(options.env.items())),
        "world_sizes": list(options.world_sizes),
        "python": interpreter_identity(options.python),
        "hook": hook_hash(),
        **({"rows": options.rows} if options.rows is not None else {}),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
