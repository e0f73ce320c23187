"""The `parity run` command: parses options, calls run_pair, prints the pre-flight, progress and the verdict.

Exit codes: 0 finished; 1 alignment failed in the pre-flight, a leg stopped early, or the null test diverged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

RecipeA = Annotated[str, typer.Option("--a", help="Recipe A: name or YAML path.")]
RecipeB = Annotated[str, typer.Option("--b", help="Recipe B: name or YAML path.")]
AlignOption = Annotated[
    str,
    typer.Option(
        "--align",
        help="Axes to align, comma-separated (batch, template, prompt, data, loss_mask, schedule, optim, peft, precision, seed, eval, tokens, runtime), 'all' or 'none'.",
    ),
]
ToOption = Annotated[
    str, typer.Option("--to", help="Reference recipe that stays as is: 'b' (default) or 'a'.")
]
DataOption = Annotated[
    str,
    typer.Option(
        "--data", help="'synthetic[:TRAIN[:TEST[:SEED]]]' (default), a dir with train/test.jsonl, or 'hub'."
    ),
]
WorldSize = Annotated[
    int,
    typer.Option(
        "--world-size",
        min=1,
        help="Visible GPUs per leg (the recipes' launch rules apply); > 1 launches each leg through accelerate.",
    ),
]
SetA = Annotated[
    list[str] | None, typer.Option("--set-a", help="Override on recipe A, KEY=VALUE (repeatable).")
]
SetB = Annotated[
    list[str] | None, typer.Option("--set-b", help="Override on recipe B, KEY=VALUE (repeatable).")
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model", help="'tiny' (random small Llama, CPU default) or a hub id / path for from_pretrained."
    ),
]
MaxSteps = Annotated[
    int | None, typer.Option("--max-steps", help="Optimizer steps per leg (default: the recipe's epochs).")
]
Epochs = Annotated[
    float | None, typer.Option("--epochs", help="Epochs per leg (overrides the recipe's num_train_epochs).")
]
EvalEvery = Annotated[
    int | None, typer.Option("--eval-every", help="Eval loss every N steps (default: at the end only).")
]
Samples = Annotated[
    int | None, typer.Option("--samples", help="Train rows per leg (CPU default 256; 0: all).")
]
EvalSamples = Annotated[
    int | None, typer.Option("--eval-samples", help="Held-out questions answered greedily (CPU default 8).")
]
EvalRows = Annotated[int | None, typer.Option("--eval-rows", help="Rows per eval-loss set (CPU default 32).")]
MaxNewTokens = Annotated[
    int | None, typer.Option("--max-new-tokens", help="Generation length (CPU default 64).")
]
MicroBatch = Annotated[
    int | None,
    typer.Option(
        "--micro-batch", help="Per-device micro-batch (CPU default 2); accumulation keeps the global batch."
    ),
]
Seed = Annotated[
    int,
    typer.Option(
        "--seed", help="Seed of the tiny model's initial weights (training seeds are the recipes')."
    ),
]
SaveEvery = Annotated[
    int | None, typer.Option("--save-every", help="Checkpoint every N steps (needed for --resume).")
]
Deterministic = Annotated[
    bool | None,
    typer.Option(
        "--deterministic/--no-deterministic",
        help="torch.use_deterministic_algorithms while training (default: on GPU only).",
    ),
]
Resume = Annotated[
    bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoints.")
]
Force = Annotated[
    bool, typer.Option("--force", help="Train even when the pre-flight finds differences on aligned axes.")
]
Parallel = Annotated[bool, typer.Option("--parallel", help="Run A and B at once on disjoint GPU sets.")]
NumMachines = Annotated[int, typer.Option("--num-machines", min=1, help="Passed to accelerate.")]
MachineRank = Annotated[int, typer.Option("--machine-rank", min=0, help="Passed to accelerate.")]
MainIp = Annotated[str | None, typer.Option("--main-process-ip", help="Passed to accelerate.")]
MainPort = Annotated[int | None, typer.Option("--main-process-port", help="Passed to accelerate.")]
Out = Annotated[
    Path | None, typer.Option("--out", help="Run directory (default reports/run-<a>-vs-<b>-<axes>/).")
]
SaveAligned = Annotated[
    Path | None, typer.Option("--save-aligned", help="Write <name>.aligned.yaml for both recipes here.")
]


SHOWN_OVERRIDES = 10


def run_command(
    a: RecipeA,
    b: RecipeB,
    align: AlignOption = "none",
    to: ToOption = "b",
    data: DataOption = "synthetic",
    world_size: WorldSize = 1,
    model: ModelOption = None,
    max_steps: MaxSteps = None,
    epochs: Epochs = None,
    eval_every: EvalEvery = None,
    samples: Samples = None,
    eval_samples: EvalSamples = None,
    eval_rows: EvalRows = None,
    max_new_tokens: MaxNewTokens = None,
    micro_batch: MicroBatch = None,
    seed: Seed = 0,
    save_every: SaveEvery = None,
    deterministic: Deterministic = None,
    resume: Resume = False,
    force: Force = False,
    parallel: Parallel = False,
    num_machines: NumMachines = 1,
    machine_rank: MachineRank = 0,
    main_process_ip: MainIp = None,
    main_process_port: MainPort = None,
    set_a: SetA = None,
    set_b: SetB = None,
    out: Out = None,
    save_aligned: SaveAligned = None,
) -> None:
    """Train A and B under matched conditions with the chosen axes aligned, and report how far their curves differ."""
    from parity.run import RunInterrupted, run_pair
    from parity.run.preflight import PreflightFailed

    console = _console()
    view = _View(console)
    options: dict[str, Any] = {
        "data": data,
        "world_size": world_size,
        "model": model,
        "max_steps": max_steps,
        "epochs": epochs,
        "eval_every": eval_every,
        "samples": samples,
        "eval_samples": eval_samples,
        "eval_rows": eval_rows,
        "max_new_tokens": max_new_tokens,
        "micro_batch": micro_batch,
        "seed": seed,
        "save_every": save_every,
        "deterministic": deterministic,
        "resume": resume,
        "force": force,
        "parallel": parallel,
        "num_machines": num_machines,
        "machine_rank": machine_rank,
        "main_process_ip": main_process_ip,
        "main_process_port": main_process_port,
        "set_a": set_a or [],
        "set_b": set_b or [],
        "out": out,
        "save_aligned": save_aligned,
    }
    try:
        with view.progress:
            summary = run_pair(a, b, align, to, hooks=view.hooks(max_steps, force), **options)
    except PreflightFailed as failed:
        view.print_failed(failed)
        raise typer.Exit(1) from None
    except RunInterrupted as stopped:
        console.print(f"[red]stopped:[/] {escape(str(stopped))}")
        raise typer.Exit(1) from None
    view.print_summary(summary)
    if summary.verdict == "unexplained divergence":
        raise typer.Exit(1)


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


class _View:
    """Console output of a run: alignment, pre-flight, one progress task per leg, final table."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.tasks: dict[str, Any] = {}

    def hooks(self, max_steps: int | None, force: bool):
        from parity.run import Hooks

        def on_aligned(pair, run_dir) -> None:
            axes = ",".join(pair.axes) or "none"
            self.console.print(
                f"[bold]parity run[/]: {pair.aligned_a.name} vs {pair.aligned_b.name}, aligned {axes} (to {pair.to.upper()}) -> {run_dir}"
            )
            for side, overrides in (("A", pair.overrides_a), ("B", pair.overrides_b)):
                for text in overrides[:SHOWN_OVERRIDES]:
                    self.console.print(escape(f"  {side}: {_short(text)}"))
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

        def on_step(leg: str, step: int, total: int, record: dict) -> None:
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
            self.console.print(escape(f"  [{f.severity}] {f.axis} {f.key}: {_short(f.summary)}{hint}"))

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


def _short(text: str, limit: int = 120) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."
