"""Digests of every file of a capture, written into its manifest and verified when it is read: a capture edited
by hand is refused (unless edits are trusted), never read as if the recipe's own code had produced it."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FILES_KEY = "files"
"""Manifest key: {relative path: sha256} of every file of the capture but the manifest."""
DIGEST_KEY = "manifest_sha256"
"""Manifest key: sha256 of the manifest's own content without this key."""
TRUST_EDITS_VARIABLE = "PARITY_TRUST_EDITS"
"""Set to 1 (or `parity --trust-edits ...`) to read edited captures as they are."""
_verified: dict[tuple, list[str]] = {}


def trusting_edits() -> bool:
    return os.environ.get(TRUST_EDITS_VARIABLE, "") not in ("", "0")


def _files(folder: Path) -> list[Path]:
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and path.relative_to(folder).as_posix() != MANIFEST
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(folder: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `folder` except the manifest."""
    return {path.relative_to(folder).as_posix(): _sha256(path) for path in _files(folder)}


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the manifest as JSON (sorted keys, compact), without its own digest."""
    content = {key: value for key, value in manifest.items() if key != DIGEST_KEY}
    text = json.dumps(json.loads(json.dumps(content, default=str)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def seal(manifest: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The manifest with the digests of `folder`'s files and of itself."""
    sealed = {**manifest, FILES_KEY: file_digests(folder)}
    return {**sealed, DIGEST_KEY: manifest_digest(sealed)}


def changes(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """The files of a capture that differ from what was captured ('training_args.json', 'prepared/x.parquet
    (deleted)', 'notes.txt (added)'); empty for an untouched capture. Checked once per state of the files."""
    files = _files(folder)
    state = (
        str(folder.resolve()),
        manifest.get(DIGEST_KEY),
        *((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files),
    )
    manifest_stat = (folder / MANIFEST).stat()
    state = (*state, manifest_stat.st_size, manifest_stat.st_mtime_ns)
    if state not in _verified:
        _verified[state] = _changes(folder, manifest, files)
    return _verified[state]


def _changes(folder: Path, manifest: dict[str, Any], files: list[Path]) -> list[str]:
    found: list[str] = []
    if manifest.get(DIGEST_KEY) != manifest_digest(manifest):
        found.append(MANIFEST)
    recorded = manifest.get(FILES_KEY)
    if not isinstance(recorded, dict):
        return [*found, f"{MANIFEST} ('{FILES_KEY}' missing)"] if MANIFEST not in found else found
    present = {path.relative_to(folder).as_posix(): path for path in files}
    for name in sorted(set(recorded) | set(present)):
        if name not in present:
            found.append(f"{name} (deleted)")
        elif name not in recorded:
            found.append(f"{name} (added)")
        elif _sha256(present[name]) != recorded[name]:
            found.append(name)
    return found
