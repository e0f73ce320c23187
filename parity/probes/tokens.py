"""Probe `tokens`: the same raw example tokenized by both pipelines, aligned token by token, and length statistics.
Counts the examples each recipe's max_length truncates, measured on the untruncated TRL tokenization. A token
difference that another axis explains (model, template, prompt, data, truncation) is `info`, that axis reports it;
one nothing else explains (the tokenization itself) is `high`."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from parity.axes import field_axis, field_severity
from parity.data.conversation import trl_conversation
from parity.findings import Finding
from parity.materialize import Materialized
from parity.models import same_id
from parity.plain import plain
from parity.probes import (
    PROBES,
    FindingMaker,
    ProbeContext,
    ProbeResult,
    compare_on_example,
    measurement,
    recipes_lacking_the_row,
)
from parity.probes.env import installed_instead
from parity.probes.padding import prepared_elsewhere
from parity.textdiff import first_difference, pair_names, token_alignment

AXIS = "tokens"
make_finding = FindingMaker(AXIS)


def length_stats(lengths: list[int]) -> dict[str, Any]:
    """Count, mean, p50, p95 and max of sequence lengths (numpy 'linear' percentiles, rounded to 3)."""
    if not lengths:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0}
    arr = np.asarray(lengths, dtype=float)
    p50, p95 = np.percentile(arr, [50, 95], method="linear")
    return {
        "count": len(lengths),
        "mean": round(float(arr.mean()), 3),
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "max": int(arr.max()),
    }


def reprepared(m: Materialized) -> bool:
    """Whether the untruncated lengths must be prepared here (some example reached max_length, or a row was dropped
    or packed) rather than read off the recipe's own examples (never for token ids a framework cut itself: their
    untruncated form is not captured)."""
    lengths = [len(ids) for ids in m.prepared.input_ids]
    max_length = m.sft_config.max_length
    if pre_tokenized(m):
        return False
    return bool(
        m.sft_config.packing
        or len(lengths) != len(m.sample_rows)
        or (max_length is not None and max(lengths, default=0) >= max_length)
    )


def untruncated_lengths(m: Materialized, reprepare: bool) -> list[int]:
    """Lengths TRL produces for the sampled train rows with max_length=None (no truncation, no packing): the
    recipe's own example lengths unless `reprepare` (`reprepared(m)`: something may have been cut)."""
    from parity.trl_bridge import prepare_rows

    if not reprepare:
        return [len(ids) for ids in m.prepared.input_ids]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = dataclasses.replace(m.sft_config, max_length=None, packing=False)
    return [len(ids) for ids in prepare_rows(m.sample_rows, m.tokenizer, config, "untruncated").input_ids]


def pre_tokenized(m: Materialized) -> bool:
    """True for a captured recipe whose trainer was handed token ids (its examples that reached max_length count
    as truncated)."""
    return m.captured is not None and m.captured.pre_tokenized


@measurement("tokens")
def measure(m: Materialized, row: dict[str, Any]) -> dict[str, Any]:
    """Token ids of one raw row (for a captured recipe: as its own code made them, or a labelled stand-in), and
    length and truncation statistics of the sample."""
    example = m.shared_examples([row])[0]
    ids = example.input_ids
    # per example: the packing probe reports the packed sequences
    lengths = [len(x) for x in m.examples.input_ids]
    reprepare = reprepared(m)
    full = untruncated_lengths(m, reprepare)
    max_length = m.sft_config.max_length
    return {
        "max_length": max_length,
        "truncation_mode": m.sft_config.truncation_mode,
        "samples_requested": m.samples if m.samples is not None else "all",
        "samples_measured": len(full),
        "lengths": length_stats(lengths),
        "untruncated_lengths": length_stats(full),
        "truncated": sum(
            1
            for n in full
            if max_length is not None and (n > max_length or (n == max_length and pre_tokenized(m)))
        ),
        "example_ids": ids,
        "example_tokens": m.tokenizer.convert_ids_to_tokens(ids),
        "example_length": len(ids),
        "example_same_row": example.same_row,
        "example_source": example.source,
        "untruncated_by": installed_instead(m, "trl") if reprepare else None,
    }


