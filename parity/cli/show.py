"""`parity show`: every resolved value of one recipe and where it came from, as a table, YAML or JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from parity.cli.console import console, shorten
from parity.cli.options import SetOption, WorldSize
from parity.errors import ParityError

FORMATS = ("rich", "yaml", "json")
SHOWN_CHARS = 140


def show_command(
    name: Annotated[str, typer.Argument(help="Recipe name or YAML path.")],
    world_size: WorldSize = 1,
    fmt: Annotated[str, typer.Option("--format", help="rich, yaml or json.")] = "rich",
    overrides: SetOption = None,
) -> None:
    """Show the effective recipe: every resolved value and where it came from."""
    from parity.effective import effective_values
    from parity.plan import resolve
    from parity.registry import resolve_recipe

    if fmt not in FORMATS:
        raise ParityError(f"--format must be rich, yaml or json, got '{fmt}'")
    recipe = resolve_recipe(name, overrides or [])
    values = effective_values(resolve(recipe, world_size))
    document = {"recipe": recipe.name, "world_size": world_size, "values": values}
    if fmt == "json":
        print(json.dumps(document, indent=2))
    elif fmt == "yaml":
        import yaml

        print(yaml.safe_dump(document, sort_keys=False, width=120))
    else:
        print_show(recipe, world_size, values)


def print_show(recipe: Any, world_size: int, values: dict[str, Any]) -> None:
    """The rich table: the launch arithmetic on one line, then key, value and source (defaults dimmed)."""
    from rich.table import Table

    out = console()
    plan = {k.removeprefix("effective."): v["value"] for k, v in values.items() if k.startswith("effective.")}
    out.print(
        f"[bold]{recipe.name}[/] ({recipe.origin}) at world size {world_size}: "
        f"{plan['num_processes']} process(es) x per-device {plan['per_device_train_batch_size']} "
        f"x accumulation {plan['gradient_accumulation_steps']} = global batch [bold]{plan['global_batch']}[/]"
    )
    table = Table(show_lines=False)
    table.add_column("key")
    table.add_column("value", overflow="fold", max_width=70)
    table.add_column("source")
    for key, entry in values.items():
        source = entry["source"]
        style = "dim" if source.startswith("default:") or source == "spec default" else ""
        table.add_row(key, shorten(_rendered(entry["value"]), SHOWN_CHARS), source, style=style)
    out.print(table)


def _rendered(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else repr(value)
