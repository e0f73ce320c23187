"""Probe `loss_norm`: how the per-step loss is reduced under gradient accumulation and data parallelism, and
what that means for the weight of each example's tokens in the first optimizer step of the prepared sample.

For a recipe captured with `--train-step` the reduction is measured, not inferred: the capture ran the trainer's
own first optimizer step on the stand-in model and read each trained token's weight from its logits' gradient
(`loss_step.json`), so what the trainer's loop does in that library version (transformers 4.47.0 drops
num_items_in_batch although the model takes it) is what is reported."""

from __future__ import annotations

import inspect
from functools import cache
from typing import Any

from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement, side_values
from parity.probes.env import installed_instead
from parity.probes.fields import owned_field_findings, owned_values
from parity.textdiff import pair_names
from parity.trl_bridge import IGNORE_INDEX

AXIS = "loss_norm"
make_finding = FindingMaker(AXIS)

REDUCTIONS = {
    "step_token_mean": "token mean over the whole optimizer step (every micro-batch on every device)",
    "device_token_mean": "token mean per device over its micro-batches, then averaged over devices",
    "micro_batch_mean": "token mean per micro-batch, averaged over micro-batches and devices",
    "micro_batch_mean_summed": "token mean per micro-batch, summed over the accumulation steps (not divided by them)",
    "other": "none of the known reductions (see the measured token weights)",
    "unknown": "unknown (the model class, which decides whether the Trainer passes num_items_in_batch, is unknown)",
    "not_measured": "not measured (the capture ran another transformers than the one installed here, and its "
    "trainer step was not captured: capture with --train-step)",
}
UNMEASURED = {"unknown", "not_measured"}
"""Reductions nobody measured: no reduction finding compares them."""
SAME = 1e-3
"""Relative tolerance within which measured token weights count as equal (they are float32 gradients)."""
LOGGED_SCALE_DIFFERS = 0.05
"""Relative difference of the logged-loss factors from which the logged losses are not comparable."""


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


def measured_step(m: Materialized) -> dict[str, Any] | None:
    """The trainer step a capture measured (`--train-step`), None for any other recipe or an unmeasured step."""
    captured = m.captured.captured if m.captured is not None else None
    step = captured.loss_step if captured is not None else None
    return step if step and step.get("measured") else None


def _equal(values: list[float]) -> bool:
    return max(values) <= min(values) * (1 + SAME)


def step_reduction(step: dict[str, Any]) -> dict[str, Any]:
    """The reduction a measured step shows, from its token weights: one weight for every token of the step is a
    token mean over the step (its divisor 1/weight, e.g. the labels counted before the shift); one weight share
    (weight x trained tokens) per micro-batch is a mean per micro-batch, divided by the accumulation steps or not.
    Also the gradient scale (sum of all token weights: 1 for an exact token mean) and the logged-loss factor (the
    loss the trainer logged over the step's token-mean loss)."""
    rows = [row for batch in step["micro_batches"] for row in batch["rows"] if row["trained_tokens"]]
    micro = [
        (sum(r["trained_tokens"] for r in batch["rows"]), batch["rows"][0]["token_weight"])
        for batch in step["micro_batches"]
        if any(r["trained_tokens"] for r in batch["rows"])
    ]
    weights = [row["token_weight"] for row in rows]
    shares = [tokens * weight for tokens, weight in micro]
    accumulation = len(step["micro_batches"])
    if _equal(weights):
        kind = "step_token_mean"
    elif _equal(shares) and abs(sum(shares) - 1) <= SAME:
        kind = "micro_batch_mean"
    elif _equal(shares) and abs(sum(shares) - accumulation) <= SAME * accumulation:
        kind = "micro_batch_mean_summed"
    else:
        kind = "other"
    trained = sum(row["trained_tokens"] for row in rows)
    token_mean_loss = sum(row["trained_tokens"] * row["loss"] for row in rows) / trained
    (short, w_short), (long, w_long) = (
        min((r["trained_tokens"], r["token_weight"]) for r in rows),
        max((r["trained_tokens"], r["token_weight"]) for r in rows),
    )
    passed = [
        batch["num_items_in_batch"] for batch in step["micro_batches"] if batch["num_items_in_batch_passed"]
    ]
    return {
        "reduction": kind,
        "micro_batches": accumulation,
        "num_items_in_batch": passed[0] if passed and len(passed) == accumulation else None,
        "trained_tokens": trained,
        "shortest_longest_trained_tokens": [short, long],
        "shortest_longest_token_weight": [round(w_short, 8), round(w_long, 8)],
        "token_weight_spread": round(max(weights) / min(weights), 4),
        "longest_to_shortest_example_weight": round((long * w_long) / (short * w_short), 4),
        "gradient_scale": round(sum(r["trained_tokens"] * r["token_weight"] for r in rows), 4),
        "logged_loss": step["logged_loss"],
        "logged_loss_factor": round(step["logged_loss"] / token_mean_loss, 4)
        if step["logged_loss"]
        else None,
    }


