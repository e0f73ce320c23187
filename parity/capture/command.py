"""The `parity capture` command: parses flags, calls `capture`, prints a short summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parity.capture.options import DEFAULT_WORLD_SIZES, CaptureOptions, parse_pairs
from parity.capture.pipeline import capture
from parity.capture.processes import Interrupted, adopt_orphans
from parity.errors import ParityError
from parity.plan import MAX_WORLD_SIZE

HELP = """Capture a recipe by running ITS OWN CODE up to the construction of its trainer.

WARNING: capturing EXECUTES the recipe's code (COMMAND and whatever it imports) on this machine, with your
permissions, in a subprocess, in a temporary copy of --checkout (never written), offline (hub-offline
variables), telemetry off, with its own temporary HOME and caches and a timeout. Capture only code you would
run yourself. --out must be absent, empty or an earlier capture (--force replaces anything else, but never a
folder holding the checkout, the current directory or HOME).

Example: parity capture --checkout ../ReVISE --out caps/revise --data openai/gsm8k=data/gsm8k
--stub ray --stub vllm --python pinned -- bash -c "python revise/preprocess.py && bash scripts/step-0-sft.sh"
"""


def capture_command(
    command: Annotated[
        list[str], typer.Argument(help="The recipe's command, after `--`.", show_default=False)
    ],
    checkout: Annotated[
        Path, typer.Option("--checkout", help="The recipe's repository (copied, never written).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The captured recipe directory to write.")],
    data: Annotated[
        list[str] | None, typer.Option("--data", help="NAME=DIR: serve load_dataset(NAME) from local files.")
    ] = None,
    tokenizer: Annotated[
        list[str] | None,
        typer.Option("--tokenizer", help="ID=DIR: serve a model id (config.json + tokenizer files) locally."),
    ] = None,
    stub: Annotated[
        list[str] | None, typer.Option("--stub", help="MODULE imported but never used on the training path.")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="K=V for the recipe (also in its .env).")
    ] = None,
    world_size: Annotated[
        list[int] | None,
        typer.Option(
            "--world-size",
            min=1,
            max=MAX_WORLD_SIZE,
            help="GPU count to capture at (repeatable; 1 2 4 8).",
        ),
    ] = None,
    python: Annotated[
        str,
        typer.Option(
            "--python", help="current, pinned, framework:NAME[==VERSION] or PATH to an interpreter."
        ),
    ] = "current",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per run before it is killed.")] = 600.0,
    force: Annotated[
        bool,
        typer.Option("--force", help="Capture again even if cached; replace an --out that is not a capture."),
    ] = False,
    rows: Annotated[
        int | None,
        typer.Option(
            "--rows", help="Serve only the first N rows of every dataset load (full counts recorded)."
        ),
    ] = None,
    train_step: Annotated[
        bool,
        typer.Option(
            "--train-step",
            help="Also run the trainer's first optimizer step on the stand-in model and record each token's loss weight.",
        ),
    ] = False,
) -> None:
    """Capture a recipe by running its own code up to its trainer (EXECUTES the recipe's code)."""
    from rich.console import Console

    adopt_orphans()
    options = CaptureOptions(
        checkout=checkout,
        out=out,
        command=tuple(command),
        data={name: Path(folder) for name, folder in parse_pairs(data, "--data").items()},
        tokenizers={name: Path(folder) for name, folder in parse_pairs(tokenizer, "--tokenizer").items()},
        stubs=tuple(stub or ()),
        env=parse_pairs(env, "--env"),
        world_sizes=tuple(world_size or DEFAULT_WORLD_SIZES),
        python=python,
        timeout=timeout,
        force=force,
        rows=rows,
        train_step=train_step,
    )
    result = capture(options)
    console = Console(soft_wrap=True, highlight=False)
    state = "cached" if result.cached else "captured"
    console.print(
        f"{state} {result.path} in {result.seconds:.2f} s ({result.manifest['stopped_at'].get('class')})",
        markup=False,
    )
    for row in result.manifest["launch"]:
        console.print(
            f"  world size {row['world_size']}: {row['processes']} process(es) x "
            f"{row['per_device_train_batch_size']} per device x {row['gradient_accumulation_steps']} "
            f"accumulation = global batch {row['global_batch']}"
        )


def app() -> typer.Typer:
    """A one-command Typer app (`python -m parity.capture`); bad input is one stderr line and exit 2."""
    application = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    application.command(help=HELP)(_exit_two_on_parity_error(capture_command))
    return application


def _exit_two_on_parity_error(function):
    import functools
    import sys

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ParityError as err:
            print(f"error: {err}", file=sys.stderr)
            raise typer.Exit(2) from None
        except (KeyboardInterrupt, Interrupted) as stop:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(128 + getattr(stop, "signum", 2)) from None

    return wrapper
