"""Terminal rendering of a diff: a one-screen summary, then Rich tables grouped by axis."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from parity.findings import AXES
from parity.report.tables import align_suggestion, severity_counts, short

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def print_summary(console: Console, report: dict[str, Any]) -> None:
    a, b, findings = report["a"], report["b"], report["findings"]
    counts = severity_counts(findings)
    line = Text(f"parity diff {a} (A) vs {b} (B): {len(findings)} findings  ")
    for severity, n in counts.items():
        line.append(f"{n} {severity}  ", style=SEVERITY_STYLE[severity] if n else "dim")
    console.print(line)
    context = report["context"]
    console.print(
        f"data {context.get('data')} · world size {context.get('world_size')} · samples {context.get('samples')}",
        style="dim",
    )
    for finding in findings:
        if finding["severity"] == "high":
            console.print(
                Text.assemble(("  ● ", "bold red"), (f"{finding['axis']}: ", "bold"), finding["summary"])
            )
    axes = align_suggestion(findings)
    if axes:
        console.print(f"next: parity run --a {a} --b {b} --align {','.join(axes)}", style="dim")


def print_findings(console: Console, report: dict[str, Any]) -> None:
    grouped: dict[str, list[dict]] = {}
    for finding in report["findings"]:
        grouped.setdefault(finding["axis"], []).append(finding)
    for axis in sorted(grouped, key=lambda ax: (min(_rank(f) for f in grouped[ax]), AXES.index(ax))):
        table = Table(title=f"{axis}", title_justify="left", expand=False, show_lines=False)
        table.add_column("sev")
        table.add_column("key", overflow="fold")
        table.add_column(f"A ({report['a']})", overflow="fold", max_width=28)
        table.add_column(f"B ({report['b']})", overflow="fold", max_width=28)
        table.add_column("summary", overflow="fold")
        table.add_column("align")
        for f in grouped[axis]:
            table.add_row(
                Text(f["severity"], style=SEVERITY_STYLE[f["severity"]]),
                f["key"],
                short(f["a"], 56),
                short(f["b"], 56),
                f["summary"],
                f["align"] or "—",
            )
        console.print(table)


def _rank(finding: dict) -> int:
    return ("high", "medium", "low", "info").index(finding["severity"])


def print_mask_example(console: Console, report: dict[str, Any]) -> None:
    """Both loss masks of one example side by side: trained tokens green, masked tokens dim."""
    example = report["probes"].get("loss_mask", {}).get("example")
    if not example:
        return
    table = Table(title="loss mask of one example (green = carries loss)", show_lines=True)
    for side in ("a", "b"):
        table.add_column(f"{side.upper()} ({report[side]})", overflow="fold")
    texts = []
    for side in ("a", "b"):
        text = Text()
        for token, trained in example.get(side, []):
            shown = token.replace("Ġ", "·").replace("Ċ", "⏎\n")
            text.append(shown, style="bold green" if trained else "dim")
            text.append(" ")
        texts.append(text)
    table.add_row(*texts)
    console.print(table)
