"""Terminal rendering of a diff: by default the headline findings in about one screen at 80 columns (readable in a
CI log, severity spelled out, never colour alone); with --details the per-axis tables; the loss-mask view."""

from __future__ import annotations

import textwrap
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from parity.findings import AXES, SEVERITIES
from parity.report.tables import align_suggestion, severity_counts, short

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}
SEVERITY_MEANING = {
    "high": "what is trained on, or how much, differs",
    "medium": "optimisation or checkpoint selection differs",
}
WIDTH = 80
AXIS_COLUMN = 11
HIGH_SUMMARY_LINES = 3
"""Wrapped lines shown per high finding (the full text is in the reports and under --details)."""
MEDIUM_KEY_LINES = 2
TRAINED_OPEN, TRAINED_CLOSE = "[", "]"
"""Runs of tokens that carry loss are bracketed in the mask view, so it reads without colour."""


def headline(report: dict[str, Any], refs: tuple[str, str] | None = None, width: int = WIDTH) -> list[Text]:
    """The default terminal view: counts, every high finding (wrapped, at most 3 lines), medium findings as keys
    per axis, low/info as counts per axis, and the suggested `parity run`. `refs` are the recipe names or paths
    as the user gave them (repeated in the suggestion)."""
    a, b, findings = report["a"], report["b"], report["findings"]
    counts = severity_counts(findings)
    lines = [Text(f"parity diff {a} (A) vs {b} (B): {len(findings)} findings", style="bold")]
    tally = Text("  ")
    for severity, n in counts.items():
        tally.append(f"{n} {severity}", style=SEVERITY_STYLE[severity] if n else "dim")
        tally.append(" · " if severity != SEVERITIES[-1] else "")
    lines.append(tally)
    lines.append(Text("  " + _context_line(report.get("context", {})), style="dim"))
    high = [f for f in findings if f["severity"] == "high"]
    if high:
        lines += [Text(""), _section_title("high", len(high))]
        for finding in high:
            lines += _wrapped_finding(finding, width)
    medium = [f for f in findings if f["severity"] == "medium"]
    if medium:
        lines += [Text(""), _section_title("medium", len(medium))]
        for axis, keys in _keys_by_axis(medium).items():
            lines += _wrapped(axis, ", ".join(keys), width, MEDIUM_KEY_LINES)
    rest = [(s, [f for f in findings if f["severity"] == s]) for s in ("low", "info")]
    rest = [(s, group) for s, group in rest if group]
    if rest:
        lines.append(Text(""))
    for severity, group in rest:
        head = f"{severity.upper()} ({len(group)}): "
        items = [f"{axis} {len(keys)}" for axis, keys in _keys_by_axis(group).items()]
        for i, text in enumerate(_packed(items, width - len(head))):
            lines.append(Text.assemble((head if i == 0 else " " * len(head), "bold"), text))
    axes = align_suggestion(findings)
    if axes:
        ref_a, ref_b = refs or (a, b)
        lines += [
            Text(""),
            Text(f"next: parity run --a {ref_a} --b {ref_b} --align {','.join(axes)}", style="dim"),
        ]
    return lines


def print_summary(console: Console, report: dict[str, Any], refs: tuple[str, str] | None = None) -> None:
    """Print the headline view (see `headline`)."""
    for line in headline(report, refs, min(console.width, 100)):
        # the suggested command stays one line (copy-pastable); the terminal wraps it
        console.print(line, soft_wrap=line.plain.startswith("next: "))


def _context_line(context: dict[str, Any]) -> str:
    samples = context.get("samples")
    limited = "".join(f" · rows limited: {note}" for note in context.get("rows_limited", []))
    return f"data {context.get('data')} · world size {context.get('world_size')} · samples {samples}{limited}"


def _section_title(severity: str, n: int) -> Text:
    meaning = SEVERITY_MEANING.get(severity, "")
    return Text.assemble(
        (f"{severity.upper()} ({n})", SEVERITY_STYLE[severity]), f": {meaning}" if meaning else ""
    )


def _wrapped_finding(finding: dict[str, Any], width: int) -> list[Text]:
    return _wrapped(finding["axis"], finding["summary"], width, HIGH_SUMMARY_LINES)


def _wrapped(label: str, body_text: str, width: int, max_lines: int) -> list[Text]:
    """`label` in a left column, `body_text` wrapped beside it with a hanging indent, at most max_lines."""
    body = textwrap.wrap(
        body_text, width=width - AXIS_COLUMN - 1, break_long_words=True, break_on_hyphens=False
    )
    if len(body) > max_lines:
        body = body[:max_lines]
        body[-1] = body[-1][: width - AXIS_COLUMN - 2].rstrip() + "…"
    out = []
    if len(label) >= AXIS_COLUMN - 1:  # a long axis name gets its own line rather than pushing the text out
        out.append(Text(f" {label}", "bold"))
        label = ""
    for i, text in enumerate(body or [""]):
        column = f" {label:<{AXIS_COLUMN - 1}}" if i == 0 else " " * AXIS_COLUMN
        out.append(Text.assemble((column, "bold" if i == 0 else ""), " ", text))
    return out


