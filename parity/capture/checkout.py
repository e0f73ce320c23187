"""The checkout a capture runs: copied to a temporary folder (VCS data, outputs and weights left out), its
content hash (for the capture cache) and its git commit."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

IGNORED_NAMES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "node_modules",
        "outputs",
        "wandb",
        ".ipynb_checkpoints",
    }
)
"""Folders never copied: version control, caches, virtual environments and training outputs."""
IGNORED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".pyc")
"""Model weights and bytecode: a capture never loads weights."""


def _ignored(name: str) -> bool:
    return name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


def copy_checkout(source: Path, destination: Path) -> None:
    """Copy the checkout's files (symlinks kept as links) into `destination`."""
    shutil.copytree(
        source, destination, symlinks=True, ignore=lambda _folder, names: [n for n in names if _ignored(n)]
    )


def content_hash(source: Path) -> str:
    """sha256 over every copied file's relative path and bytes (links by their target)."""
    digest = hashlib.sha256()
    for folder, folders, files in os.walk(source):
        folders[:] = sorted(name for name in folders if not _ignored(name))
        for name in sorted(files):
            if _ignored(name):
                continue
            path = Path(folder) / name
            digest.update(str(path.relative_to(source)).encode() + b"\0")
            if path.is_symlink():
                digest.update(b"link:" + os.readlink(path).encode())
            elif path.is_file():
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def git_commit(source: Path) -> str | None:
    """The checked-out commit, or None when the checkout is not a git repository."""
    if not (source / ".git").exists():
        return None
    result = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None if result.returncode == 0 else None
