"""Markdown report in the style of a careful engineer's discrepancy analysis: summary, ranked findings, evidence."""

from __future__ import annotations

from typing import Any

import yaml

from parity.report.tables import align_suggestion, scalar_rows, severity_counts, short


def _cell(value: Any, limit: int = 60) -> str:
    return short(value, limit).replace("|", "\\|")


def render_markdown(report: dict[str, Any]) -> str:
    a, b, findings, context = report["a"], report["b"], report["findings"], report["context"]
    counts = severity_counts(findings)
    lines = [
        f"# Discrepancy analysis: `{a}` (A) vs `{b}` (B)",
        "",
        f"Measured by `parity diff` on data `{context.get('data')}`, world size {context.get('world_size')}, "
        f"{context.get('samples')} tokenized samples. Every value below comes from the materialized recipes "
        "(TRL's SFTConfig, tokenization and collator; HF's scheduler; peft), not from declared config.",
        *(f"Rows limited: {note}." for note in context.get("rows_limited", [])),
        "",
        "## Summary",
        "",
        f"{len(findings)} findings: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + ("." if findings else "none."),
        "",
    ]
    for finding in [f for f in findings if f["severity"] == "high"]:
        lines.append(f"- **{finding['axis']} · `{finding['key']}`**: {finding['summary']}")
    axes = align_suggestion(findings)
    if axes:
        lines += [
            "",
            f"To test how much of the gap these explain: `parity run --a {a} --b {b} --align {','.join(axes)}`.",
        ]
    lines += [
        "",
        "## Findings, highest severity first",
        "",
        "| # | severity | axis | key | A | B | align |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(findings, 1):
        lines.append(
            f"| {i} | {f['severity']} | {f['axis']} | `{f['key']}` | {_cell(f['a'])} | {_cell(f['b'])} | {f['align'] or '—'} |"
        )
    lines += ["", "## Evidence", ""]
    for i, f in enumerate(findings, 1):
        lines += [f"### {i}. [{f['severity']}] {f['axis']} · `{f['key']}`", "", f["summary"], ""]
        if f["evidence"]:
            lines += [
                "```yaml",
                yaml.safe_dump(f["evidence"], sort_keys=False, allow_unicode=True, width=100).rstrip(),
                "```",
                "",
            ]
    lines += ["## Measured values", ""]
    for probe, values in report["probes"].items():
        rows = scalar_rows(values)
        by_world = values.get("by_world_size") if isinstance(values, dict) else None
        if not rows and not by_world:
            continue
        lines += [f"### {probe}", ""]
        if by_world:
            headers = list(by_world[0])
            lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(_cell(row[h], 30) for h in headers) + " |" for row in by_world]
            lines.append("")
        if rows:
            lines += [f"| value | A ({a}) | B ({b}) |", "|---|---|---|"]
            lines += [f"| {key} | {_cell(va)} | {_cell(vb)} |" for key, va, vb in rows]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
