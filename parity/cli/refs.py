"""`parity refs verify`: re-extract pinned upstream facts from a checkout and print the drift report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def refs_verify_command(
    ref: Annotated[str, typer.Option("--ref", help="Recipe whose pinned facts to check.")],
    checkout: Annotated[str, typer.Option("--checkout", help="Local checkout of the upstream repository.")],
) -> None:
    """Re-extract pinned facts from an upstream checkout (never executing it) and report drift."""
    from parity.refs import format_refs_report, verify_ref

    report = verify_ref(ref, Path(checkout))
    print(format_refs_report(report))
    if not report.ok:
        raise typer.Exit(1)
