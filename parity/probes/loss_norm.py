"""Probe `loss_norm`: how the per-step loss is reduced under gradient accumulation and data parallelism, and
what that means for the weight of each example's tokens in the first optimizer step of the prepared sample."""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any

from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement, side_values
from parity.probes.fields import owned_field_findings, owned_values
from parity.textdiff import pair_names
from parity.trl_bridge import IGNORE_INDEX

AXIS = "loss_norm"
make_finding = FindingMaker(AXIS)

REDUCTIONS = {
    "step_token_mean": "token mean over the whole optimizer step (every micro-batch on every device)",
    "device_token_mean": "token mean per device over its micro-batches, then averaged over devices",
    "micro_batch_mean": "token mean per micro-batch, averaged over micro-batches and devices",
    "unknown": "unknown (the model class, which decides whether the Trainer passes num_items_in_batch, is unknown)",
}


@cache
def trainer_passes_num_items(architecture: str | None) -> bool | None:
    """Whether transformers.Trainer passes `num_items_in_batch` to this model class's forward: the Trainer's
    model introspection (an `accepts_loss_kwargs` attribute, else a `**kwargs` in forward) on the class the
    recipe trains (its config.json's architecture; None where it is unknown or not in transformers). Trainer
    unwraps PEFT models before looking, so LoRA does not change the answer."""
    import transformers

    model_class = getattr(transformers, architecture, None) if architecture else None
    if model_class is None:
        return None
    if hasattr(model_class, "accepts_loss_kwargs"):
        return bool(model_class.accepts_loss_kwargs)
    parameters = inspect.signature(model_class.forward).parameters.values()
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def reduction(passes_num_items: bool | None, average_across_devices: bool, processes: int) -> str:
    """The reduction the HF Trainer and TRL's SFTTrainer.compute_loss apply (a key of REDUCTIONS; 'unknown'
    where the model class is unknown)."""
    if passes_num_items is None:
        return "unknown"
    if not passes_num_items:
        return "micro_batch_mean"
    return "step_token_mean" if average_across_devices or processes == 1 else "device_token_mean"


def trained_counts(labels: list[list[int]]) -> list[int]:
    """Loss-carrying predictions per row: labels[1:] != -100 (the Trainer counts shifted labels)."""
    return [len(row) - 1 - row[1:].count(IGNORE_INDEX) if row else 0 for row in labels]


def first_step_weights(
    counts: list[int], kind: str, per_device: int, accumulation: int, processes: int
) -> list[float]:
    """Weight of one trained token of each row of the first optimizer step under `kind`, rows dealt to devices as
    accelerate's sharded sampler deals per-device batches (batch b goes to device b % processes)."""
    groups: dict[tuple[int, int], int] = {}
    keys = []
    for index, count in enumerate(counts):
        batch = index // per_device
        device, micro = batch % processes, batch // processes
        key = (
            (device, micro)
            if kind == "micro_batch_mean"
            else (device, 0)
            if kind == "device_token_mean"
            else (0, 0)
        )
        groups[key] = groups.get(key, 0) + count
        keys.append(key)
    parts = {
        "step_token_mean": 1,
        "device_token_mean": processes,
        "micro_batch_mean": processes * accumulation,
    }[kind]
    return [1.0 / (parts * groups[key]) if groups[key] else 0.0 for key in keys]


@measurement(AXIS)
def measure(m: Materialized) -> dict[str, Any]:
    """Reduction, tokens per optimizer step, and the per-token and per-example weights of the first step."""
    launch = m.launch
    architecture = m.model_facts.architecture
    passes = trainer_passes_num_items(architecture)
    config = m.sft_config
    kind = reduction(passes, bool(config.average_tokens_across_devices), launch.num_processes)
    counts = trained_counts(m.prepared.labels)
    step = counts[: launch.global_batch]
    spread = example_weight = None
    if kind != "unknown":
        weights = first_step_weights(
            step,
            kind,
            launch.per_device_train_batch_size,
            launch.gradient_accumulation_steps,
            launch.num_processes,
        )
        trained = [(c, w) for c, w in zip(step, weights, strict=True) if c] or [(1, 1.0)]
        token_weights = [w for _, w in trained]
        (short, w_short), (long, w_long) = min(trained), max(trained)
        spread = round(max(token_weights) / min(token_weights), 6)
        example_weight = round((long * w_long) / (short * w_short), 6)
    trained_rows = [c for c in step if c] or [1]
    mean_trained = sum(counts) / max(1, len(counts))
    return plain(
        {
            "architecture": architecture,
            "trainer_passes_num_items_in_batch": passes,
            "average_tokens_across_devices": config.average_tokens_across_devices,
            "loss_type": config.loss_type,
            "processes": launch.num_processes,
            "accumulation": launch.gradient_accumulation_steps,
            "per_device": launch.per_device_train_batch_size,
            "reduction": kind,
            "reduction_text": REDUCTIONS[kind],
            "trained_tokens_per_step": round(mean_trained * launch.global_batch, 3),
            "first_step_rows": len(step),
            "token_weight_spread": spread,
            "longest_to_shortest_example_weight": example_weight,
            "shortest_longest_trained_tokens": [min(trained_rows), max(trained_rows)],
            "fields": owned_values(m, AXIS),
        }
    )


def _example_weights(va: dict, vb: dict) -> str:
    weights = [v["longest_to_shortest_example_weight"] for v in (va, vb)]
    if None in weights:
        return ""
    return f"; a longest example weighs {weights[0]:g}x / {weights[1]:g}x a shortest one"


@PROBES.register(AXIS)
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Loss reduction of both recipes at their world size and what it weighs per token and per example."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    names = pair_names(a.recipe.name, b.recipe.name)
    evidence = side_values(
        va,
        vb,
        (
            "trainer_passes_num_items_in_batch",
            "average_tokens_across_devices",
            "processes",
            "accumulation",
            "token_weight_spread",
            "longest_to_shortest_example_weight",
            "shortest_longest_trained_tokens",
        ),
    )
    findings = []
    if va["reduction"] != vb["reduction"] and "unknown" not in (va["reduction"], vb["reduction"]):
        findings.append(
            make_finding(
                "loss_norm.reduction",
                "high",
                va["reduction"],
                vb["reduction"],
                f"loss reduction differs: {names[0]} {va['reduction_text']} (a trained token weighs up to "
                f"{va['token_weight_spread']:g}x another in the first step), {names[1]} {vb['reduction_text']} "
                f"(up to {vb['token_weight_spread']:g}x)",
                evidence,
            )
        )
    if va["trained_tokens_per_step"] != vb["trained_tokens_per_step"]:
        findings.append(
            make_finding(
                "loss_norm.tokens_per_step",
                "info",
                va["trained_tokens_per_step"],
                vb["trained_tokens_per_step"],
                f"the step loss averages over about {va['trained_tokens_per_step']:,.0f} trained tokens in {names[0]} "
                f"and {vb['trained_tokens_per_step']:,.0f} in {names[1]}: one trained token weighs "
                f"{vb['trained_tokens_per_step'] / va['trained_tokens_per_step']:.2f}x as much in {names[0]}"
                + _example_weights(va, vb),
                evidence,
                align=None,
            )
        )
    findings += owned_field_findings(make_finding, names, va["fields"], vb["fields"])
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
