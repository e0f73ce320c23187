"""Where a capture may write: an --out that is absent, empty or an earlier capture (anything else only with
--force, and never a folder holding the checkout, the current directory, HOME, the recipe file being resolved
or an input); the capture put in place whole; the log of a failed capture, kept in parity's cache folder."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from parity.capture.options import CaptureOptions, within
from parity.capture.processes import signals_deferred
from parity.capture.workspace import remove_tree
from parity.errors import ParityError


def cache_dir() -> Path:
    """parity's cache folder: PARITY_CACHE_DIR, else ~/.cache/parity."""
    if os.environ.get("PARITY_CACHE_DIR"):
        return Path(os.path.expanduser(os.environ["PARITY_CACHE_DIR"]))
    return Path.home() / ".cache" / "parity"


def failed_log_path(out: Path) -> Path:
    """Where the log of a failed capture of `out` is kept (replaced by the next failure, removed by a success):
    in parity's cache folder, so a failure writes nothing beside --out."""
    absolute = os.path.abspath(out)
    digest = hashlib.sha256(absolute.encode()).hexdigest()[:12]
    return cache_dir() / "capture-logs" / f"{Path(absolute).name or 'root'}-{digest}.log"


def looks_like_capture(folder: Path) -> bool:
    """Whether a folder holds a capture: a manifest.json that parity wrote (schema_version and cache_key)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and "schema_version" in manifest and "cache_key" in manifest


def _guarded(options: CaptureOptions) -> list[tuple[Path, str]]:
    """What no --out may contain, --force or not."""
    guarded = [
        (Path.cwd(), "the current directory"),
        (Path.home(), "your home folder"),
        (options.checkout, "the checkout"),
    ]
    if options.recipe_file is not None:
        guarded.append((options.recipe_file, "the recipe file declaring the capture"))
    guarded += [(Path(folder), f"--data {name}") for name, folder in options.data.items()]
    guarded += [(Path(folder), f"--tokenizer {name}") for name, folder in options.tokenizers.items()]
    if options.python not in ("current", "pinned"):
        guarded.append((Path(options.python), "the --python interpreter"))
    return guarded


def _nearest_existing(path: Path) -> Path:
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            return folder
    return Path("/")


def check_out(options: CaptureOptions) -> None:
    """A ParityError (one line, naming the fix) unless the capture may write its --out: absent, empty or a
    capture; otherwise only with --force; never when --out holds what _guarded lists; its folder writable."""
    out, name = options.out, options.name("out")
    force_hint = (
        "pass --force to replace it, or choose a new folder"
        if options.recipe_file is None
        else "remove it or set capture.out to a new folder"
    )
    if out.is_symlink():
        raise ParityError(f"{name} {out} is a symbolic link; give the folder it points to, or a new folder")
    for path, what in _guarded(options):
        if os.path.lexists(path) and within(path, out):
            raise ParityError(
                f"{name} {out} contains {what} ({path}); a capture never replaces that, even with --force: "
                "choose a new folder"
            )
    if out.exists():
        if not out.is_dir():
            if not options.force:
                raise ParityError(f"{name} {out} is a file, not a capture folder: {force_hint}")
        else:
            try:
                empty = not any(out.iterdir())
            except OSError as err:
                raise ParityError(f"{name} {out}: cannot be read ({err.strerror or err})") from None
            if not empty and not options.force and not looks_like_capture(out):
                raise ParityError(
                    f"{name} {out} exists and is not a capture (no parity manifest.json): {force_hint}"
                )
            if not os.access(out, os.W_OK | os.X_OK):
                raise ParityError(f"{name} {out}: not writable (permission denied); choose a writable folder")
    folder = _nearest_existing(Path(os.path.abspath(out)).parent)
    if not folder.is_dir():
        raise ParityError(f"{name} {out}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ParityError(
            f"{name} {out}: cannot write in {folder} (permission denied); choose a writable folder"
        )


def install(staging: Path, out: Path) -> None:
    """Put the fully written `staging` folder at `out`, replacing what is there (checked by check_out); a signal
    arriving meanwhile takes effect once `out` is whole again."""
    out = Path(os.path.abspath(out))
    old = None
    with signals_deferred():
        if os.path.lexists(out):
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
        try:
            os.rename(staging, out)
        except OSError:
            if old is not None:
                os.rename(old, out)
            raise
    if old is not None:
        remove_tree(old)
