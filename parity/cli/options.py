"""Option types shared by the commands: recipes A/B, overrides, data, world size, and their parsers.

RunOptions fields declare the `parity run` flags (`run_flag` turns one into a Typer parameter); the
other commands reuse the data and override flags from there and annotate the rest here."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Annotated, Any

import typer

from parity.errors import ParityError
from parity.plan import MAX_WORLD_SIZE
from parity.run.options import FIELD_DEFAULT, Flag, RunOptions


def run_flag(item: dataclasses.Field) -> inspect.Parameter:
    """A keyword parameter annotated for Typer from one RunOptions field's Flag metadata."""
    flag: Flag = item.metadata["flag"]
    kind = flag.cli_type if flag.cli_type is not None else typing.get_type_hints(RunOptions)[item.name]
    decls = flag.decls or ("--" + item.name.replace("_", "-"),)
    if flag.cli_default is not FIELD_DEFAULT:
        default: Any = flag.cli_default
    elif item.default is not dataclasses.MISSING:
        default = item.default
    else:
        default = None
    annotation = Annotated[kind, typer.Option(*decls, help=flag.help, min=flag.min)]
    return inspect.Parameter(
        item.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _run_flag_type(name: str) -> Any:
    return run_flag(next(f for f in dataclasses.fields(RunOptions) if f.name == name)).annotation


RecipeA = Annotated[str, typer.Option("--a", help="Recipe A: name or YAML path.")]
RecipeB = Annotated[str, typer.Option("--b", help="Recipe B: name or YAML path.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Dotted override KEY=VALUE (repeatable).")]
SetA = _run_flag_type("set_a")
SetB = _run_flag_type("set_b")
DataOption = _run_flag_type("data")
WorldSize = Annotated[
    int,
    typer.Option("--world-size", min=1, max=MAX_WORLD_SIZE, help="Number of visible GPUs the launch sees."),
]


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
