"""`parity diff`: materialize two recipes, probe every axis, write the reports, then print the findings.

Reports are written before anything is printed, so `parity diff ... | head -1` still leaves them complete."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from parity.axes import AXES
from parity.cli.console import console
from parity.cli.options import DataOption, SetA, SetB, WorldSize, parse_samples
from parity.errors import ParityError


def diff_command(
    a: Annotated[str, typer.Option("--a", help="Recipe A: name or YAML path.")],
    b: Annotated[str, typer.Option("--b", help="Recipe B (the reference): name or YAML path.")],
    data: DataOption = None,
    world_size: WorldSize = 1,
    samples: Annotated[
        str, typer.Option("--samples", help="Examples tokenized for token/mask/length probes, or 'all'.")
    ] = "256",
    only: Annotated[
        str | None,
        typer.Option("--only", help=f"Comma-separated axes to probe (default: all): {', '.join(AXES)}."),
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
    details: Annotated[
        bool, typer.Option("--details", "-v", help="Also print one table per axis with every finding.")
    ] = False,
) -> None:
    """Materialize two recipes and report, by measurement, everything that differs in what they train on."""
    from parity.diff import run_diff
    from parity.findings import SEVERITIES, at_or_above
    from parity.report import FORMATS, write_reports
    from parity.report.terminal import fail_on_lines, print_findings, print_mask_example, print_summary

    if fail_on is not None and fail_on not in SEVERITIES:
        raise ParityError(f"--fail-on must be one of {', '.join(SEVERITIES)}, got '{fail_on}'")
    if fmt is not None and fmt not in FORMATS:
        raise ParityError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    n_samples = parse_samples(samples)
    terminal = console()
    with terminal.status("materializing recipes…") as status:
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
    out_dir = Path(out) if out else Path("reports") / f"{slug(report.a)}-vs-{slug(report.b)}"
    written = write_reports(report_dict, out_dir, (fmt,) if fmt else FORMATS)
    print_summary(terminal, report_dict, refs=(a, b))
    if details:
        print_findings(terminal, report_dict)
    if show_example is not None:
        print_mask_example(terminal, report_dict)
    hint = "" if details else " (tables per axis: --details)"
    formats = ",".join(path.suffix.lstrip(".") for path in written)
    shown = f"{written[0].parent / 'report'}.{{{formats}}}" if len(written) > 1 else str(written[0])
    terminal.print(f"reports: {shown}{hint}", style="dim")
    if fail_on and at_or_above(report.findings, fail_on):
        explanation = fail_on_lines(report_dict["findings"], fail_on, terminal.width)
        for line in explanation:
            terminal.print(line, markup=False)
        print(f"parity: {explanation[0].rstrip(':')} (listed above)", file=sys.stderr)
        raise typer.Exit(1)


def slug(name: str) -> str:
    """A recipe name made safe for a directory name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
