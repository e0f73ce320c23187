"""Tiny deterministic SVG charts (no plotting library needed, byte-identical for identical data)."""

from __future__ import annotations

import html

WIDTH, HEIGHT, PAD = 520, 260, 44
COLORS = ("#1f77b4", "#d62728")


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _frame(x_label: str, y_label: str, x_max: float, y_min: float, y_max: float) -> list[str]:
    return [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' font-size='11'>",
        f"<rect x='{PAD}' y='10' width='{WIDTH - PAD - 10}' height='{HEIGHT - PAD - 10}' fill='none' stroke='#999'/>",
        f"<text x='{WIDTH / 2}' y='{HEIGHT - 6}' text-anchor='middle'>{html.escape(x_label)}</text>",
        f"<text x='4' y='14'>{html.escape(y_label)}</text>",
        f"<text x='{PAD - 4}' y='{HEIGHT - PAD}' text-anchor='end'>{_fmt(y_min)}</text>",
        f"<text x='{PAD - 4}' y='20' text-anchor='end'>{_fmt(y_max)}</text>",
        f"<text x='{WIDTH - 10}' y='{HEIGHT - PAD + 14}' text-anchor='end'>{_fmt(x_max)}</text>",
    ]


def _legend(names: list[str]) -> list[str]:
    return [
        f"<text x='{PAD + 8}' y='{26 + 14 * i}' fill='{COLORS[i % 2]}'>{html.escape(name)}</text>"
        for i, name in enumerate(names)
    ]


def line_chart_svg(series: dict[str, list[float]], x_label: str, y_label: str) -> str:
    """Overlaid line chart of each series against its index."""
    x_max = max(len(v) for v in series.values()) - 1 or 1
    y_min = min(min(v) for v in series.values())
    y_max = max(max(v) for v in series.values())
    span = (y_max - y_min) or 1.0
    out = _frame(x_label, y_label, x_max, y_min, y_max)
    for i, values in enumerate(series.values()):
        points = " ".join(
            f"{PAD + (WIDTH - PAD - 10) * x / x_max:.1f},{HEIGHT - PAD - (HEIGHT - PAD - 10) * (y - y_min) / span:.1f}"
            for x, y in enumerate(values)
        )
        out.append(f"<polyline fill='none' stroke='{COLORS[i % 2]}' stroke-width='1.5' points='{points}'/>")
    return "".join(out + _legend(list(series)) + ["</svg>"])


def histogram_svg(edges: list[float], counts: dict[str, list[int]], x_label: str) -> str:
    """Overlaid histograms of pre-binned counts on shared bin edges."""
    bins = len(edges) - 1
    top = max(max(c) for c in counts.values()) or 1
    out = _frame(x_label, "examples", edges[-1], 0, top)
    out.append(f"<text x='{PAD}' y='{HEIGHT - PAD + 14}'>{_fmt(edges[0])}</text>")
    bar = (WIDTH - PAD - 10) / bins
    for i, row in enumerate(counts.values()):
        for j, count in enumerate(row):
            h = (HEIGHT - PAD - 10) * count / top
            out.append(
                f"<rect x='{PAD + j * bar:.1f}' y='{HEIGHT - PAD - h:.1f}' width='{bar:.1f}' height='{h:.1f}' "
                f"fill='{COLORS[i % 2]}' fill-opacity='0.45'/>"
            )
    return "".join(out + _legend(list(counts)) + ["</svg>"])
