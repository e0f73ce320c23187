"""The run report: loss-gap verdict, overlaid curves (PNG), a self-contained HTML page and summary.json.

Identical curves (max gap <= IDENTICAL_TOL) are "identical"; a gap left after aligning everything is "unexplained".
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

from parity.atomic import write_bytes_atomic, write_text_atomic
from parity.run.files import write_json_atomic

SCHEMA_VERSION = 1
IDENTICAL_TOL = 1e-6


def loss_gap(steps_a: list[dict], steps_b: list[dict], tol: float = IDENTICAL_TOL) -> dict[str, Any]:
    """Max |loss_a - loss_b| over the steps both legs ran, and the first step where the curves split."""
    loss_a = {r["step"]: r["loss"] for r in steps_a if "loss" in r}
    loss_b = {r["step"]: r["loss"] for r in steps_b if "loss" in r}
    common = sorted(set(loss_a) & set(loss_b))
    gaps = [(step, abs(loss_a[step] - loss_b[step])) for step in common]
    first = next((step for step, gap in gaps if gap > tol), None)
    return {
        "compared_steps": len(common),
        "max_abs_loss_gap": max((gap for _, gap in gaps), default=None),
        "first_divergent_step": first,
    }


def verdict(max_gap: float | None, all_aligned: bool, same_recipe: bool, tol: float = IDENTICAL_TOL) -> str:
    """'identical', 'unexplained divergence' (nothing left to explain a gap) or 'differs'."""
    if max_gap is None:
        return "no common steps"
    if max_gap <= tol:
        return "identical"
    return "unexplained divergence" if all_aligned or same_recipe else "differs"


def plot_curves(
    steps: dict[str, list[dict]], labels: dict[str, str], evals: dict[str, list[dict]] | None = None
) -> bytes:
    """Loss (with eval-loss markers) and learning rate of A and B overlaid, as PNG bytes (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(11, 4.8), dpi=100)
    styles = {"a": {"color": "tab:blue", "lw": 2.2}, "b": {"color": "tab:orange", "lw": 1.2, "ls": "--"}}
    for leg, records in steps.items():
        xs = [r["step"] for r in records]
        ax_loss.plot(xs, [r.get("loss") for r in records], label=labels[leg], **styles[leg])
        ax_lr.plot(xs, [r.get("learning_rate") for r in records], label=labels[leg], **styles[leg])
        for name, marker in (("own", "o"), ("shared", "s")):
            points = [(e["step"], e["loss"][name]) for e in (evals or {}).get(leg, []) if name in e["loss"]]
            if points:
                ax_loss.scatter(
                    *zip(*points, strict=True),
                    marker=marker,
                    color=styles[leg]["color"],
                    s=24,
                    label=f"{labels[leg]} eval ({name})",
                )
    ax_loss.set(title="training loss", xlabel="optimizer step", ylabel="loss")
    ax_lr.set(title="learning rate", xlabel="optimizer step", ylabel="lr")
    for ax in (ax_loss, ax_lr):
        ax.grid(alpha=0.3)
        # below the axes, never over the curves
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize="small", frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value)


def metrics_rows(summary: dict[str, Any]) -> list[list[Any]]:
    """Final metrics of both legs, one row per metric."""
    a, b = summary["runs"]["a"], summary["runs"]["b"]
    rows = [
        ["steps", a["steps"], b["steps"]],
        ["global batch", a["batch"]["global_batch"], b["batch"]["global_batch"]],
        ["micro-batch x accumulation x processes", _batch(a), _batch(b)],
        ["tokens seen", a["tokens_seen"], b["tokens_seen"]],
        ["final train loss", a["final_train_loss"], b["final_train_loss"]],
        ["final eval loss (own split)", a["final_eval_loss"], b["final_eval_loss"]],
        ["final eval loss (shared held-out)", a["final_shared_eval_loss"], b["final_shared_eval_loss"]],
        ["train steps / s", a["steps_per_second"], b["steps_per_second"]],
        ["train tokens / s", *[_speed(run, "tokens_per_second") for run in (a, b)]],
    ]
    if any(_speed(run, "mfu") is not None for run in (a, b)):
        rows.append(["model FLOPs utilization (bf16 peak)", *[_speed(run, "mfu") for run in (a, b)]])
    for ext in ("a", "b"):
        for mode in ("strict", "flexible"):
            scores = [summary["generation"].get(leg, {}).get(ext, {}).get(mode, {}) for leg in ("a", "b")]
            cells = [accuracy_cell(score) for score in scores]
            if any(score.get("accuracy") is not None for score in scores):
                rows.append([f"accuracy, {ext.upper()}'s extractor ({summary[ext]}, {mode})", *cells])
    return rows