def _explaining_axes(a: Materialized, b: Materialized, row: dict[str, Any]) -> list[str]:
    """Every align axis that differs for this row and explains a token difference, in attribution order: the model
    (another tokenizer), template, prompt, data. Empty when only tokenization settings remain."""
    axes = []
    if not same_tokenizer(a, b):
        axes.append("model")
    if a.tokenizer.chat_template != b.tokenizer.chat_template:
        axes.append("template")
    conv_a, conv_b = (trl_conversation(m.conversational_raw([row])[0]) for m in (a, b))
    if (conv_a.prompt_messages, conv_a.tools) != (conv_b.prompt_messages, conv_b.tools):
        axes.append("prompt")
    answer_a, answer_b = ((conv.completion_messages, conv.text, conv.tokens) for conv in (conv_a, conv_b))
    if answer_a != answer_b:
        axes.append("data")
    return axes


def _explanation(axes: list[str]) -> str:
    """' (explained by the template and data differences, reported on their own)' for the axes that differ."""
    if not axes:
        return ""
    if axes == ["truncation at max_length"]:
        return " (explained by truncation at max_length, which tokens.truncation reports)"
    names = axes[0] if len(axes) == 1 else ", ".join(axes[:-1]) + f" and {axes[-1]}"
    plural = "s, each" if len(axes) > 1 else ","
    return f" (explained by the {names} difference{plural} reported on its own)"


def tokenizer_source(m: Materialized) -> str:
    """Where a recipe's tokenizer comes from (its own source, else its model's)."""
    return str(m.recipe.tokenizer.source or m.recipe.model.name_or_path or "")


def same_tokenizer(a: Materialized, b: Materialized) -> bool:
    """Whether both recipes tokenize with the same vocabulary and pipeline: the same source, the same loaded
    backend, or backends whose serialized form is equal (two captures of one tokenizer live in two folders)."""
    if same_id(tokenizer_source(a), tokenizer_source(b)):
        return True
    backend_a = getattr(a.tokenizer, "backend_tokenizer", None)
    backend_b = getattr(b.tokenizer, "backend_tokenizer", None)
    if backend_a is None or backend_b is None:
        return False
    return backend_a is backend_b or backend_a.to_str() == backend_b.to_str()


def cut_at_max_length(va: dict, vb: dict) -> bool:
    """Whether the shorter example is the longer one cut at its own max_length (truncation, which
    `tokens.truncation` reports)."""
    short, long = sorted((va, vb), key=lambda v: v["example_length"])
    ids = short["example_ids"]
    return short["max_length"] == len(ids) and long["example_ids"][: len(ids)] == ids


def not_captured_finding(va: dict, vb: dict, name_a: str, name_b: str, ctx: ProbeContext) -> Finding:
    """The shared raw row is missing from a capture: its token ids are not compared (no defaults stand in)."""
    missing = recipes_lacking_the_row(va, vb, name_a, name_b)
    return make_finding(
        "tokens.example_not_captured",
        "info",
        va["example_same_row"],
        vb["example_same_row"],
        f"raw train row {ctx.show_example} is not among the rows {' and '.join(missing)}'s own code produced: "
        "its token ids are not compared (the example shown is another row)",
        {
            "example_index": ctx.show_example,
            "a_source": va["example_source"],
            "b_source": vb["example_source"],
            "a_length": va["example_length"],
            "b_length": vb["example_length"],
        },
        align=None,
    )


def _describe_op(op: dict[str, Any], name_a: str, name_b: str) -> str:
    a_part = ", ".join(f"{i} ({t!r})" for i, t in zip(op["a_ids"], op["a_tokens"], strict=True)) or "nothing"
    b_part = ", ".join(f"{i} ({t!r})" for i, t in zip(op["b_ids"], op["b_tokens"], strict=True)) or "nothing"
    return f"{name_a} has {a_part} where {name_b} has {b_part}"


