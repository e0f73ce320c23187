"""The checkout a capture runs: what is copied to the temporary folder (VCS data, outputs and weights left out;
a symbolic link that leads outside the checkout copied as the content it points at, so nothing outside is
reachable for writing through the copy), its content hash (for the capture cache) and its git commit."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from parity.errors import ParityError

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
LINKED_BYTES_LIMIT = 1024**3
"""Most bytes a capture copies from behind links that lead outside the checkout."""
_HASH_CHUNK = 1024 * 1024


def _ignored(name: str) -> bool:
    return name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES)


@dataclass(frozen=True)
class Entry:
    """One item of the copy: a folder, a file (read from `source`) or a link (`source` is its target, relative
    and inside the copy)."""

    relative: str
    kind: str
    source: str = ""


@dataclass(frozen=True)
class CheckoutPlan:
    """What a copy of a folder holds, decided once: entries in order, what was left out, bytes from outside."""

    root: Path
    entries: tuple[Entry, ...]
    left_out: tuple[str, ...]
    linked_bytes: int

    def copy_to(self, destination: Path) -> None:
        """Write the copy (folders writable by their owner, files with their mode, inside links as links)."""
        destination.mkdir(parents=True)
        for entry in self.entries:
            target = destination / entry.relative
            if entry.kind == "dir":
                target.mkdir()
            elif entry.kind == "file":
                shutil.copy2(entry.source, target)
            else:
                os.symlink(entry.source, target)

    def content_hash(self) -> str:
        """sha256 over every entry's kind, relative path and content (a file's bytes, a link's target)."""
        digest = hashlib.sha256()
        for entry in self.entries:
            digest.update(f"{entry.kind}:{entry.relative}\0".encode())
            if entry.kind == "link":
                digest.update(entry.source.encode() + b"\0")
            elif entry.kind == "file":
                digest.update(_file_digest(Path(entry.source)))
        return digest.hexdigest()


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.digest()


class _Planner:
    def __init__(self, source: Path, limit: int | None, name: str) -> None:
        self.source = source
        self.root = source.resolve()
        self.limit = limit
        self.name = name
        self.entries: list[Entry] = []
        self.left_out: list[str] = []
        self.linked_bytes = 0

    def inside(self, real: Path) -> bool:
        return real == self.root or self.root in real.parents

    def count_linked(self, size: int, origin: str) -> None:
        self.linked_bytes += size
        if self.limit is not None and self.linked_bytes > self.limit:
            raise ParityError(
                f"{self.name} {self.source}: the link {origin} leads outside the checkout to more than "
                f"{self.limit // 1024**2} MB, which a capture would copy (so nothing outside is written through "
                "the copy): copy what the recipe needs into the checkout, or serve data with --data"
            )

    def walk(self, folder: Path, relative: PurePosixPath, origin: str | None, visiting: frozenset[Path]):
        try:
            names = sorted(os.listdir(folder))
        except OSError as err:
            where = relative.as_posix() if relative.parts else "."
            raise ParityError(
                f"{self.name} {self.source}: cannot read {where} ({err.strerror or err})"
            ) from None
        for name in names:
            if _ignored(name):
                continue
            path, rel = folder / name, relative / name
            if path.is_symlink():
                self.link(path, rel, origin, visiting)
            elif path.is_dir():
                self.entries.append(Entry(rel.as_posix(), "dir"))
                self.walk(path, rel, origin, visiting)
            elif path.is_file():
                if origin is not None:
                    self.count_linked(path.stat().st_size, origin)
                self.entries.append(Entry(rel.as_posix(), "file", str(path)))
            else:
                self.left_out.append(f"{rel.as_posix()}: not a regular file")

    def link(self, path: Path, rel: PurePosixPath, origin: str | None, visiting: frozenset[Path]) -> None:
        real = Path(os.path.realpath(path))
        if not real.exists():
            self.left_out.append(f"{rel.as_posix()}: a broken link")
            return
        if self.inside(real):
            target = os.path.relpath(real.relative_to(self.root).as_posix(), rel.parent.as_posix())
            self.entries.append(Entry(rel.as_posix(), "link", target))
            return
        here = origin or f"{rel.as_posix()} -> {os.readlink(path)}"
        if real.is_dir():
            if real in self.root.parents or real in visiting:
                raise ParityError(
                    f"{self.name} {self.source}: the link {here} leads to {real}, a folder that contains the "
                    "link itself; a capture copies what links outside the checkout lead to: remove the link "
                    "or point it inside the checkout"
                )
            self.entries.append(Entry(rel.as_posix(), "dir"))
            self.walk(real, rel, here, visiting | {real})
        elif real.is_file():
            self.count_linked(real.stat().st_size, here)
            self.entries.append(Entry(rel.as_posix(), "file", str(real)))
        else:
            self.left_out.append(f"{rel.as_posix()}: a link to something that is not a regular file")


def plan_copy(source: Path, limit: int | None = LINKED_BYTES_LIMIT, name: str = "--checkout") -> CheckoutPlan:
    """What a copy of `source` holds. Links that resolve inside it stay links (relative, inside the copy);
    links that lead outside are followed and their content copied (at most `limit` bytes, else a ParityError
    naming the link); broken links and special files are left out."""
    planner = _Planner(Path(source), limit, name)
    planner.walk(planner.root, PurePosixPath(), None, frozenset())
    return CheckoutPlan(planner.root, tuple(planner.entries), tuple(planner.left_out), planner.linked_bytes)


def copy_checkout(source: Path, destination: Path) -> None:
    """Copy the checkout's files into `destination` (see plan_copy)."""
    plan_copy(source).copy_to(destination)


def content_hash(source: Path) -> str:
    """sha256 over every copied file's relative path and bytes, data behind links included."""
    return plan_copy(source, limit=None).content_hash()


def git_commit(source: Path) -> str | None:
    """The checked-out commit, or None when the checkout is not a git repository."""
    if not (source / ".git").exists():
        return None
    result = subprocess.run(
        ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() or None if result.returncode == 0 else None
