"""Option types shared by several commands (recipes A/B, overrides, data, world size) and their parsers.

`parity run` generates its own flags from RunOptions; the rest annotate their parameters with these."""

from __future__ import annotations

from typing import Annotated

import typer

from parity.errors import ParityError
from parity.run.options import DATA_HELP

RecipeA = Annotated[str, typer.Option("--a", help="Recipe A: name or YAML path.")]
RecipeB = Annotated[str, typer.Option("--b", help="Recipe B: name or YAML path.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Dotted override KEY=VALUE (repeatable).")]
SetA = Annotated[
    list[str] | None, typer.Option("--set-a", help="Override on recipe A, KEY=VALUE (repeatable).")
]
SetB = Annotated[
    list[str] | None, typer.Option("--set-b", help="Override on recipe B, KEY=VALUE (repeatable).")
]
WorldSize = Annotated[
    int, typer.Option("--world-size", min=1, help="Number of visible GPUs the launch sees.")
]
DataOption = Annotated[str, typer.Option("--data", help=DATA_HELP)]


def parse_samples(text: str) -> int | None:
    """`--samples` of `parity diff`: a positive count, or None for 'all'."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ParityError(f"--samples must be a positive number or 'all', got '{text}'")
    return value
