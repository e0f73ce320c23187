"""`parity run`: parses options, calls run_pair, prints the pre-flight, progress and the verdict.

Its flags are generated from the RunOptions fields (parity/run/options.py), where each one is declared once.
Exit codes: 0 finished; 1 alignment failed in the pre-flight, a leg stopped early, or the null test diverged.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import time
from typing import Any

import typer
from rich.markup import escape

from parity.cli.console import console, shorten
from parity.cli.options import RecipeA, RecipeB, run_flag
from parity.report.terminal import progress_due, progress_line
from parity.run.options import RunOptions

SHOWN_OVERRIDES = 10
SHOWN_CHARS = 120


def option_parameters() -> list[inspect.Parameter]:
    """One keyword parameter per RunOptions field with a Flag, annotated for Typer, in field order."""
    return [run_flag(item) for item in dataclasses.fields(RunOptions) if "flag" in item.metadata]


def _signed(command):
    """Give `command` the signature Typer reads: recipes A and B, then every RunOptions flag."""
    recipes = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
        for name, annotation in (("a", RecipeA), ("b", RecipeB))
    ]
    signature = inspect.Signature([*recipes, *option_parameters()], return_annotation=None)
    command.__signature__ = signature
    command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()} | {"return": None}
    return command


@_signed
def run_command(a: str, b: str, **options: Any) -> None:
    """Train A and B under matched conditions with the chosen axes aligned, and report how far their curves differ."""
    from parity.capture.processes import Interrupted
    from parity.run import RunInterrupted, run_pair
    from parity.run.preflight import PreflightFailed

    options = {p.name: p.default for p in option_parameters()} | options
    align, to = options.pop("align"), options.pop("to")
    terminal = console(soft_wrap=True)
    view = _View(terminal)
    try:
        with view.progress:
            summary = run_pair(
                a, b, align, to, hooks=view.hooks(options["max_steps"], options["force"]), **options
            )
    except (KeyboardInterrupt, Interrupted) as stop:
        print(f"parity: interrupted; {resume_hint(view.run_dir, options.get('save_every'))}", file=sys.stderr)
        raise typer.Exit(128 + getattr(stop, "signum", 2)) from None
    except PreflightFailed as failed:
        view.print_failed(failed)
        raise typer.Exit(1) from None
    except RunInterrupted as stopped:
        terminal.print(f"[red]stopped:[/] {escape(str(stopped))}")
        raise typer.Exit(1) from None
    view.print_summary(summary)
    if summary.verdict == "unexplained divergence":
        raise typer.Exit(1)


def resume_hint(run_dir, save_every: int | None) -> str:
    """What continues an interrupted run: the same command with --resume (from the last checkpoint)."""
    where = f" in {run_dir}" if run_dir else ""
    if save_every:
        return f"the same command with --resume continues from the last checkpoint{where}"
    return f"the same command with --resume restarts the legs{where} (add --save-every N to keep checkpoints)"


class _View:
    """Console output of a run: alignment, pre-flight, one progress task per leg, final table."""

    def __init__(self, console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.tasks: dict[str, Any] = {}
        self.started: dict[str, tuple[str, float]] = {}
        self.run_dir = None

    def hooks(self, max_steps: int | None, force: bool):
        from parity.run import Hooks

        def on_aligned(pair, run_dir) -> None:
            self.run_dir = run_dir
            axes = ",".join(pair.axes) or "none"
            self.console.print(
                f"[bold]parity run[/]: {pair.aligned_a.name} vs {pair.aligned_b.name}, aligned {axes} (to {pair.to.upper()}) -> {run_dir}"
            )
            for side, overrides in (("A", pair.overrides_a), ("B", pair.overrides_b)):
                for text in overrides[:SHOWN_OVERRIDES]:
                    self.console.print(escape(f"  {side}: {_one_line(text)}"))
                if len(overrides) > SHOWN_OVERRIDES:
                    more = len(overrides) - SHOWN_OVERRIDES
                    self.console.print(f"  {side}: ... {more} more (all in {run_dir / 'plan.json'})")

        def on_preflight(check) -> None:
            if check.failed:
                self.print_failed_findings(check, forced=force)
                if not force:
                    return
            clean = f"aligned axes clean ({len(check.aligned)})" if check.aligned else "nothing aligned"
            self.console.print(f"pre-flight: {clean}; what still differs: {len(check.remaining)} finding(s)")
            self._findings(check.remaining)

        def on_leg_start(leg: str, name: str) -> None:
            self.tasks[leg] = self.progress.add_task(f"{leg.upper()} {name}", total=max_steps, loss="")
            self.started[leg] = (f"{leg.upper()} {name}", time.monotonic())

        def on_step(leg: str, step: int, total: int, record: dict) -> None:
            if (
                not self.console.is_terminal
                and leg in self.started
                and progress_due(step, total or max_steps)
            ):
                label, start = self.started[leg]
                line = progress_line(
                    label, step, total or max_steps, time.monotonic() - start, record.get("loss")
                )
                self.console.print(line, markup=False, highlight=False)
            if leg in self.tasks:
                loss = record.get("loss")
                self.progress.update(
                    self.tasks[leg],
                    completed=step,
                    total=total or max_steps,
                    loss=f"loss {loss:.4f}" if loss is not None else "",
                )

        return Hooks(
            on_aligned=on_aligned, on_preflight=on_preflight, on_leg_start=on_leg_start, on_step=on_step
        )

    def _findings(self, findings) -> None:
        for f in findings:
            if f.severity == "info":
                continue
            hint = f" (--align {f.align})" if f.align else ""
            self.console.print(escape(f"  [{f.severity}] {f.axis} {f.key}: {_one_line(f.summary)}{hint}"))

    def print_failed_findings(self, check, forced: bool) -> None:
        then = "training anyway (--force)" if forced else "--force trains anyway"
        self.console.print(
            f"[red]alignment failed[/]: {len(check.failed)} finding(s) remain on aligned axes ({then}):"
        )
        self._findings(check.failed)

    def print_failed(self, failed) -> None:
        self.console.print(f"pre-flight: {failed.run_dir / 'preflight.json'}")

    def print_summary(self, summary) -> None:
        from rich.table import Table

        from parity.run.report import metrics_rows

        data = summary.data
        table = Table(title="matched runs")
        table.add_column("metric")
        table.add_column(f"A {data['a']}")
        table.add_column(f"B {data['b']}")
        for row in metrics_rows(data):
            table.add_row(*[_fmt(c) for c in row])
        self.console.print(table)
        gap = data["max_abs_loss_gap"]
        split = data["first_divergent_step"]
        self.console.print(
            f"verdict: [bold]{data['verdict']}[/] (max |loss gap| {_fmt(gap)} over {data['compared_steps']} steps"
            + (f", curves split at step {split})" if split is not None else ")")
        )
        self.console.print(
            f"report: {summary.run_dir / 'report.html'}  curves: {summary.run_dir / 'curves.png'}"
        )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _one_line(text: str) -> str:
    return shorten(text.replace("\n", "\\n"), SHOWN_CHARS)
