"""`parity check`: recompute what a locked pair trains on and print what changed (exit 1 when anything did)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def check_command(
    lock: Annotated[str, typer.Option("--lock", help="Lock file written by `parity lock`.")] = "parity.lock",
    update: Annotated[
        bool, typer.Option("--update", help="Rewrite the lock with the current state.")
    ] = False,
) -> None:
    """Recompute what the locked pair trains on; exit 1 with an explanation when anything changed."""
    from parity.lock import check_lock, format_check, update_lock

    if update:
        update_lock(Path(lock))
        print(f"parity check: updated {lock}")
        return
    result = check_lock(Path(lock))
    print(format_check(result, Path(lock)))
    if not result.ok:
        raise typer.Exit(1)