def _speed(run: dict[str, Any], key: str) -> Any:
    return (run.get("throughput") or {}).get(key)


def accuracy_cell(score: dict[str, Any]) -> str | None:
    """'62.5% (5/8)': accuracy with the number of questions it is over."""
    accuracy, n = score.get("accuracy"), score.get("n")
    if accuracy is None:
        return None
    return f"{accuracy:.1%} ({round(accuracy * n)}/{n})" if n else f"{accuracy:.1%}"


def _batch(run: dict[str, Any]) -> str:
    batch = run["batch"]
    return f"{batch['micro_batch']} x {batch['accumulation']} x {batch['processes']}"


def render_html(summary: dict[str, Any], png: bytes) -> str:
    """A self-contained page: verdict, curves (embedded PNG), metrics, alignment, context overrides, findings."""
    a, b = summary["a"], summary["b"]
    image = base64.b64encode(png).decode("ascii")
    aligned = ", ".join(summary["aligned"]) or "none"
    findings = [
        [f["severity"], f["axis"], f["key"], f["summary"], f["align"]] for f in summary["remaining_findings"]
    ]
    overrides = [[side, o] for side in ("a", "b") for o in summary["overrides"][side]]
    context = [[k, v] for k, v in summary["context_overrides"]["sft_config"].items()]
    gap = summary["max_abs_loss_gap"]
    parts = [
        f"<h1>parity run: {html.escape(a)} vs {html.escape(b)}</h1>",
        f"<p>aligned: <b>{html.escape(aligned)}</b> (to {summary['to'].upper()}) &middot; verdict: "
        f"<b>{html.escape(summary['verdict'])}</b> &middot; max |loss gap| {_cell(gap)} over {summary['compared_steps']} steps"
        f" &middot; first divergent step: {_cell(summary['first_divergent_step'])}</p>",
        f'<img alt="loss and learning-rate curves" src="data:image/png;base64,{image}">',
        "<h2>Final metrics</h2>",
        _table(["metric", f"A: {a}", f"B: {b}"], metrics_rows(summary)),
        "<h2>Alignment overrides</h2>",
        _table(["side", "override"], overrides) if overrides else "<p>none</p>",
        "<h2>What still differs (pre-flight)</h2>",
        _table(["severity", "axis", "key", "summary", "align with"], findings)
        if findings
        else "<p>nothing</p>",
        "<h2>Run-context overrides (both legs)</h2>",
        _table(["SFTConfig field", "value"], context),
        "<h2>Notes</h2>",
        "<ul>"
        + "".join(f"<li>{html.escape(n)}</li>" for n in summary["context_overrides"]["notes"])
        + "</ul>",
    ]
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{white-space:nowrap}"
        "td{overflow-wrap:break-word}img{max-width:100%}"
    )
    return f"<!doctype html><html><head><meta charset='utf-8'><title>parity run {html.escape(a)} vs {html.escape(b)}</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n"


def write_report(run_dir: Path, summary: dict[str, Any], steps: dict[str, list[dict]]) -> None:
    """curves.png, report.html and summary.json (summary last: its presence means the report is complete)."""
    evals = {leg: summary["runs"][leg]["evals"] for leg in steps}
    png = plot_curves(steps, {"a": f"A {summary['a']}", "b": f"B {summary['b']}"}, evals)
    write_bytes_atomic(run_dir / "curves.png", png)
    write_text_atomic(run_dir / "report.html", render_html(summary, png))
    write_json_atomic(run_dir / "summary.json", summary)
