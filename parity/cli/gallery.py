"""`parity gallery`: stage and measure the gallery's cases (cases/) and check each report against its expected.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_ROOT = Path("cases")


def gallery_command(
    cases: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Case folders (default: every folder of ./cases holding a case.yaml).", show_default=False
        ),
    ] = None,
) -> None:
    """Run the gallery's cases and check each report against its expected.yaml; exit 1 when one differs."""
    from parity.errors import ParityError
    from parity.gallery import check_case, gallery_root, list_cases

    folders = list(cases or [])
    if not folders:
        if not DEFAULT_ROOT.is_dir():
            raise ParityError("no ./cases folder here: run from the repository root or name the case folders")
        folders = list_cases(DEFAULT_ROOT)
    failed = 0
    for folder in folders:
        result = check_case(folder)
        for name, problems in result.problems.items():
            report = gallery_root() / result.case.name / "reports" / name
            print(f"{'ok  ' if not problems else 'FAIL'} {result.case.name} {name}: {report}")
            for problem in problems:
                print(f"       {problem}")
            failed += bool(problems)
    if failed:
        raise typer.Exit(1)
