"""The capture's private temporary folder: outside the checkout and --out, with paths short enough for the
AF_UNIX sockets the recipe's processes open under TMPDIR, and removed completely (read-only folders too)."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from parity.errors import ParityError

PREFIX = "parity-capture-"
SOCKET_PATH_LIMIT = 107
"""Longest AF_UNIX socket path Linux accepts (sun_path is 108 bytes with its terminating NUL)."""
SOCKET_ROOM = 40
"""What Python's multiprocessing adds under TMPDIR for its sockets: `/pymp-XXXXXXXX/listener-XXXXXXXX`
(33 characters), with a margin."""
_LONGEST_RUN_TMP = f"/{PREFIX}XXXXXXXX/tmp4096"


def run_tmp(temp_root: Path, world_size: int) -> Path:
    """The TMPDIR of one world size's run: directly under the temporary root, so its path stays short."""
    return temp_root / f"tmp{world_size}"


def _candidates() -> list[Path]:
    seen: dict[str, None] = {}
    for folder in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        seen.setdefault(os.path.abspath(folder), None)
    return [Path(folder) for folder in seen]


def _usable(folder: Path, avoid: list[Path]) -> bool:
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return False
    real = folder.resolve()
    return not any(real == other.resolve() or other.resolve() in real.parents for other in avoid)


def fits_sockets(folder: Path) -> bool:
    """Whether the recipe's sockets under a run TMPDIR made in `folder` stay within the AF_UNIX limit."""
    return len(str(folder)) + len(_LONGEST_RUN_TMP) + SOCKET_ROOM <= SOCKET_PATH_LIMIT


def make_temp_root(avoid: list[Path]) -> Path:
    """A new private folder (mode 0700) in TMPDIR, or in /tmp when TMPDIR is inside `avoid` (the checkout,
    --out) or too long for the recipe's socket paths."""
    usable = [folder for folder in _candidates() if _usable(folder, avoid)]
    if not usable:
        raise ParityError(
            f"no writable temporary folder outside the checkout (TMPDIR={tempfile.gettempdir()}): "
            "set TMPDIR to a writable folder outside it"
        )
    base = next((folder for folder in usable if fits_sockets(folder)), usable[0])
    return Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))


def socket_path_too_long(tmpdir: Path) -> bool:
    return len(str(tmpdir)) + SOCKET_ROOM > SOCKET_PATH_LIMIT


def _make_writable_and_retry(function, path, _error) -> None:
    """rmtree's error handler: give the owner write access to the folder in the way, then retry once."""
    try:
        parent = os.path.dirname(path)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IRWXU)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, os.stat(path).st_mode | stat.S_IRWXU)
        function(path)
    except OSError:
        pass


def remove_tree(path: Path) -> None:
    """Remove a folder parity created, including what the recipe made read-only in it; never raises."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        Path(path).unlink(missing_ok=True)
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_make_writable_and_retry)
    else:
        shutil.rmtree(path, onerror=_make_writable_and_retry)
    if os.path.lexists(path):  # a folder emptied only after its permissions were fixed
        shutil.rmtree(path, ignore_errors=True)
