"""`parity refs verify`: re-extract pinned upstream facts from a checkout and print the drift report, or with
`--capture` run the checkout's own code up to its trainer and compare it with the built-in recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parity.errors import ParityError


def refs_verify_command(
    ref: Annotated[str, typer.Option("--ref", help="Recipe whose pinned facts to check.")],
    checkout: Annotated[str, typer.Option("--checkout", help="Local checkout of the upstream repository.")],
    capture: Annotated[
        bool,
        typer.Option(
            "--capture",
            help="EXECUTE the checkout's own code up to its trainer (vendor_refs/<ref>/capture.yaml, cached) "
            "and compare training arguments, launch table, model request and LoRA with the built-in recipe.",
        ),
    ] = False,
    data: Annotated[
        list[str] | None, typer.Option("--data", help="With --capture: NAME=DIR serves load_dataset(NAME).")
    ] = None,
    stub: Annotated[
        list[str] | None, typer.Option("--stub", help="With --capture: MODULE imported but never used.")
    ] = None,
    python: Annotated[
        str | None,
        typer.Option("--python", help="With --capture: current, pinned or PATH (default: the ref's)."),
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", help="With --capture: K=V for the recipe.")
    ] = None,
) -> None:
    """Re-extract pinned facts from an upstream checkout (never executing it) and report drift; with --capture,
    run its own code up to the trainer and report drift against the built-in recipe."""
    if not capture:
        if data or stub or python or env:
            raise ParityError("--data, --stub, --python and --env need --capture")
        from parity.refs import format_refs_report, verify_ref

        report = verify_ref(ref, Path(checkout))
        print(format_refs_report(report))
        if not report.ok:
            raise typer.Exit(1)
        return
    from parity.capture.options import parse_pairs
    from parity.refs.capture_check import verify_by_capture
    from parity.refs.format import format_capture_check

    check = verify_by_capture(
        ref,
        Path(checkout),
        data=parse_pairs(data, "--data"),
        stubs=tuple(stub or ()),
        env=parse_pairs(env, "--env"),
        python=python,
    )
    print(format_capture_check(check))
    if not check.ok:
        raise typer.Exit(1)