def _keys_by_axis(findings: list[dict[str, Any]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for finding in findings:
        key = finding["key"]
        section, _, rest = key.partition(".")
        grouped.setdefault(finding["axis"], []).append(rest if section == finding["axis"] and rest else key)
    return grouped


def _packed(items: list[str], width: int) -> list[str]:
    """Items joined by ', ' into lines of at most `width` characters (each but the last ending in a comma),
    never splitting an item."""
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + 2 + len(item) <= width:
            lines[-1] += ", " + item
        else:
            lines.append(item)
    return [line + "," for line in lines[:-1]] + lines[-1:]


def fail_on_lines(findings: list[dict[str, Any]], threshold: str, width: int = WIDTH) -> list[str]:
    """Why `--fail-on THRESHOLD` fails: a first line with the count, then one line per finding at or above it
    (severity, axis and key, summary clipped to the width). Empty when nothing is at or above it."""
    rank = SEVERITIES.index(threshold)
    failing = [f for f in findings if SEVERITIES.index(f["severity"]) <= rank]
    if not failing:
        return []
    lines = [f"--fail-on {threshold}: {len(failing)} finding(s) at or above {threshold}:"]
    for f in failing:
        line = f"  {f['severity']:<6} {f['axis']}: {f['key']}: {f['summary']}"
        lines.append(line if len(line) <= width else line[: width - 1] + "…")
    return lines


def print_findings(console: Console, report: dict[str, Any]) -> None:
    """The --details view: one table per axis, highest severity first."""
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
    return SEVERITIES.index(finding["severity"])


def mask_text(tokens: list[list[Any]]) -> Text:
    """One example's tokens with every run of loss-carrying tokens in [brackets] (and green); spaces shown as ·,
    newlines as ⏎ followed by a line break."""
    text = Text()
    inside = False
    for token, trained in tokens:
        if trained and not inside:
            text.append(TRAINED_OPEN, style="bold green")
        elif not trained and inside:
            text.append(TRAINED_CLOSE, style="bold green")
        inside = bool(trained)
        shown = token.replace("Ġ", "·").replace("Ċ", "⏎\n")
        text.append(shown, style="bold green" if trained else "dim")
        text.append(" ")
    if inside:
        text.append(TRAINED_CLOSE, style="bold green")
    return text


def print_mask_example(console: Console, report: dict[str, Any]) -> None:
    """Both loss masks of one example side by side; tokens that carry loss are [bracketed] and green."""
    example = report["probes"].get("loss_mask", {}).get("example")
    if not example:
        return
    title = Text(f"loss mask of one example: {TRAINED_OPEN}bracketed{TRAINED_CLOSE} tokens carry loss")
    table = Table(title=title, show_lines=True)
    for side in ("a", "b"):
        table.add_column(f"{side.upper()} ({report[side]})", overflow="fold")
    table.add_row(*(mask_text(example.get(side, [])) for side in ("a", "b")))
    console.print(table)


PROGRESS_LINES = 20
"""Progress lines per leg when the output is not a terminal (a CI log): about one per 5% of the steps."""


def progress_due(step: int, total: int | None) -> bool:
    """Whether a non-terminal progress line is printed at this step: every total/20 steps, the first and last."""
    if not total:
        return step == 1 or step % 10 == 0
    every = max(1, total // PROGRESS_LINES)
    return step == 1 or step == total or step % every == 0


def duration_text(seconds: float) -> str:
    """'42s', '3m05s', '2h07m'."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def progress_line(label: str, step: int, total: int | None, elapsed: float, loss: float | None) -> str:
    """One plain progress line with the rate and the time left: 'A revise: step 40/633 (6%) loss 1.2345 ·
    1.50 s/step · elapsed 1m00s · ETA 14m50s'."""
    parts = [f"{label}: step {step}" + (f"/{total} ({step / total:.0%})" if total else "")]
    if loss is not None:
        parts[0] += f" loss {loss:.4f}"
    if step > 0 and elapsed > 0:
        per_step = elapsed / step
        parts.append(f"{per_step:.2f} s/step")
        parts.append(f"elapsed {duration_text(elapsed)}")
        if total and total > step:
            parts.append(f"ETA {duration_text(per_step * (total - step))}")
    return " · ".join(parts)
