"""Probe `eos`: the end-of-turn token of each prepared example (the last stop id inside its trained span) and the
tokens that carry loss after it, against the tokenizer's, the model config's and the generation config's stop ids,
and whether TRL's collator keeps EOS in the labels when padding uses the same id."""

from __future__ import annotations

from collections import Counter
from typing import Any

from parity.capture.tokenized import unpadded
from parity.materialize import Materialized
from parity.models import base_model, id_list, same_base_model
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement, side_values
from parity.probes.fields import owned_field_findings, owned_values
from parity.textdiff import pair_names
from parity.trl_bridge import IGNORE_INDEX, Prepared, build_collator

AXIS = "eos"
make_finding = FindingMaker(AXIS)


def stop_ids(m: Materialized) -> dict[str, Any]:
    """EOS ids of the tokenizer, the model config and the generation config (every stop id; None where the model's
    files are unknown), after SFTTrainer's set-up: an SFTConfig.eos_token replaces the tokenizer's EOS, is
    mirrored onto the model config and is added in front of the generation config's stop ids (trl
    SFTTrainer.__init__)."""
    facts = m.model_facts
    generation = facts.stop_ids
    tokenizer_eos = m.tokenizer.eos_token_id
    model_eos = facts.eos_token_id
    if m.sft_config.eos_token is not None:
        tokenizer_eos = model_eos = m.tokenizer.convert_tokens_to_ids(m.sft_config.eos_token)
        if generation is not None:
            generation = [tokenizer_eos, *(i for i in generation if i != tokenizer_eos)]
    return {"tokenizer": tokenizer_eos, "model_config": model_eos, "generation": generation}


def end_of_turn_ids(m: Materialized) -> set[int]:
    """The ids that end a turn for this recipe: the tokenizer's EOS (after SFTConfig.eos_token), the model config's
    and every stop id of the generation config, as the `eos` probe reads them."""
    ids = stop_ids(m)
    found = {*(ids["generation"] or []), *id_list(ids["model_config"])}
    return found | ({ids["tokenizer"]} if ids["tokenizer"] is not None else set())


def content_end(ids: list[int], pad_id: int | None) -> int:
    """Length of the example without trailing padding: a trailing run of the pad id counts once (where pad ==
    EOS the first of the run is the example's own EOS; the rest are padding, never content)."""
    end = len(ids)
    while pad_id is not None and end >= 2 and ids[end - 1] == pad_id and ids[end - 2] == pad_id:
        end -= 1
    return end


def last_stop(
    ids: list[int], labels: list[int], stops: set[int], pad_id: int | None
) -> tuple[int | None, list[int]]:
    """The last stop id inside the trained span (labels != -100) and the trained ids after it (None, []: no stop
    id is trained)."""
    trained = [
        t for t, label in zip(ids[: content_end(ids, pad_id)], labels, strict=False) if label != IGNORE_INDEX
    ]
    for index in range(len(trained) - 1, -1, -1):
        if trained[index] in stops:
            return trained[index], trained[index + 1 :]
    return None, []


def end_of_turn(m: Materialized, prepared: Prepared, ids: dict[str, Any]) -> dict[str, Any]:
    """Per example, the last stop id trained and what carries loss after it; summarised over the sample."""
    stops = {*(ids["generation"] or []), *id_list(ids["model_config"])}
    if ids["tokenizer"] is not None:
        stops.add(ids["tokenizer"])
    pad_id = m.tokenizer.pad_token_id
    found = [
        last_stop(row, labels, stops, pad_id)
        for row, labels in zip(prepared.input_ids, prepared.labels, strict=True)
    ]
    ends = Counter(stop for stop, _ in found if stop is not None)
    end_id, end_count = ends.most_common(1)[0] if ends else (None, 0)
    trailing = Counter(tuple(after) for stop, after in found if stop is not None)
    trailing_ids, _ = trailing.most_common(1)[0] if trailing else ((), 0)
    generation = ids["generation"]
    stopping = sum(n for token, n in ends.items() if token in generation) if generation is not None else None
    examples = len(found)
    max_length = None if m.sft_config.packing else m.sft_config.max_length
    cut = sum(
        1
        for (stop, _), row in zip(found, prepared.input_ids, strict=True)
        if stop is None and max_length is not None and len(row) >= max_length
    )
    return {
        "end_token_id": end_id,
        "end_token": m.tokenizer.convert_ids_to_tokens(end_id) if end_id is not None else None,
        "examples_ending_with_it": end_count,
        "examples": examples,
        "examples_without_stop": examples - sum(ends.values()),
        "examples_without_stop_at_max_length": cut,
        "trailing_ids": list(trailing_ids),
        "trailing_tokens": m.tokenizer.convert_ids_to_tokens(list(trailing_ids)),
        "examples_with_trailing": sum(1 for stop, after in found if stop is not None and after),
        "ending_with_a_stop_id": stopping,
        "stop_fraction": (round(stopping / examples, 6) if examples else 0.0)
        if stopping is not None
        else None,
    }