@measurement(AXIS)
def measure(m: Materialized) -> dict[str, Any]:
    """Reduction, tokens per optimizer step, and the per-token and per-example weights of the first step (measured
    on the trainer's own first step where a capture ran it, else from the model class)."""
    launch = m.launch
    architecture = m.model_facts.architecture
    config = m.sft_config
    step_measured = measured_step(m)
    counts = trained_counts(m.prepared.labels)
    step = counts[: launch.global_batch]
    measured_by = "the model class (transformers.Trainer's introspection in the running transformers)"
    if step_measured is not None:
        measured_by = "the trainer's first optimizer step (capture --train-step)"
        trainer_step = step_reduction(step_measured)
        passes = trainer_step["num_items_in_batch"] is not None
        kind = trainer_step["reduction"]
        spread = trainer_step["token_weight_spread"]
        example_weight = trainer_step["longest_to_shortest_example_weight"]
    else:
        trainer_step = None
        spread = example_weight = None
        elsewhere = installed_instead(m, "transformers")  # a capture that ran another transformers
        if elsewhere:
            passes, kind = None, "not_measured"
            measured_by = f"not measured: the Trainer's introspection would read {elsewhere}"
        else:
            passes = trainer_passes_num_items(architecture)
            kind = reduction(passes, bool(config.average_tokens_across_devices), launch.num_processes)
    if step_measured is None and kind not in UNMEASURED:
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
            "measured_by": measured_by,
            "trainer_step": trainer_step,
            "trained_tokens_per_step": round(mean_trained * launch.global_batch, 3),
            "first_step_rows": len(step),
            "token_weight_spread": spread,
            "longest_to_shortest_example_weight": example_weight,
            "shortest_longest_trained_tokens": [min(trained_rows), max(trained_rows)],
            "fields": owned_values(m, AXIS),
        }
    )


def _step_text(name: str, step: dict[str, Any]) -> str:
    short, long = step["shortest_longest_trained_tokens"]
    w_short, w_long = step["shortest_longest_token_weight"]
    items = step["num_items_in_batch"]
    passed = (
        f"num_items_in_batch {items} reached the loss"
        if items is not None
        else "num_items_in_batch never reached it"
    )
    return f"{name}: a token of the {short}-token row weighs {w_short:.6g}, of the {long}-token row {w_long:.6g} ({passed})"


def _measured_text(names: tuple[str, str], va: dict, vb: dict) -> str:
    """'; measured on each trainer's first optimizer step: ...' where both recipes' steps were measured."""
    steps = (va.get("trainer_step"), vb.get("trainer_step"))
    if None in steps:
        return ""
    return "; measured on each trainer's first optimizer step: " + "; ".join(
        _step_text(name, step) for name, step in zip(names, steps, strict=True)
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
    if va["reduction"] != vb["reduction"] and not UNMEASURED & {va["reduction"], vb["reduction"]}:
        findings.append(
            make_finding(
                "loss_norm.reduction",
                "high",
                va["reduction"],
                vb["reduction"],
                f"loss reduction differs: {names[0]} {va['reduction_text']} (a trained token weighs up to "
                f"{va['token_weight_spread']:g}x another in the first step), {names[1]} {vb['reduction_text']} "
                f"(up to {vb['token_weight_spread']:g}x)" + _measured_text(names, va, vb),
                evidence,
            )
        )
    steps = (va.get("trainer_step"), vb.get("trainer_step"))
    factors = [step["logged_loss_factor"] if step else None for step in steps]
    if None not in factors and abs(factors[0] - factors[1]) > LOGGED_SCALE_DIFFERS * max(factors):
        findings.append(
            make_finding(
                "loss_norm.logged_loss_scale",
                "medium",
                factors[0],
                factors[1],
                f"the logged training loss is {factors[0]:g}x the step's token-mean loss in {names[0]} and "
                f"{factors[1]:g}x in {names[1]}, and the gradient {steps[0]['gradient_scale']:g}x / "
                f"{steps[1]['gradient_scale']:g}x a token mean's (measured on each trainer's first optimizer step): "
                "loss curves logged by the two are not comparable, and gradient clipping sees different norms",
                {"a": steps[0], "b": steps[1]},
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
