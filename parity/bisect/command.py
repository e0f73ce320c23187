"""The `parity bisect` command: parses options, calls bisect_pair, prints the attribution table.

Exit codes: 0 finished; 2 bad input (one line on stderr).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parity.bisect.pipeline import DEFAULT_DESIGN, DEFAULT_MAX_STEPS, DEFAULT_SEEDS
from parity.plan import MAX_WORLD_SIZE

RecipeA = Annotated[str, typer.Option("--a", help="Recipe A (the one aligned): name or YAML path.")]
RecipeB = Annotated[str, typer.Option("--b", help="Recipe B (the reference): name or YAML path.")]
AxesOption = Annotated[
    str | None,
    typer.Option("--axes", help="Axes to attribute, comma-separated (default: every axis the diff finds)."),
]
MetricOption = Annotated[
    str,
    typer.Option(
        "--metric", help="'eval_loss' (final loss on the shared held-out split) or 'accuracy' (greedy)."
    ),
]
SeedsOption = Annotated[
    int, typer.Option("--seeds", min=1, help="Data-order seeds of the baseline pair (noise estimate).")
]
MaxSteps = Annotated[int, typer.Option("--max-steps", min=1, help="Optimizer steps per leg.")]
DesignOption = Annotated[
    str, typer.Option("--design", help="'one-at-a-time', 'leave-one-out' or 'adaptive' (binary splitting).")
]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Bisect directory; runs cached there are reused (default reports/bisect-<a>-vs-<b>)."
    ),
]
DataOption = Annotated[
    str,
    typer.Option(
        "--data", help="'synthetic[:TRAIN[:TEST[:SEED]]]' (default) or a dir with train/test.jsonl."
    ),
]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        help="'proxy' (compact-vocabulary tiny Llama, default), 'tiny', 'random-llama-3.2-1b' (GPU), "
        "or a hub id / path.",
    ),
]
WorldSize = Annotated[
    int,
    typer.Option(
        "--world-size",
        min=1,
        max=MAX_WORLD_SIZE,
        help="Processes per leg (> 1: accelerate launch; gloo on CPU).",
    ),
]
Samples = Annotated[
    int | None, typer.Option("--samples", help="Train rows per leg (CPU default 256; 0: all).")
]
EvalRows = Annotated[int | None, typer.Option("--eval-rows", help="Rows of the shared held-out split.")]
EvalSamples = Annotated[
    int | None, typer.Option("--eval-samples", help="Held-out questions answered greedily (accuracy).")
]
MicroBatch = Annotated[
    int | None, typer.Option("--micro-batch", help="Per-device micro-batch (CPU default 2).")
]
SetA = Annotated[
    list[str] | None, typer.Option("--set-a", help="Override on recipe A, KEY=VALUE (repeatable).")
]
SetB = Annotated[
    list[str] | None, typer.Option("--set-b", help="Override on recipe B, KEY=VALUE (repeatable).")
]


def bisect_command(
    a: RecipeA,
    b: RecipeB,
    axes: AxesOption = None,
    metric: MetricOption = "eval_loss",
    seeds: SeedsOption = DEFAULT_SEEDS,
    max_steps: MaxSteps = DEFAULT_MAX_STEPS,
    design: DesignOption = DEFAULT_DESIGN,
    out: Out = None,
    data: DataOption = "synthetic",
    model: ModelOption = "proxy",
    world_size: WorldSize = 1,
    samples: Samples = None,
    eval_rows: EvalRows = None,
    eval_samples: EvalSamples = None,
    micro_batch: MicroBatch = None,
    set_a: SetA = None,
    set_b: SetB = None,
) -> None:
    """Attribute the outcome gap between A and B to the axes where they differ, on matched runs."""
    from rich.console import Console
    from rich.markup import escape

    from parity.bisect import bisect_pair
    from parity.bisect.report import summary_lines, terminal_table

    console = Console(highlight=False, soft_wrap=True, stderr=False)
    result = bisect_pair(
        a,
        b,
        axes=axes,
        metric=metric,
        seeds=seeds,
        design=design,
        out=out,
        set_a=set_a or [],
        set_b=set_b or [],
        on_leg=lambda key: console.print(escape(f"  training {key}")),
        data=data,
        model=model,
        world_size=world_size,
        max_steps=max_steps,
        samples=samples,
        eval_rows=eval_rows,
        eval_samples=0 if metric == "eval_loss" and eval_samples is None else eval_samples,
        micro_batch=micro_batch,
    )
    console.print(terminal_table(result.attribution))
    for line in summary_lines(result.attribution, warnings=False):
        console.print(escape(line))
    console.print(f"report: {result.out / 'report.html'}  attribution: {result.out / 'attribution.json'}")
