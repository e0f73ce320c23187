"""Probe `eos`: the token that ends each prepared completion, against the tokenizer's, the model config's and the
generation config's EOS ids, and whether TRL's collator keeps EOS in the labels when padding uses the same id."""

from __future__ import annotations

from collections import Counter
from typing import Any

from parity.architectures import llama_3_2_1b_config
from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement, side_values
from parity.probes.fields import owned_field_findings, owned_values
from parity.textdiff import pair_names
from parity.trl_bridge import IGNORE_INDEX, Prepared, build_collator

AXIS = "eos"
make_finding = FindingMaker(AXIS)


def stop_ids(m: Materialized) -> dict[str, Any]:
    """EOS ids of the tokenizer, the model config and the generation config of Llama-3.2-1B, after SFTTrainer's
    set-up: an SFTConfig.eos_token replaces the tokenizer's EOS, is mirrored onto the model config and is added in
    front of the generation config's stop ids (trl SFTTrainer.__init__)."""
    from transformers import GenerationConfig

    model_config = llama_3_2_1b_config()
    generation = GenerationConfig.from_model_config(model_config).eos_token_id
    generation_ids = [generation] if isinstance(generation, int) else list(generation or [])
    tokenizer_eos = m.tokenizer.eos_token_id
    model_eos = model_config.eos_token_id
    if m.sft_config.eos_token is not None:
        tokenizer_eos = model_eos = m.tokenizer.convert_tokens_to_ids(m.sft_config.eos_token)
        generation_ids = [tokenizer_eos, *(i for i in generation_ids if i != tokenizer_eos)]
    return {"tokenizer": tokenizer_eos, "model_config": model_eos, "generation": generation_ids}


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
    """End token of the prepared examples, the EOS ids each component uses, and the collator's EOS labels."""
    ids = stop_ids(m)
    prepared = trainer_prepared(m)
    ends = Counter(row[-1] for row in prepared.input_ids if row)
    end_id, end_count = ends.most_common(1)[0] if ends else (ids["tokenizer"], 0)
    examples = sum(ends.values())
    stopping = sum(n for token, n in ends.items() if token in ids["generation"])
    return plain(
        {
            "end_token_id": end_id,
            "end_token": m.tokenizer.convert_ids_to_tokens(end_id),
            "examples_ending_with_it": end_count,
            "examples": examples,
            "ending_with_a_stop_id": stopping,
            "stop_fraction": round(stopping / examples, 6) if examples else 0.0,
            "eos_ids": ids,
            "eos_token": m.tokenizer.convert_ids_to_tokens(ids["tokenizer"]),
            "collator": collator_masked_eos(m, prepared, ids["tokenizer"]),
            "fields": owned_values(m, AXIS),
        }
    )


def _align(a: Materialized, b: Materialized) -> str:
    """The template decides what ends a rendered completion; otherwise the eos/pad settings do."""
    return "template" if a.tokenizer.chat_template != b.tokenizer.chat_template else AXIS


@PROBES.register(AXIS)
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """What ends each recipe's completions, whether generation stops there, and whether EOS keeps its label."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    names = pair_names(a.recipe.name, b.recipe.name)
    align = _align(a, b)
    evidence = side_values(va, vb, ("end_token_id", "examples_ending_with_it", "examples", "eos_ids"))
    findings = []
    if va["end_token"] != vb["end_token"]:
        findings.append(
            make_finding(
                "eos.completion_end",
                "high",
                va["end_token"],
                vb["end_token"],
                f"completions end with {va['end_token']!r} ({va['examples_ending_with_it']} of {va['examples']}) in "
                f"{names[0]} and with {vb['end_token']!r} ({vb['examples_ending_with_it']} of {vb['examples']}) in {names[1]}",
                evidence,
                align=align,
            )
        )
    if va["stop_fraction"] != vb["stop_fraction"]:
        findings.append(
            make_finding(
                "eos.generation_stops",
                "high",
                va["stop_fraction"],
                vb["stop_fraction"],
                f"examples whose last trained token is one generation stops on: {names[0]} {va['ending_with_a_stop_id']} "
                f"of {va['examples']}, {names[1]} {vb['ending_with_a_stop_id']} of {vb['examples']} (stop ids "
                f"{va['eos_ids']['generation']} / {vb['eos_ids']['generation']}): a model never trained to emit a stop "
                "id runs on to the generation limit",
                evidence,
                align=align,
            )
        )
    if va["eos_ids"] != vb["eos_ids"]:
        findings.append(
            make_finding(
                "eos.ids",
                "medium",
                va["eos_ids"],
                vb["eos_ids"],
                f"EOS ids (tokenizer, model config, generation) differ: {names[0]} {va['eos_ids']}, {names[1]} {vb['eos_ids']}",
                evidence,
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
