"""Probe `padding`: where TRL's collator pads a batch, and what max_length truncation costs on the sample: tokens
and trained tokens lost, examples dropped, and completions whose last trained EOS is cut off (they never learn to
stop; ChatML's `<|im_end|>` counts although a newline follows it)."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement, side_values
from parity.probes.env import installed_instead
from parity.probes.eos import end_of_turn_ids
from parity.probes.fields import owned_field_findings, owned_values
from parity.spec import NOT_APPLICABLE
from parity.textdiff import pair_names
from parity.trl_bridge import IGNORE_INDEX, Prepared, build_collator

AXIS = "padding"
make_finding = FindingMaker(AXIS)


def collated_padding_side(m: Materialized) -> str:
    """'left', 'right' or 'none': where TRL's collator puts the padding of the sample's shortest example when
    batched with its longest ('none': padding-free collation, or every example has the same length)."""
    ids = m.prepared.input_ids
    shortest = min(range(len(ids)), key=lambda i: len(ids[i]))
    longest = max(range(len(ids)), key=lambda i: len(ids[i]))
    collator = build_collator(m.tokenizer, m.sft_config)
    if collator.padding_free or len(ids[shortest]) == len(ids[longest]):
        return "none"
    rows = [{"input_ids": ids[i], "labels": m.prepared.labels[i]} for i in (shortest, longest)]
    mask = collator(rows)["attention_mask"][0].tolist()
    return "right" if mask[0] == 1 else "left"


def captured_padding_side(m: Materialized) -> str | None:
    """For a captured recipe: where its trainer's own collator padded the capture's collated batches ('none': no
    batch row is padded); None for any other recipe, or a capture whose batches hold no attention mask (then TRL's
    collator is built here)."""
    if m.captured is None:
        return None
    rows = [row for row in m.captured.captured.batches if row.get("attention_mask") is not None]
    if not rows and not m.captured.pre_tokenized:
        return None
    masks = [row["attention_mask"] for row in rows if 0 in row["attention_mask"]]
    if not masks:
        return "none"
    return "left" if masks[0][0] == 0 else "right"


def captured_truncation(m: Materialized) -> dict[str, Any]:
    """Truncation of token ids a framework built (it cut or dropped them itself; the capture holds no untruncated
    form, so tokens lost are unknown): examples that reached max_length, those of them whose trained tokens hold no
    EOS, and loaded rows no train example was built from."""
    max_length, eos = m.sft_config.max_length, m.tokenizer.eos_token_id
    prepared = m.prepared
    reached = [
        i for i, ids in enumerate(prepared.input_ids) if max_length is not None and len(ids) >= max_length
    ]
    cut = [
        i
        for i in reached
        if not any(
            t == eos and label != IGNORE_INDEX
            for t, label in zip(prepared.input_ids[i], prepared.labels[i], strict=True)
        )
    ]
    return {
        "examples": len(prepared),
        "examples_truncated": len(reached),
        "examples_dropped": m.captured.token_rows.dropped if m.captured and m.captured.token_rows else None,
        "tokens_lost": None,
        "trained_tokens_lost": None,
        "trained_fraction_lost": None,
        "eos_cut": len(cut),
        "examples_ending_with_eos": None,
        "measured_on": "the recipe's own token ids: examples that reached max_length (their untruncated form is not "
        "captured); dropped: loaded rows no train example was built from",
    }


def untruncated(m: Materialized) -> Prepared:
    """The sample as TRL prepares it with max_length=None (m.prepared itself when nothing reached max_length)."""
    from parity.trl_bridge import prepare_rows

    max_length = m.sft_config.max_length
    prepared = m.prepared
    if max_length is None or (
        len(prepared) == len(m.sample_rows) and max(map(len, prepared.input_ids)) < max_length
    ):
        return prepared
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = dataclasses.replace(m.sft_config, max_length=None)
    return prepare_rows(m.sample_rows, m.tokenizer, config, "untruncated")


def _totals(prepared: Prepared) -> dict[str, int]:
    return {
        "rows": len(prepared),
        "tokens": sum(map(len, prepared.input_ids)),
        "trained_tokens": sum(len(x) - x.count(IGNORE_INDEX) for x in prepared.labels),
    }


def last_trained_stop(ids: list[int], labels: list[int], stops: set[int]) -> int | None:
    """Position of the last stop id that carries loss (None: none), e.g. ChatML's `<|im_end|>` before the trailing
    newline."""
    for index in range(len(ids) - 1, -1, -1):
        if ids[index] in stops and labels[index] != IGNORE_INDEX:
            return index
    return None


def eos_cut(kept: Prepared, whole: Prepared, stops: set[int]) -> tuple[int, int]:
    """(examples whose last trained stop id truncation removes, examples with a trained stop id before truncation).
    Each untruncated example is paired with the truncated one it became (its prefix under keep_start, its suffix
    under keep_end); an example TRL dropped after truncation has lost its end of turn too. The last one counts: a
    multi-turn or full-sequence example that keeps an earlier turn's end still loses the end of its answer."""
    cut = with_eos = 0
    position = 0
    for ids, labels in zip(whole.input_ids, whole.labels, strict=True):
        last = last_trained_stop(ids, labels, stops)
        kept_length = None
        if position < len(kept):
            candidate = kept.input_ids[position]
            if ids[: len(candidate)] == candidate:
                kept_length, position = len(candidate), position + 1
            elif ids[len(ids) - len(candidate) :] == candidate:
                kept_length, position = len(ids), position + 1  # the end is kept
        if last is None:
            continue
        with_eos += 1
        cut += kept_length is None or last >= kept_length
    return cut, with_eos


