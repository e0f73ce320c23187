"""Batch probe: effective global batch, optimizer steps, warmup and eval/save cadence per recipe and world size,
from the launch rules and the HF Trainer's own step arithmetic (parity.plan), plus tokens per optimizer step."""

from __future__ import annotations

import dataclasses
from typing import Any

from parity.findings import Finding
from parity.materialize import Materialized
from parity.plain import plain
from parity.plan import StepPlan, step_count_cause, table_world_sizes
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.trl_bridge import IGNORE_INDEX

make_finding = FindingMaker("batch")

VERB = {"eval": "evaluates", "save": "saves"}


def token_counts(m: Materialized) -> dict[str, Any]:
    """Mean tokens and loss-carrying tokens (labels != -100) per example over the tokenized sample."""
    all_labels = m.prepared.labels
    n = len(all_labels)
    tokens = sum(map(len, all_labels))
    trained = tokens - sum(labels.count(IGNORE_INDEX) for labels in all_labels)
    return {
        "examples": n,
        "mean_tokens": round(tokens / n, 6) if n else None,
        "mean_trained_tokens": round(trained / n, 6) if n else None,
    }


@measurement("batch")
def measure(m: Materialized) -> dict[str, Any]:
    """Step plan at the recipe's world size and tokens per optimizer step."""
    plan = m.step_plan()
    tokens = token_counts(m)
    per_step = {
        "tokens_per_step": round(tokens["mean_tokens"] * plan.global_batch, 6)
        if tokens["examples"]
        else None,
        "trained_tokens_per_step": round(tokens["mean_trained_tokens"] * plan.global_batch, 6)
        if tokens["examples"]
        else None,
    }
    config = m.sft_config
    return plain(
        {
            **dataclasses.asdict(plan),
            "eval_strategy": config.eval_strategy,
            "save_strategy": config.save_strategy,
            "launch_rule": m.launch.rule,
            "packing": config.packing,
            "tokens": tokens,
            **per_step,
        }
    )


def _shape(plan: StepPlan) -> str:
    return f"{plan.per_device} x {plan.accumulation} x {plan.processes}"


def _cadence(m: Materialized, plan: StepPlan, kind: str) -> tuple[str, int | None]:
    strategy = str(plain(getattr(m.sft_config, f"{kind}_strategy")))
    return strategy, getattr(plan, f"{kind}_steps") if strategy == "steps" else None


def _interval(strategy: str, steps: int | None) -> str:
    return f"{steps} steps" if steps is not None else f"'{strategy}'"


def _findings(a: Materialized, b: Materialized, pa: StepPlan, pb: StepPlan) -> list[Finding]:
    names = a.recipe.name, b.recipe.name
    composition = {
        "per_device_train_batch_size": [pa.per_device, pb.per_device],
        "gradient_accumulation_steps": [pa.accumulation, pb.accumulation],
        "num_processes": [pa.processes, pb.processes],
        "a_rule": a.launch.rule,
        "b_rule": b.launch.rule,
        "world_size": pa.world_size,
    }
    findings = []
    if pa.global_batch != pb.global_batch:
        findings.append(
            make_finding(
                "batch.global_batch",
                "high",
                pa.global_batch,
                pb.global_batch,
                f"examples per optimizer step: {names[0]} {pa.global_batch} ({_shape(pa)}) vs {names[1]} "
                f"{pb.global_batch} ({_shape(pb)}) at world size {pa.world_size} (per-device x accumulation x processes)",
                composition,
            )
        )
    elif (pa.per_device, pa.accumulation, pa.processes) != (pb.per_device, pb.accumulation, pb.processes):
        findings.append(
            make_finding(
                "batch.composition",
                "low",
                _shape(pa),
                _shape(pb),
                f"same global batch {pa.global_batch}, split differently: {_shape(pa)} vs {_shape(pb)}",
                composition,
            )
        )
    if pa.total_steps != pb.total_steps:
        findings.append(
            make_finding(
                "batch.optimizer_steps",
                "medium",
                pa.total_steps,
                pb.total_steps,
                f"optimizer steps: {names[0]} {pa.total_steps} ({pa.steps_per_epoch}/epoch x {pa.epochs}) vs {names[1]} "
                f"{pb.total_steps} ({pb.steps_per_epoch}/epoch x {pb.epochs})",
                {
                    "rows": [pa.rows, pb.rows],
                    "global_batch": [pa.global_batch, pb.global_batch],
                    "batches_per_epoch": [pa.batches_per_epoch, pb.batches_per_epoch],
                    "steps_per_epoch": [pa.steps_per_epoch, pb.steps_per_epoch],
                    "epochs": [pa.epochs, pb.epochs],
                },
                align=step_count_cause(pa, pb),
            )
        )
    for kind in ("eval", "save"):
        (sa, xa), (sb, xb) = _cadence(a, pa, kind), _cadence(b, pb, kind)
        if (sa, xa) == (sb, xb):
            continue
        at_a, at_b = getattr(pa, f"{kind}_at"), getattr(pb, f"{kind}_at")
        findings.append(
            make_finding(
                f"batch.{kind}_steps",
                "medium",
                xa,
                xb,
                f"{kind} interval {_interval(sa, xa)} vs {_interval(sb, xb)}: {names[0]} {VERB[kind]} {len(at_a)} time(s) in "
                f"{pa.total_steps} steps, {names[1]} {len(at_b)} time(s) in {pb.total_steps}",
                {
                    f"{kind}_strategy": [sa, sb],
                    f"{kind}_steps_configured": [
                        plain(getattr(a.sft_config, f"{kind}_steps")),
                        plain(getattr(b.sft_config, f"{kind}_steps")),
                    ],
                    "a_at": list(at_a),
                    "b_at": list(at_b),
                },
                align="eval"
                if (sa, getattr(a.sft_config, f"{kind}_steps"))
                != (sb, getattr(b.sft_config, f"{kind}_steps"))
                else step_count_cause(pa, pb),
            )
        )
    return findings


@PROBES.register("batch")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Global batch and step plan at the selected world size, and the global batch over ctx.world_sizes."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    pa, pb = a.step_plan(), b.step_plan()
    rows = []
    for n in table_world_sizes(a.world_size, ctx.world_sizes):
        ra, rb = a.step_plan(n), b.step_plan(n)
        rows.append(
            {
                "world_size": n,
                **{
                    f"{side}_{name}": getattr(plan, name)
                    for side, plan in (("a", ra), ("b", rb))
                    for name in (
                        "global_batch",
                        "per_device",
                        "accumulation",
                        "processes",
                        "total_steps",
                        "warmup_steps",
                    )
                },
            }
        )
    values = {"a": va, "b": vb, "by_world_size": rows}
    return ProbeResult(findings=_findings(a, b, pa, pb), values=plain(values))