def collator_masked_eos(m: Materialized, prepared: Prepared, eos: int) -> dict[str, int]:
    """EOS positions that carry loss in the prepared labels, and how many of them TRL's collator sets to -100 when
    it pads the sample's first per-device batch (the pad == eos trap of collators that mask by token id)."""
    collator = build_collator(m.tokenizer, m.sft_config)
    rows = min(m.launch.per_device_train_batch_size, len(prepared))
    examples = [{"input_ids": prepared.input_ids[i], "labels": prepared.labels[i]} for i in range(rows)]
    batch = collator(examples)
    trained_eos = sum(
        1
        for e in examples
        for t, lab in zip(e["input_ids"], e["labels"], strict=True)
        if t == eos and lab != IGNORE_INDEX
    )
    collated = batch["labels"][batch["input_ids"] == eos]
    # padding positions hold pad ids; when pad == eos they are counted as EOS with label -100 and must not count
    pads = int((batch["input_ids"] == eos).sum()) - sum(e["input_ids"].count(eos) for e in examples)
    masked = trained_eos - int((collated != IGNORE_INDEX).sum())
    return {
        "pad_token_id": collator.pad_token_id,
        "trained_eos": trained_eos,
        "masked_by_collator": masked,
        "pad_positions": pads,
    }


def captured_collator_eos(m: Materialized, eos: int) -> dict[str, Any] | None:
    """For a recipe whose trainer was handed token ids: the same counts read from its capture's first collated
    batches (its own collator's labels) against its prepared labels; None for any other recipe, or a capture
    without batches or prepared labels."""
    lookup = m.captured
    if lookup is None or not lookup.pre_tokenized:
        return None
    captured = lookup.captured
    prepared = captured.prepared.get("train")
    batch_size = m.launch.per_device_train_batch_size
    rows = [row for row in captured.batches if row["batch"] == 0]
    if prepared is None or prepared.labels is None or not rows:
        return None
    trained = masked = 0
    for row in rows:
        index = row["batch"] * batch_size + row["position"]
        ids, labels = unpadded(row["input_ids"], row["labels"], row.get("attention_mask"))
        before = prepared.labels[index]
        for token, label, prepared_label in zip(ids, labels or [], before, strict=False):
            if token == eos and prepared_label != IGNORE_INDEX:
                trained += 1
                masked += label == IGNORE_INDEX
    return {
        "pad_token_id": captured.collator.get("settings", {}).get("pad_token_id", m.tokenizer.pad_token_id),
        "trained_eos": trained,
        "masked_by_collator": masked,
        "pad_positions": sum(len(row["attention_mask"]) - sum(row["attention_mask"]) for row in rows),
        "from": "the capture's collated batch 0 (the recipe's own collator) against its prepared labels",
    }


def trainer_prepared(m: Materialized) -> Prepared:
    """The sample as SFTTrainer prepares it: SFTTrainer sets SFTConfig.eos_token on the tokenizer
    before tokenizing, so a recipe that sets it is re-prepared by TRL with a tokenizer copy that has it."""
    if m.sft_config.eos_token is None:
        return m.examples
    import copy

    from parity.trl_bridge import before_packing, prepare_rows

    backend = getattr(m.tokenizer, "backend_tokenizer", None)
    tokenizer = copy.deepcopy(m.tokenizer, {id(backend): backend} if backend is not None else {})
    tokenizer.eos_token = m.sft_config.eos_token
    config = before_packing(m.sft_config) if m.sft_config.packing else m.sft_config
    return prepare_rows(m.sample_rows, tokenizer, config, "eos")


@measurement(AXIS)
def measure(m: Materialized) -> dict[str, Any]:
    """End-of-turn token of the prepared examples, what trains after it, the stop ids each component uses, and
    the collator's EOS labels."""
    ids = stop_ids(m)
    prepared = trainer_prepared(m)
    return plain(
        {
            **end_of_turn(m, prepared, ids),
            "eos_ids": ids,
            "eos_token": m.tokenizer.convert_ids_to_tokens(ids["tokenizer"]),
            "collator": captured_collator_eos(m, ids["tokenizer"])
            or collator_masked_eos(m, prepared, ids["tokenizer"]),
            "fields": owned_values(m, AXIS),
        }
    )


def _align(a: Materialized, b: Materialized) -> str:
    """The base model (and its tokenizer) decides the stop ids, the template what ends a rendered completion;
    otherwise the eos/pad settings do."""
    if not same_base_model(base_model(a.recipe), base_model(b.recipe)):
        return "model"
    return "template" if a.tokenizer.chat_template != b.tokenizer.chat_template else AXIS