@PROBES.register("tokens")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Token-level diff of raw row `ctx.show_example`, length distributions and truncation counts."""
    return compare_on_example(a, b, ctx, measure, compare)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    row = a.raw.train[ctx.show_example]
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    ops = token_alignment(va["example_ids"], vb["example_ids"], va["example_tokens"], vb["example_tokens"])
    first = first_difference(va["example_ids"], vb["example_ids"])
    findings = []
    if not (va["example_same_row"] and vb["example_same_row"]):
        findings.append(not_captured_finding(va, vb, name_a, name_b, ctx))
    elif first is not None:
        axes = _explaining_axes(a, b, row)
        align = axes[0] if axes else "tokens"
        truncated = cut_at_max_length(va, vb)
        why = "truncation at max_length" if truncated and align == "tokens" else align
        if why == "truncation at max_length":
            axes = [why]
        findings.append(
            make_finding(
                "tokens.example",
                "high" if why == "tokens" else "info",
                va["example_length"],
                vb["example_length"],
                f"token ids differ for the same raw example from position {first} "
                f"({va['example_length']} vs {vb['example_length']} tokens, {len(ops)} edits): "
                + _describe_op(ops[0], name_a, name_b)
                + _explanation(axes),
                {
                    "example_index": ctx.show_example,
                    "first_difference": first,
                    "ops": ops,
                    "explained_by": why,
                    "differing_axes": axes,
                },
                align=align,
            )
        )
    if va["lengths"] != vb["lengths"]:
        findings.append(
            make_finding(
                "tokens.length_distribution",
                "info",
                va["lengths"],
                vb["lengths"],
                f"sequence lengths differ: mean {va['lengths']['mean']} vs {vb['lengths']['mean']}, "
                f"p95 {va['lengths']['p95']} vs {vb['lengths']['p95']} tokens "
                f"({va['samples_measured']} and {vb['samples_measured']} train examples)",
                {"a": va["lengths"], "b": vb["lengths"]},
                align=None,
            )
        )
    if va["truncated"] != vb["truncated"]:
        findings.append(
            make_finding(
                "tokens.truncation",
                "medium",
                va["truncated"],
                vb["truncated"],
                f"max_length truncates {va['truncated']} of {va['samples_measured']} examples in {name_a} "
                f"(max_length {va['max_length']}) and {vb['truncated']} of {vb['samples_measured']} in {name_b} "
                f"(max_length {vb['max_length']})" + prepared_elsewhere((name_a, name_b), va, vb),
                {
                    "a_untruncated": va["untruncated_lengths"],
                    "b_untruncated": vb["untruncated_lengths"],
                },
            )
        )
    if va["max_length"] != vb["max_length"]:
        findings.append(
            make_finding(
                "training.max_length",
                field_severity("max_length"),
                va["max_length"],
                vb["max_length"],
                f"max_length differs: {name_a} {va['max_length']}, {name_b} {vb['max_length']} "
                f"(longest untruncated example in the sample: {va['untruncated_lengths']['max']} / "
                f"{vb['untruncated_lengths']['max']} tokens; truncated: {va['truncated']} / {vb['truncated']})",
                {
                    "a_provenance": a.recipe.provenance.get("training.max_length", "trl.SFTConfig default"),
                    "b_provenance": b.recipe.provenance.get("training.max_length", "trl.SFTConfig default"),
                },
                align=field_axis("max_length"),
            )
        )
    values = {
        "example_index": ctx.show_example,
        "a": va,
        "b": vb,
        "example_first_difference": first,
        "example_ops": ops,
        "length_histogram": length_histogram(
            [len(x) for x in a.examples.input_ids], [len(x) for x in b.examples.input_ids]
        ),
    }
    return ProbeResult(findings=findings, values=plain(values))


def length_histogram(lengths_a: list[int], lengths_b: list[int], bins: int = 30) -> dict[str, list[int]]:
    """Counts of sequence lengths on shared integer bin edges (for the HTML report's histogram)."""
    low, high = min(lengths_a + lengths_b), max(lengths_a + lengths_b)
    width = max(1, -(-(high - low + 1) // bins))
    edges = [low + i * width for i in range(bins + 1)]

    def counts(lengths: list[int]) -> list[int]:
        row = [0] * bins
        for n in lengths:
            row[min(bins - 1, (n - low) // width)] += 1
        return row

    return {"edges": edges, "a": counts(lengths_a), "b": counts(lengths_b)}