@measurement(AXIS)
def measure(m: Materialized) -> dict[str, Any]:
    """Collated padding side, the tokenizer's sides, and truncation losses over the sample."""
    config = m.sft_config
    captured_side = captured_padding_side(m)
    values: dict[str, Any] = {
        "collated_padding_side": captured_side or collated_padding_side(m),
        "tokenizer_padding_side": m.tokenizer.padding_side,
        "tokenizer_truncation_side": m.tokenizer.truncation_side,
        "max_length": config.max_length,
        "truncation_mode": NOT_APPLICABLE
        if m.recipe.provenance.get("training.truncation_mode", "").startswith(NOT_APPLICABLE)
        else config.truncation_mode,
        "fields": owned_values(m, AXIS),
        "truncation": None,
    }
    if config.packing:
        return plain(values)  # packing chunks sequences instead of truncating them (see the packing probe)
    if m.captured is not None and m.captured.pre_tokenized:
        values["truncation"] = captured_truncation(m)
        return plain(values)
    whole = untruncated(m)
    kept, full = _totals(m.prepared), _totals(whole)
    cut, with_eos = eos_cut(m.prepared, whole, end_of_turn_ids(m))
    values["truncation"] = {
        "examples": full["rows"],
        "examples_truncated": sum(
            1 for ids in whole.input_ids if config.max_length is not None and len(ids) > config.max_length
        ),
        "examples_dropped": full["rows"] - kept["rows"],
        "tokens_lost": full["tokens"] - kept["tokens"],
        "trained_tokens_lost": full["trained_tokens"] - kept["trained_tokens"],
        "trained_fraction_lost": round(1 - kept["trained_tokens"] / full["trained_tokens"], 6)
        if full["trained_tokens"]
        else 0.0,
        "eos_cut": cut,
        "examples_ending_with_eos": with_eos,
    }
    stood_in = installed_instead(m, "trl") if whole is not m.prepared else None
    if stood_in:  # the untruncated form was prepared by the installed TRL, not the one the capture ran
        values["truncation"]["untruncated_by"] = stood_in
    return plain(values)


def _limit(v: dict[str, Any]) -> str:
    """'keep_start, max_length 1024' (the truncation mode left out where the recipe's arguments have none)."""
    mode = v["truncation_mode"]
    return (
        f"max_length {v['max_length']}" if mode == NOT_APPLICABLE else f"{mode}, max_length {v['max_length']}"
    )