def known_differences(xa: dict[str, Any], xb: dict[str, Any]) -> list[str]:
    """Keys whose values are known on both sides and differ (an unknown id is no difference)."""
    return [k for k in xa if xa[k] is not None and xb.get(k) is not None and xa[k] != xb[k]]


TRUNCATION_NOTE = (
    " (explained by truncation at max_length, which cuts the stop id off: padding.eos_cut reports it)"
)


def cut_by_truncation(va: dict[str, Any], vb: dict[str, Any]) -> bool:
    """Whether every example without a trained stop id, on either side, reached its max_length (the stop id was cut
    off by truncation, which the `padding` probe reports), and some example did."""
    sides = (va, vb)
    return any(v["examples_without_stop_at_max_length"] for v in sides) and all(
        v["examples_without_stop"] == v["examples_without_stop_at_max_length"] for v in sides
    )


def _end_text(v: dict[str, Any]) -> str:
    if v["end_token"] is None:
        return f"no stop id in the trained tokens ({v['examples_without_stop']} of {v['examples']})"
    trailing = f", then {v['trailing_tokens']} with loss" if v["trailing_tokens"] else ""
    return f"{v['end_token']!r} ({v['examples_ending_with_it']} of {v['examples']}){trailing}"


@PROBES.register(AXIS)
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """What ends each recipe's completions, whether generation stops there, and whether EOS keeps its label."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    names = pair_names(a.recipe.name, b.recipe.name)
    align = _align(a, b)
    evidence = side_values(
        va, vb, ("end_token_id", "examples_ending_with_it", "examples", "trailing_tokens", "eos_ids")
    )
    findings = []
    cut = cut_by_truncation(va, vb)
    severity, why = ("info", TRUNCATION_NOTE) if cut else ("high", "")
    stops_align = "tokens" if cut else align
    if va["end_token"] != vb["end_token"]:
        findings.append(
            make_finding(
                "eos.completion_end",
                severity,
                va["end_token"],
                vb["end_token"],
                f"the last stop id trained in each example (its end of turn): {names[0]} {_end_text(va)}; "
                f"{names[1]} {_end_text(vb)}{why}",
                evidence,
                align=stops_align,
            )
        )
    elif va["trailing_tokens"] != vb["trailing_tokens"]:
        findings.append(
            make_finding(
                "eos.trailing",
                "low",
                va["trailing_tokens"],
                vb["trailing_tokens"],
                f"tokens that carry loss after the end-of-turn token {va['end_token']!r}: {names[0]} "
                f"{va['trailing_tokens'] or 'none'} ({va['examples_with_trailing']} of {va['examples']}), {names[1]} "
                f"{vb['trailing_tokens'] or 'none'} ({vb['examples_with_trailing']} of {vb['examples']})",
                evidence,
                align=align,
            )
        )
    fractions = (va["stop_fraction"], vb["stop_fraction"])
    if None not in fractions and fractions[0] != fractions[1]:
        findings.append(
            make_finding(
                "eos.generation_stops",
                severity,
                va["stop_fraction"],
                vb["stop_fraction"],
                f"examples whose last trained stop id is one generation stops on: {names[0]} "
                f"{va['ending_with_a_stop_id']} of {va['examples']}, {names[1]} {vb['ending_with_a_stop_id']} of "
                f"{vb['examples']} (stop ids {va['eos_ids']['generation']} / {vb['eos_ids']['generation']}): a model "
                f"never trained to emit a stop id runs on to the generation limit{why}",
                evidence,
                align=stops_align,
            )
        )
    differing = known_differences(va["eos_ids"], vb["eos_ids"])
    if differing:
        findings.append(
            make_finding(
                "eos.ids",
                "medium",
                va["eos_ids"],
                vb["eos_ids"],
                f"EOS ids (tokenizer, model config, generation) differ in {', '.join(differing)}: {names[0]} "
                f"{va['eos_ids']}, {names[1]} {vb['eos_ids']}",
                evidence,
                align="model" if align == "model" else AXIS,
            )
        )
    masked_a, masked_b = va["collator"]["masked_by_collator"], vb["collator"]["masked_by_collator"]
    if masked_a != masked_b:
        findings.append(
            make_finding(
                "eos.masked_by_collator",
                "high",
                masked_a,
                masked_b,
                f"the collator removes the loss of {masked_a} / {masked_b} trained EOS tokens in the first batch "
                f"({names[0]} / {names[1]}; pad id {va['collator']['pad_token_id']} / {vb['collator']['pad_token_id']})",
                {"a": va["collator"], "b": vb["collator"]},
            )
        )
    findings += owned_field_findings(make_finding, names, va["fields"], vb["fields"])
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
