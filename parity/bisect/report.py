"""The bisect report: attribution.json, a self-contained HTML page (effects with intervals, loss curves) and a
compact terminal table.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from parity.atomic import write_text_atomic
from parity.bisect.runs import LegRun
from parity.run.files import write_json_atomic
from parity.run.report import _table


def verdict_of(axis: dict[str, Any]) -> str:
    """'indistinguishable from zero', or the share of the gap the axis explains."""
    share = axis["share"]
    if axis["indistinguishable_from_zero"]:
        what = "indistinguishable from zero"
    else:
        what = f"{share:.0%} of the gap" if share is not None else f"{axis['effect']:+.4g}"
    grouped = len(axis["measured_as"]) > 1
    return f"{what} (measured as a group of {len(axis['measured_as'])})" if grouped else what


def fraction(run: dict[str, Any]) -> str:
    """An accuracy run's value as k/n (its value alone for another metric)."""
    if run.get("n"):
        return f"{run['correct']}/{run['n']}"
    return f"{run['value']:.4g}"


def baseline_values(attribution: dict[str, Any]) -> str:
    """'A 3/8, B 0/8' (accuracy) or 'A 7.23, B 7.16': seed 0 of the unaligned pair."""
    runs = {(r["leg"], tuple(r["aligned"]), r["seed"]): r for r in attribution["runs"]}
    parts = [f"{leg.upper()} {fraction(runs[(leg, (), 0)])}" for leg in ("a", "b") if (leg, (), 0) in runs]
    return ", ".join(parts)


def summary_lines(attribution: dict[str, Any], warnings: bool = True) -> list[str]:
    """What the metric is, the total gap against the noise, and whether the axes' effects add up (`warnings`:
    the attribution's warnings first; the command has printed them on stderr already)."""
    gap, noise = attribution["total_gap"], attribution["noise"]
    lines = [f"warning: {w}" for w in attribution.get("warnings", [])] if warnings else []
    if attribution.get("metric_definition"):
        lines.append(f"metric {attribution['metric_definition']}")
    lines.append(
        f"total gap ({attribution['metric']}, A - B): {gap['value']:+.4g} "
        f"[{gap['interval'][0]:+.4g}, {gap['interval'][1]:+.4g}] ({baseline_values(attribution)})"
        + (" - within the noise" if gap["within_noise"] else "")
    )
    if noise["sigma"] is None:
        lines.append("noise: not estimated (one seed); intervals are points")
    else:
        lines.append(
            f"noise: sigma {noise['sigma']:.3g} of a same-seed difference over {noise['seeds']} data-order "
            f"seeds (dof {noise['dof']}); effects +- {noise['effect_halfwidth']:.3g} (95%)"
        )
    inter = gap.get("interaction")
    if inter:
        if inter["axes_interact"]:
            lines.append(
                f"the axes interact: effects sum to {inter['sum_of_effects']:+.4g} but aligning all removes "
                f"{inter['explained_by_all']:+.4g} (interaction {inter['value']:+.4g}, "
                f"[{inter['interval'][0]:+.4g}, {inter['interval'][1]:+.4g}])"
            )
        else:
            lines.append(f"effects add up to the gap within the noise (interaction {inter['value']:+.4g})")
    lines.append(f"gap left with every attributed axis aligned: {gap['residual_all_aligned']:+.4g}")
    return lines


def terminal_table(attribution: dict[str, Any]):
    """A rich Table: rank, axis, effect, interval, share, verdict."""
    from rich.table import Table

    table = Table(title=f"attribution ({attribution['design']})")
    for column in ("#", "axis", "effect", "95% +-", "share", "verdict"):
        table.add_column(column)
    for axis in attribution["axes"]:
        low, high = axis["interval"]
        table.add_row(
            str(axis["rank"]),
            axis["name"],
            f"{axis['effect']:+.4g}",
            f"{(high - low) / 2:.2g}",
            "-" if axis["share"] is None else f"{axis['share']:.0%}",
            verdict_of(axis),
        )
    return table


def plot_effects(attribution: dict[str, Any]) -> bytes:
    """Horizontal bars of the effects with 95% interval whiskers, the total gap as a reference line."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    axes = attribution["axes"]
    names = [a["name"] for a in axes][::-1]
    effects = [a["effect"] for a in axes][::-1]
    errors = [(a["interval"][1] - a["interval"][0]) / 2 for a in axes][::-1]
    colors = ["tab:gray" if a["indistinguishable_from_zero"] else "tab:blue" for a in axes][::-1]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.45 * max(1, len(axes))), dpi=100)
    if axes:
        ax.barh(names, effects, xerr=errors, color=colors, capsize=4)
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(attribution["total_gap"]["value"], color="tab:red", ls="--", lw=1, label="total gap")
    ax.set(xlabel=f"effect on {attribution['metric']} (A - A aligned)", title="effect of aligning each axis")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _png(fig, plt)


def plot_runs(runs: list[LegRun]) -> bytes:
    """Training loss of every run (B dashed, A variants solid; seeds beyond 0 thin)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(13, 4.5), dpi=100)
    for run in runs:
        xs = [r["step"] for r in run.curve]
        ys = [r["loss"] for r in run.curve]
        label = (
            f"B seed {run.seed}"
            if run.side == "b"
            else f"A +{'+'.join(run.aligned) or 'none'} seed {run.seed}"
        )
        style = {"ls": "--" if run.side == "b" else "-", "lw": 1.8 if run.seed == 0 else 0.8}
        ax.plot(xs, ys, label=label, **style)
    ax.set(title="training loss of the runs", xlabel="optimizer step", ylabel="loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _png(fig, plt)


def _png(fig: Any, plt: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def render_html(attribution: dict[str, Any], effects_png: bytes, curves_png: bytes) -> str:
    gap = attribution["total_gap"]
    title = f"parity bisect: {gap['a']} vs {gap['b']}"
    rows = [
        [
            a["rank"],
            a["name"],
            a["effect"],
            f"[{a['interval'][0]:.4g}, {a['interval'][1]:.4g}]",
            a["share"],
            verdict_of(a),
            ", ".join(a["keys"]),
        ]
        for a in attribution["axes"]
    ]
    runs = [
        [
            r["key"],
            r["leg"],
            "+".join(r["aligned"]) or "none",
            r["seed"],
            fraction(r) if r.get("n") else r["value"],
        ]
        for r in attribution["runs"]
    ]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        "<p>" + "<br>".join(html.escape(line) for line in summary_lines(attribution)) + "</p>",
        f'<img alt="effects with 95% intervals" src="data:image/png;base64,{base64.b64encode(effects_png).decode()}">',
        "<h2>Axes</h2>",
        _table(["rank", "axis", "effect", "95% interval", "share", "verdict", "spec keys"], rows),
        "<h2>Runs</h2>",
        f'<img alt="loss curves" src="data:image/png;base64,{base64.b64encode(curves_png).decode()}">',
        _table(["run", "leg", "aligned", "seed", attribution["metric"]], runs),
    ]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def write_reports(out: Path, attribution: dict[str, Any], runs: list[LegRun]) -> None:
    """report.html, then attribution.json (its presence means the bisect finished)."""
    write_text_atomic(
        out / "report.html", render_html(attribution, plot_effects(attribution), plot_runs(runs))
    )
    write_json_atomic(out / "attribution.json", attribution)