def prepared_elsewhere(names: tuple[str, str], va: dict, vb: dict) -> str:
    """'; untruncated lengths of B prepared by the installed trl X (the capture ran Y)' for each side whose
    measurement holds an `untruncated_by` (its untruncated form was prepared by another TRL than its own)."""
    notes = [
        f"untruncated lengths of {name} prepared by {v['untruncated_by']}"
        for name, v in zip(names, (va, vb), strict=True)
        if v.get("untruncated_by")
    ]
    return "".join(f"; {note}" for note in notes)


def _align(a: Materialized, b: Materialized) -> str:
    """Truncation losses come from max_length (tokens axis) or from the truncation mode (this axis)."""
    return "tokens" if a.sft_config.max_length != b.sft_config.max_length else AXIS


@PROBES.register(AXIS)
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Padding side of collated batches and truncation losses of both recipes."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    names = pair_names(a.recipe.name, b.recipe.name)
    findings = []
    # 'none' pads nothing (padding-free or equal lengths): no side to differ on; the packing probe reports it
    sides = {va["collated_padding_side"], vb["collated_padding_side"]}
    if len(sides) == 2 and "none" not in sides:
        findings.append(
            make_finding(
                "padding.side",
                "medium",
                va["collated_padding_side"],
                vb["collated_padding_side"],
                f"training batches are padded on the {va['collated_padding_side']} in {names[0]} and on the "
                f"{vb['collated_padding_side']} in {names[1]}",
                side_values(va, vb, ("collated_padding_side", "tokenizer_padding_side")),
            )
        )
    ta, tb = va["truncation"] or {}, vb["truncation"] or {}
    evidence = {
        "a": ta,
        "b": tb,
        "max_length": [va["max_length"], vb["max_length"]],
        "truncation_mode": [va["truncation_mode"], vb["truncation_mode"]],
    }
    if ta.get("eos_cut", 0) != tb.get("eos_cut", 0):
        findings.append(
            make_finding(
                "padding.eos_cut",
                "high",
                ta.get("eos_cut", 0),
                tb.get("eos_cut", 0),
                f"truncation cuts the end-of-turn stop id off {ta.get('eos_cut', 0)} of {ta.get('examples', 0)} "
                f"examples in {names[0]} ({_limit(va)}) and {tb.get('eos_cut', 0)} of "
                f"{tb.get('examples', 0)} in {names[1]} ({_limit(vb)}): "
                "those completions never show the model where to stop" + prepared_elsewhere(names, ta, tb),
                evidence,
                align=_align(a, b),
            )
        )
    lost = (ta.get("trained_tokens_lost", 0), tb.get("trained_tokens_lost", 0))
    if None in lost and ta.get("examples_dropped", 0) != tb.get("examples_dropped", 0):
        findings.append(
            make_finding(
                "padding.examples_dropped",
                "medium",
                ta.get("examples_dropped", 0),
                tb.get("examples_dropped", 0),
                f"rows left out of training: {ta.get('examples_dropped', 0)} in {names[0]} (max_length "
                f"{va['max_length']}) and {tb.get('examples_dropped', 0)} in {names[1]} (max_length {vb['max_length']}) "
                "(loaded rows no train example was built from: a framework that drops over-long rows instead of "
                "truncating them)",
                evidence,
                align=_align(a, b),
            )
        )
    if None not in lost and lost[0] != lost[1]:
        findings.append(
            make_finding(
                "padding.trained_tokens_lost",
                "medium",
                ta.get("trained_tokens_lost", 0),
                tb.get("trained_tokens_lost", 0),
                f"truncation removes {ta.get('trained_tokens_lost', 0)} trained tokens "
                f"({ta.get('trained_fraction_lost', 0.0):.2%}) in {names[0]} and {tb.get('trained_tokens_lost', 0)} "
                f"({tb.get('trained_fraction_lost', 0.0):.2%}) in {names[1]}; examples dropped as fully masked: "
                f"{ta.get('examples_dropped', 0)} / {tb.get('examples_dropped', 0)}"
                + prepared_elsewhere(names, ta, tb),
                evidence,
                align=_align(a, b),
            )
        )
    findings += owned_field_findings(make_finding, names, va["fields"], vb["fields"])
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
