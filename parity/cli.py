"""The `parity` command line: parses arguments and calls library functions, nothing more.

Bad input is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

from parity.errors import ParityError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Measure what two fine-tuning recipes really train on, and run them side by side.",
)
refs_app = typer.Typer(no_args_is_help=True, help="Pinned upstream facts (vendor_refs/).")
app.add_typer(refs_app, name="refs")

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
DataOption = Annotated[
    str,
    typer.Option(
        "--data", help="'synthetic[:TRAIN[:TEST[:SEED]]]' (default), a dir with train/test.jsonl, or 'hub'."
    ),
]


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


@app.command("recipes")
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
    console = _console()
    console.print(table)
    console.print("YAML recipes: any path, e.g. `parity show my.yaml` with `extends: revise` and `set:`.")
    console.print(f"Plugins: {register_hint()}", markup=False)


@app.command("show")
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

    if fmt not in ("rich", "yaml", "json"):
        raise ParityError(f"--format must be rich, yaml or json, got '{fmt}'")
    recipe = resolve_recipe(name, overrides or [])
    values = effective_values(resolve(recipe, world_size))
    if fmt == "json":
        print(json.dumps({"recipe": recipe.name, "world_size": world_size, "values": values}, indent=2))
    elif fmt == "yaml":
        import yaml

        print(
            yaml.safe_dump(
                {"recipe": recipe.name, "world_size": world_size, "values": values},
                sort_keys=False,
                width=120,
            )
        )
    else:
        _print_show(recipe, world_size, values)


def _print_show(recipe, world_size: int, values: dict) -> None:
    from rich.table import Table

    console = _console()
    plan = {k.removeprefix("effective."): v["value"] for k, v in values.items() if k.startswith("effective.")}
    console.print(
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
        table.add_row(key, _short(entry["value"]), source, style=style)
    console.print(table)


def _short(value, limit: int = 140) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _parse_samples(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ParityError(f"--samples must be a positive number or 'all', got '{text}'") from None
    if value < 1:
        raise ParityError(f"--samples must be a positive number or 'all', got '{text}'")
    return value


@app.command("diff")
def diff_command(
    a: Annotated[str, typer.Option("--a", help="Recipe A: name or YAML path.")],
    b: Annotated[str, typer.Option("--b", help="Recipe B (the reference): name or YAML path.")],
    data: DataOption = "synthetic",
    world_size: WorldSize = 1,
    samples: Annotated[
        str, typer.Option("--samples", help="Examples tokenized for token/mask/length probes, or 'all'.")
    ] = "256",
    only: Annotated[
        str | None, typer.Option("--only", help="Comma-separated axes to probe (default: all).")
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option("--fail-on", help="Exit 1 when a finding is at or above: high, medium, low, info."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="Write only this report format: json, md or html (default: all three)."
        ),
    ] = None,
    out: Annotated[
        str | None, typer.Option("--out", help="Report directory (default reports/<a>-vs-<b>/).")
    ] = None,
    show_example: Annotated[
        int | None, typer.Option("--show-example", help="Show both loss masks of example I, token by token.")
    ] = None,
    set_a: SetA = None,
    set_b: SetB = None,
) -> None:
    """Materialize two recipes and report, by measurement, everything that differs in what they train on."""
    from parity.diff import run_diff
    from parity.findings import SEVERITIES, at_or_above
    from parity.report import FORMATS, write_reports
    from parity.report.terminal import print_findings, print_mask_example, print_summary

    if fail_on is not None and fail_on not in SEVERITIES:
        raise ParityError(f"--fail-on must be one of {', '.join(SEVERITIES)}, got '{fail_on}'")
    if fmt is not None and fmt not in FORMATS:
        raise ParityError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    n_samples = _parse_samples(samples)
    console = _console()
    with console.status("materializing recipes…") as status:
        report = run_diff(
            a,
            b,
            data=data,
            world_size=world_size,
            samples=n_samples,
            only=only,
            set_a=set_a or [],
            set_b=set_b or [],
            show_example=show_example or 0,
            on_probe=lambda name: status.update(f"probing {name}…"),
        )
    report_dict = report.to_dict()
    print_summary(console, report_dict)
    print_findings(console, report_dict)
    if show_example is not None:
        print_mask_example(console, report_dict)
    out_dir = Path(out) if out else Path("reports") / f"{_slug(report.a)}-vs-{_slug(report.b)}"
    written = write_reports(report_dict, out_dir, (fmt,) if fmt else FORMATS)
    console.print("reports: " + ", ".join(str(p) for p in written), style="dim")
    if fail_on and at_or_above(report.findings, fail_on):
        raise typer.Exit(1)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@app.command("lock")
def lock_command(
    a: Annotated[str, typer.Option("--a", help="Recipe A: name or YAML path.")],
    b: Annotated[str, typer.Option("--b", help="Recipe B: name or YAML path.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Lock file to write.")] = "parity.lock",
    data: Annotated[
        str, typer.Option("--data", help="Fixed data source for the golden tokenization.")
    ] = "synthetic:800:160",
    world_size: WorldSize = 1,
    examples: Annotated[int, typer.Option("--examples", help="Golden examples per recipe.")] = 16,
    set_a: SetA = None,
    set_b: SetB = None,
) -> None:
    """Write a lockfile of the accepted findings, effective configs, batch tables and golden tokenization."""
    from parity.lock import build_lock, write_lock

    lock = build_lock(a, b, data, world_size, examples, set_a or [], set_b or [])
    write_lock(lock, Path(output))
    print(
        f"parity lock: wrote {output} ({len(lock.findings)} findings, {examples} golden examples per recipe)"
    )


@app.command("check")
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


@refs_app.command("verify")
def refs_verify_command(
    ref: Annotated[str, typer.Option("--ref", help="Recipe whose pinned facts to check.")],
    checkout: Annotated[str, typer.Option("--checkout", help="Local checkout of the upstream repository.")],
) -> None:
    """Re-extract pinned facts from an upstream checkout (never executing it) and report drift."""
    from parity.refs import verify_ref_cli

    raise typer.Exit(verify_ref_cli(ref, checkout))


def _register_run() -> None:
    from parity.run.command import run_command

    app.command("run", help=run_command.__doc__)(run_command)


_register_run()


def _configure_logging() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("parity: note: %(message)s"))
    logger = logging.getLogger("parity")
    if not logger.handlers:
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    _configure_logging()
    try:
        result = app(args=argv, prog_name="parity", standalone_mode=False)
    except ParityError as err:
        print(f"parity: error: {err}", file=sys.stderr)
        return 2
    except click_exceptions.NoArgsIsHelpError:
        return 2
    except click_exceptions.UsageError as err:
        print(f"parity: error: {err.format_message()}", file=sys.stderr)
        return 2
    except click_exceptions.Exit as err:
        return err.exit_code
    except (click_exceptions.Abort, KeyboardInterrupt):
        print("parity: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return result if isinstance(result, int) else 0


GC_THRESHOLDS = (50_000, 20, 20)
"""Cyclic-GC thresholds for the console script. Importing torch, transformers, TRL and peft and holding token
lists allocates millions of long-lived objects; at Python's default (700, 10, 10) the collector rescans them
so often that it costs about a second of a default `parity diff` (5.5 s -> 4.5 s). Cycles are still collected."""


def entry() -> None:
    """Console-script entry: run, flush, and exit without tearing down torch and transformers module by module
    (that teardown costs about a second; every file parity writes is already complete and closed)."""
    gc.set_threshold(*GC_THRESHOLDS)
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    entry()
