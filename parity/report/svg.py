"""Tiny deterministic SVG charts (no plotting library needed, byte-identical for identical data).

The legend sits in its own band above the plot area and the axis labels outside it, so nothing overlaps data.
"""

from __future__ import annotations

import html

WIDTH, HEIGHT = 540, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 14, 34, 46
"""Margins around the plot area: y tick labels and the rotated y label left, legend band on top, x below."""
COLORS = ("#1f77b4", "#d62728")
DASHES = ("", " stroke-dasharray='6 3'")
"""Line styles per series, so the two series differ without colour too."""
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _x(fraction: float) -> float:
    return LEFT + PLOT_W * fraction


def _y(fraction: float) -> float:
    return TOP + PLOT_H * (1 - fraction)


def _frame(x_label: str, y_label: str, x_min: float, x_max: float, y_min: float, y_max: float) -> list[str]:
    bottom = TOP + PLOT_H
    return [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' font-size='11' "
        "font-family='sans-serif'>",
        f"<rect x='{LEFT}' y='{TOP}' width='{PLOT_W}' height='{PLOT_H}' fill='none' stroke='#999'/>",
        f"<text x='{LEFT + PLOT_W / 2}' y='{HEIGHT - 8}' text-anchor='middle'>{html.escape(x_label)}</text>",
        f"<text transform='translate(14 {TOP + PLOT_H / 2}) rotate(-90)' text-anchor='middle'>"
        f"{html.escape(y_label)}</text>",
        f"<text x='{LEFT - 6}' y='{bottom}' text-anchor='end'>{_fmt(y_min)}</text>",
        f"<text x='{LEFT - 6}' y='{TOP + 9}' text-anchor='end'>{_fmt(y_max)}</text>",
        f"<text x='{LEFT}' y='{bottom + 15}' text-anchor='middle'>{_fmt(x_min)}</text>",
        f"<text x='{LEFT + PLOT_W}' y='{bottom + 15}' text-anchor='end'>{_fmt(x_max)}</text>",
    ]


def _legend(names: list[str]) -> list[str]:
    """One swatch and name per series in the band above the plot, left to right."""
    out, x = [], LEFT
    for i, name in enumerate(names):
        color = COLORS[i % 2]
        out.append(
            f"<line x1='{x}' y1='14' x2='{x + 22}' y2='14' stroke='{color}' stroke-width='3'{DASHES[i % 2]}/>"
        )
        out.append(f"<text x='{x + 28}' y='18'>{html.escape(name)}</text>")
        x += 28 + 7 * len(name) + 24
    return out


def line_chart_svg(series: dict[str, list[float]], x_label: str, y_label: str) -> str:
    """Overlaid line chart of each series against its index."""
    x_max = max(len(v) for v in series.values()) - 1 or 1
    y_min = min(min(v) for v in series.values())
    y_max = max(max(v) for v in series.values())
    span = (y_max - y_min) or 1.0
    out = _frame(x_label, y_label, 0, x_max, y_min, y_max)
    for i, values in enumerate(series.values()):
        points = " ".join(f"{_x(x / x_max):.1f},{_y((y - y_min) / span):.1f}" for x, y in enumerate(values))
        out.append(
            f"<polyline fill='none' stroke='{COLORS[i % 2]}' stroke-width='1.5'{DASHES[i % 2]} points='{points}'/>"
        )
    return "".join(out + _legend(list(series)) + ["</svg>"])


def histogram_svg(edges: list[float], counts: dict[str, list[int]], x_label: str) -> str:
    """Overlaid histograms of pre-binned counts on shared bin edges."""
    bins = len(edges) - 1
    top = max(max(c) for c in counts.values()) or 1
    out = _frame(x_label, "examples", edges[0], edges[-1], 0, top)
    bar = PLOT_W / bins
    for i, row in enumerate(counts.values()):
        for j, count in enumerate(row):
            h = PLOT_H * count / top
            out.append(
                f"<rect x='{LEFT + j * bar:.1f}' y='{TOP + PLOT_H - h:.1f}' width='{bar:.1f}' height='{h:.1f}' "
                f"fill='{COLORS[i % 2]}' fill-opacity='0.45'/>"
            )
    return "".join(out + _legend(list(counts)) + ["</svg>"])
