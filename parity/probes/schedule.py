"""Schedule probe: the learning rate at every optimizer step from the real HF scheduler, warmup, run length and
early stopping per recipe, and where the two curves differ at the same relative position."""

from __future__ import annotations

from typing import Any

from parity.axes import field_axis, field_severity, probe_fields
from parity.findings import Finding
from parity.materialize import Materialized
from parity.plain import config_values, plain
from parity.plan import step_count_cause
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement

make_finding = FindingMaker("schedule")

SCHEDULE_FIELDS = probe_fields("schedule")
FRACTIONS = tuple(i / 200 for i in range(201))
"""Relative positions (0 = first step, 1 = end of training) at which the two decays are compared."""


def sig(x: float) -> float:
    """A learning rate rounded to 6 significant digits (decimal places would erase values near 1e-5)."""
    return float(f"{x:.6g}")


def lr_curve(config: Any, total: int, warmup: int) -> tuple[list[float], float, str | None]:
    """LR in effect at each optimizer step (before the scheduler steps), the LR after the last step, and a note
    when the scheduler's LR depends on eval metrics rather than the step."""
    import torch
    from transformers import get_scheduler

    parameter = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([parameter], lr=config.learning_rate)
    scheduler = get_scheduler(
        config.lr_scheduler_type,
        optimizer=optimizer,
        num_warmup_steps=warmup,
        num_training_steps=total,
        scheduler_specific_kwargs=config.lr_scheduler_kwargs or {},
    )
    metric_driven = isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if not metric_driven:
            scheduler.step()
    note = "LR changes with eval metrics (ReduceLROnPlateau); shown constant" if metric_driven else None
    return lrs, optimizer.param_groups[0]["lr"], note


@measurement("schedule")
def measure(m: Materialized) -> dict[str, Any]:
    """Learning-rate curve, warmup and early stopping at the recipe's world size."""
    plan = m.step_plan()
    config = m.sft_config
    lrs, final, note = lr_curve(config, plan.total_steps, plan.warmup_steps)
    launch = m.recipe.launch
    return {
        "scheduler_type": plain(config.lr_scheduler_type),
        "lr_scheduler_kwargs": plain(config.lr_scheduler_kwargs),
        "learning_rate": config.learning_rate,
        "peak": sig(max(lrs)) if lrs else None,
        "warmup_steps_configured": config.warmup_steps,
        "warmup_steps": plan.warmup_steps,
        "total_steps": plan.total_steps,
        "num_train_epochs": config.num_train_epochs,
        "max_steps": config.max_steps,
        "final_lr": sig(final),
        "lr": [sig(x) for x in lrs],
        "note": note,
        "early_stopping": {
            "patience": launch.early_stopping_patience,
            "threshold": launch.early_stopping_threshold,
        },
        "eval_at": list(plan.eval_at),
    }


def _at(points: list[float], fraction: float) -> float:
    """Linear interpolation of a per-step curve at a relative position (0 = first step, 1 = after the last)."""
    x = fraction * (len(points) - 1)
    i = min(int(x), len(points) - 2)
    return points[i] + (points[i + 1] - points[i]) * (x - i) if len(points) > 1 else points[0]


def aligned_difference(va: dict[str, Any], vb: dict[str, Any]) -> dict[str, Any]:
    """Where the two decays differ at the same relative position after both warmups: max |LR_a - LR_b| and the
    same on peak-normalised curves, with the tolerance below which a difference is step discretisation (the
    largest single-step normalised change after warmup)."""
    curves, tolerance = [], 0.0
    for v in (va, vb):
        points = v["lr"] + [v["final_lr"]]
        peak = v["peak"] or 1.0
        normalised = [p / peak for p in points]
        after = normalised[v["warmup_steps"] :]
        tolerance = max(
            tolerance, max((abs(after[i + 1] - after[i]) for i in range(len(after) - 1)), default=0.0)
        )
        curves.append((points, normalised))
    start = min(1.0, max(v["warmup_steps"] / v["total_steps"] for v in (va, vb)))
    best = {"from_fraction": start, "max_abs_lr_diff": 0.0, "max_normalised_diff": 0.0, "at_fraction": None}
    for f in [start] + [f for f in FRACTIONS if f > start]:
        (pa, na), (pb, nb) = curves
        best["max_abs_lr_diff"] = max(best["max_abs_lr_diff"], abs(_at(pa, f) - _at(pb, f)))
        gap = abs(_at(na, f) - _at(nb, f))
        if gap > best["max_normalised_diff"]:
            best.update(max_normalised_diff=gap, at_fraction=f)
    best["tolerance"] = tolerance
    return {k: round(v, 9) if isinstance(v, float) else v for k, v in best.items()}


