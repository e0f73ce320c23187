"""Self-contained HTML report: findings, evidence, LR schedules and length histograms as inline SVG plots."""

from __future__ import annotations

import html
import json
from typing import Any

from parity.report.svg import histogram_svg, line_chart_svg
from parity.report.tables import scalar_rows, severity_counts, short

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1300px;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;text-align:left}
th{background:#f3f3f3;white-space:nowrap}
td{overflow-wrap:break-word}td.summary{min-width:18rem}
div.value{max-width:14rem;min-width:8rem;overflow-wrap:anywhere}
td.nowrap{white-space:nowrap}
.high{color:#b00020;font-weight:bold}.medium{color:#b36b00}.low{color:#555}.info{color:#777}
pre{background:#f7f7f7;padding:.5rem;overflow-x:auto;font-size:.8rem}code{background:#f3f3f3}
td.key{min-width:12rem}table.findings{width:100%}
.plots{display:flex;flex-wrap:wrap;gap:1rem}figure{margin:0}figcaption{font-size:.85rem;color:#555}
"""
"""Header cells never wrap (no word is broken inside a header); data cells wrap between words, and only
code (keys, long values) may break inside a word."""


def _series(values: dict[str, Any], side: str, *names: str) -> list[float] | None:
    data = values.get(side) if isinstance(values, dict) else None
    if not isinstance(data, dict):
        return None
    for name in names:
        if (
            isinstance(data.get(name), list)
            and data[name]
            and all(isinstance(v, int | float) for v in data[name])
        ):
            return [float(v) for v in data[name]]
    return None


CONTEXT_LABELS = {
    "data": "data source",
    "world_size": "world size",
    "samples": "examples tokenized",
    "world_sizes": "world sizes in the batch table",
    "probes": "probes run",
    "a_origin": "recipe A from",
    "b_origin": "recipe B from",
}


def key_html(key: str) -> str:
    """A dotted key as code that may wrap after its dots and underscores (never inside a word)."""
    escaped = html.escape(key)
    return "<code>" + escaped.replace(".", ".<wbr>").replace("_", "_<wbr>") + "</code>"


def context_table(context: dict[str, Any]) -> str:
    """The diff's context as a two-column table (lists joined with commas), not raw JSON."""
    rows = []
    for key, value in context.items():
        shown = ", ".join(str(v) for v in value) if isinstance(value, list) else value
        if isinstance(shown, dict):
            shown = json.dumps(shown, ensure_ascii=False)
        label = CONTEXT_LABELS.get(key, key.replace("_", " "))
        rows.append(f"<tr><th scope='row'>{html.escape(label)}</th><td>{html.escape(str(shown))}</td></tr>")
    return "<table class='context'>" + "".join(rows) + "</table>"


def render_html(report: dict[str, Any]) -> str:
    a, b, findings, probes = report["a"], report["b"], report["findings"], report["probes"]
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>parity diff: {esc(a)} vs {esc(b)}</title><style>{STYLE}</style></head><body>",
        f"<h1>parity diff: <code>{esc(a)}</code> (A) vs <code>{esc(b)}</code> (B)</h1>",
        "<h2>Context</h2>",
        context_table(report["context"]),
        "<h2>Summary</h2><p>"
        + ", ".join(f"<span class='{s}'>{n} {s}</span>" for s, n in severity_counts(findings).items())
        + "</p>",
    ]
    plots = []
    schedule = probes.get("schedule", {})
    lr_a, lr_b = _series(schedule, "a", "lr", "lrs"), _series(schedule, "b", "lr", "lrs")
    if lr_a and lr_b:
        plots.append(
            (
                "Learning rate at every optimizer step",
                line_chart_svg({a: lr_a, b: lr_b}, "optimizer step", "LR"),
            )
        )
    histogram = probes.get("tokens", {}).get("length_histogram")
    if histogram:
        plots.append(
            (
                "Sequence length (tokens) of the tokenized samples",
                histogram_svg(histogram["edges"], {a: histogram["a"], b: histogram["b"]}, "tokens"),
            )
        )
    if plots:
        parts.append("<h2>Plots</h2><div class='plots'>")
        parts += [f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>" for caption, svg in plots]
        parts.append("</div>")
    parts.append(
        "<h2>Findings</h2><table class='findings'><tr><th>#</th><th>severity</th><th>axis</th><th>key</th><th>A</th><th>B</th><th>summary</th><th>align</th></tr>"
    )
    for i, f in enumerate(findings, 1):
        parts.append(
            f"<tr><td>{i}</td><td class='{f['severity']}'>{f['severity']}</td><td class='nowrap'>{esc(f['axis'])}</td>"
            f"<td class='key'>{key_html(f['key'])}</td><td><div class='value'>{esc(short(f['a'], 60))}</div></td>"
            f"<td><div class='value'>{esc(short(f['b'], 60))}</div></td>"
            f"<td class='summary'>{esc(f['summary'])}</td><td class='nowrap'>{esc(f['align'] or '—')}</td></tr>"
        )
    parts.append("</table><h2>Evidence</h2>")
    for i, f in enumerate(findings, 1):
        parts.append(
            f"<details><summary>{i}. <span class='{f['severity']}'>[{f['severity']}]</span> {esc(f['axis'])} · "
            f"<code>{esc(f['key'])}</code>: {esc(f['summary'])}</summary>"
            f"<pre>{esc(json.dumps(f['evidence'], indent=2, ensure_ascii=False))}</pre></details>"
        )
    parts.append("<h2>Measured values</h2>")
    for probe, values in probes.items():
        rows = scalar_rows(values)
        if rows:
            parts.append(f"<h3>{esc(probe)}</h3><table><tr><th>value</th><th>A</th><th>B</th></tr>")
            parts += [
                f"<tr><td class='key'>{key_html(k)}</td><td>{esc(short(va))}</td>"
                f"<td>{esc(short(vb))}</td></tr>"
                for k, va, vb in rows
            ]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
