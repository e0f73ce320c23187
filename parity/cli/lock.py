"""`parity lock`: write the lockfile of a recipe pair (findings, effective configs, golden tokenization)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parity.cli.options import SetA, SetB, WorldSize
from parity.errors import ParityError


def lock_command(
    a: Annotated[str, typer.Option("--a", help="Recipe A: name or YAML path.")],
    b: Annotated[str, typer.Option("--b", help="Recipe B: name or YAML path.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Lock file to write.")] = "parity.lock",
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Fixed data source for the golden tokenization (default: synthetic:800:160; two captured recipes: "
            "A's captured rows).",
        ),
    ] = None,
    world_size: WorldSize = 1,
    examples: Annotated[int, typer.Option("--examples", help="Golden examples per recipe.")] = 16,
    set_a: SetA = None,
    set_b: SetB = None,
) -> None:
    """Write a lockfile of the accepted findings, effective configs, batch tables and golden tokenization."""
    from parity.lock import build_lock, write_lock
    from parity.report import why_unwritable

    folder = Path(output).parent  # the lock stores paths relative to it, so it must exist while it is built
    created = not folder.exists()
    try:
        if created:
            folder.mkdir(parents=True)
        elif not folder.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(folder))
    except OSError as err:
        raise ParityError(f"-o {output}: cannot write the lock ({why_unwritable(folder, err)})") from None
    try:
        lock = build_lock(a, b, data, world_size, examples, set_a or [], set_b or [], base=folder)
    except BaseException:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise
    try:
        write_lock(lock, Path(output))
    except OSError as err:
        reason = why_unwritable(Path(output).parent, err)
        raise ParityError(f"-o {output}: cannot write the lock ({reason})") from None
    print(
        f"parity lock: wrote {output} ({len(lock.findings)} findings, {examples} golden examples per recipe)"
    )