EMPTY_MEANS_NONE = {"lr_scheduler_kwargs"}
"""Fields the Trainer reads None and empty alike (transformers.get_scheduler: no scheduler-specific kwargs)."""


def field_findings(a: Materialized, b: Materialized, va: dict, vb: dict) -> list[Finding]:
    ca, cb = config_values(a.sft_config), config_values(b.sft_config)
    findings = []
    for name in SCHEDULE_FIELDS:
        if ca[name] == cb[name] or (name in EMPTY_MEANS_NONE and not ca[name] and not cb[name]):
            continue
        evidence: dict[str, Any] = {
            "peak": [va["peak"], vb["peak"]],
            "total_steps": [va["total_steps"], vb["total_steps"]],
        }
        if name == "warmup_steps":
            evidence["warmup_steps_resolved"] = [va["warmup_steps"], vb["warmup_steps"]]
        findings.append(
            make_finding(
                f"training.{name}",
                field_severity(name),
                ca[name],
                cb[name],
                f"{name}: {a.recipe.name} {ca[name]!r} vs {b.recipe.name} {cb[name]!r}",
                evidence,
                align=field_axis(name),
            )
        )
    return findings


def derived_findings(a: Materialized, b: Materialized, va: dict, vb: dict) -> list[Finding]:
    """Warmup length when only the step count (batch, data) moves it, early stopping, and the decay shape."""
    findings = []
    names = a.recipe.name, b.recipe.name
    same_length = all(va[k] == vb[k] for k in ("warmup_steps_configured", "num_train_epochs", "max_steps"))
    if same_length and va["warmup_steps"] != vb["warmup_steps"]:
        findings.append(
            make_finding(
                "schedule.warmup_steps",
                "medium",
                va["warmup_steps"],
                vb["warmup_steps"],
                f"same warmup setting {va['warmup_steps_configured']!r} gives {va['warmup_steps']} warmup steps of "
                f"{va['total_steps']} ({names[0]}) vs {vb['warmup_steps']} of {vb['total_steps']} ({names[1]})",
                {
                    "total_steps": [va["total_steps"], vb["total_steps"]],
                    "follows_from": "batch.optimizer_steps",
                },
                align=step_count_cause(a.step_plan(), b.step_plan()),
            )
        )
    stop_a, stop_b = va["early_stopping"], vb["early_stopping"]
    if stop_a != stop_b:
        findings.append(
            make_finding(
                "launch.early_stopping_patience",
                "medium",
                stop_a["patience"],
                stop_b["patience"],
                f"early stopping: {names[0]} {_stopping(stop_a)}, {names[1]} {_stopping(stop_b)}; it can act only "
                f"after an evaluation ({names[0]} evaluates {len(va['eval_at'])} time(s), {names[1]} {len(vb['eval_at'])})",
                {
                    "threshold": [stop_a["threshold"], stop_b["threshold"]],
                    "a_eval_at": va["eval_at"],
                    "b_eval_at": vb["eval_at"],
                },
            )
        )
    shape = aligned_difference(va, vb)
    if shape["max_normalised_diff"] > shape["tolerance"]:
        findings.append(
            make_finding(
                "schedule.shape",
                "medium",
                f"{va['scheduler_type']}, warmup {va['warmup_steps']}/{va['total_steps']}",
                f"{vb['scheduler_type']}, warmup {vb['warmup_steps']}/{vb['total_steps']}",
                f"after warmup the LR curves differ at the same relative position by up to {shape['max_normalised_diff']:.1%} "
                f"of peak (at {shape['at_fraction']:.0%} of training; {shape['max_abs_lr_diff']:.3g} absolute)",
                shape,
            )
        )
    return findings


def _stopping(stop: dict[str, Any]) -> str:
    if stop["patience"] is None:
        return "none"
    return f"patience {stop['patience']} evaluations, threshold {stop['threshold']}"


@PROBES.register("schedule")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """LR curves at the selected world size and the differences between them."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    findings = field_findings(a, b, va, vb) + derived_findings(a, b, va, vb)
    return ProbeResult(
        findings=findings, values=plain({"a": va, "b": vb, "aligned": aligned_difference(va, vb)})
    )
