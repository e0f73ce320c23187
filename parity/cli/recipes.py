"""`parity recipes`: the known recipes (built-in, plugins) and how to add one."""

from __future__ import annotations

from parity.cli.console import console


def recipes_command() -> None:
    """List the known recipes and where each comes from."""
    from rich.table import Table

    from parity.registry import known_recipes, register_hint, resolve_recipe

    table = Table(title="Known recipes")
    for column in ("name", "origin", "upstream", "description"):
        table.add_column(column)
    for name, entry in known_recipes().items():
        recipe = resolve_recipe(name)
        upstream = (
            f"{recipe.upstream.repo.removeprefix('https://')}@{recipe.upstream.commit}"
            if recipe.upstream.repo
            else ""
        )
        table.add_row(name, entry.origin, upstream, recipe.description)
    out = console()
    out.print(table)
    out.print("YAML recipes: any path, e.g. `parity show my.yaml` with `extends: revise` and `set:`.")
    out.print(f"Plugins: {register_hint()}", markup=False)
