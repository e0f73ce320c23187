"""Probe `packing`: packing and padding-free as TRL runs them on the prepared sample: how many training sequences
the examples become (and so the optimizer steps and warmup), and whether packed examples can attend to each other."""

from __future__ import annotations

from typing import Any

from parity.materialize import Materialized
from parity.plain import plain
from parity.plan import step_plan
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement, side_values
from parity.probes.fields import owned_field_findings, owned_values
from parity.textdiff import pair_names
from parity.trl_bridge import build_collator

AXIS = "packing"
make_finding = FindingMaker(AXIS)
ISOLATION_NOT_MEASURED = "not measured"
"""Whether the attention kernel keeps packed examples apart: parity derives the segments the model's mask function
would see from the collated batch, it never runs the recipe's attention implementation."""


def unpacked_lengths(m: Materialized) -> list[int]:
    """Lengths of the sampled examples as TRL tokenizes them before packing (packing skips truncation)."""
    return [len(ids) for ids in m.examples.input_ids]


def document_pieces(m: Materialized, rows: int) -> list[list[int]]:
    """Lengths of the example pieces in each of the first `rows` training sequences: TRL's `seq_lengths` where
    packing records them, the unpacked example stream cut at max_length for wrapped packing, else one per row."""
    lengths = [len(ids) for ids in m.prepared.input_ids[:rows]]
    if not m.sft_config.packing:
        return [[n] for n in lengths]
    dataset = m.prepared.dataset  # TRL's own packed dataset
    if "seq_lengths" in dataset.column_names:
        return [list(x) for x in dataset.select(range(rows))["seq_lengths"]]
    stream, pieces = iter(unpacked_lengths(m)), []
    left = 0
    for size in lengths:
        row: list[int] = []
        while size:
            if not left:
                left = next(stream)
            take = min(left, size)
            row.append(take)
            left, size = left - take, size - take
        pieces.append(row)
    return pieces


def model_segments(batch: dict[str, Any]) -> list[tuple[int, int]]:
    """(row, attention segment) of each non-padding token of a collated batch as the model derives it: from the
    position ids (transformers' own packed-sequence detection) when the collator sends them without an attention
    mask, else one segment per row."""
    from transformers.masking_utils import find_packed_sequence_indices

    if "position_ids" in batch and "attention_mask" not in batch:
        rows, width = batch["position_ids"].shape
        found = find_packed_sequence_indices(batch["position_ids"])
        segments = found.tolist() if found is not None else [[0] * width for _ in range(rows)]
        return [(r, s) for r, row in enumerate(segments) for s in row]
    return [(r, 0) for r, row in enumerate(batch["attention_mask"].tolist()) for _ in range(sum(row))]


def cross_boundary(m: Materialized, rows: int) -> dict[str, int]:
    """Example pieces in the first per-device batch, and how many can attend to a preceding different example."""
    if m.sft_config.packing:
        dataset = m.prepared.dataset.select(range(rows))
        examples = [dataset[i] for i in range(rows)]
    else:
        examples = [
            {"input_ids": m.prepared.input_ids[i], "labels": m.prepared.labels[i]} for i in range(rows)
        ]
    batch = build_collator(m.tokenizer, m.sft_config)(examples)
    pieces = [n for row in document_pieces(m, rows) for n in row]
    segments = model_segments(batch)
    attending, start = 0, 0
    for n in pieces:
        # a piece attends across a boundary when the token before it lies in the same model segment
        if start > 0 and start < len(segments) and segments[start] == segments[start - 1]:
            attending += 1
        start += n
    return {"pieces": len(pieces), "attending_across": attending}


def kernel_isolation(padding_free: bool, first_batch: dict[str, int], rows: int) -> str | None:
    """ISOLATION_NOT_MEASURED where packed example pieces share a row of a padding-free batch: the model gets
    position_ids and no attention mask, and whether its attention keeps the pieces apart depends on the kernel and
    the model's mask path (None otherwise: an attention mask decides it, or nothing is packed)."""
    return ISOLATION_NOT_MEASURED if padding_free and first_batch["pieces"] > rows else None


@measurement(AXIS)
def measure(m: Materialized) -> dict[str, Any]:
    """Sequences per example, optimizer steps with packing, padding-free collation and cross-example attention."""
    config = m.sft_config
    examples, sequences = len(m.sample_rows), len(m.prepared)
    train_rows = len(m.data.train)
    sequence_rows = round(train_rows * sequences / examples) if config.packing else train_rows
    packed, plain_plan = step_plan(m.launch, config, sequence_rows), m.step_plan()
    rows = min(m.launch.per_device_train_batch_size, sequences)
    first_batch = cross_boundary(m, rows)
    padding_free = build_collator(m.tokenizer, config).padding_free
    return plain(
        {
            "packing": config.packing,
            "packing_strategy": config.packing_strategy if config.packing else None,
            "padding_free_collator": padding_free,
            "attn_implementation": m.recipe.model.attn_implementation,
            "sample_examples": examples,
            "sample_sequences": sequences,
            "sequences_per_example": round(sequences / examples, 6),
            "train_rows": train_rows,
            "train_sequences": sequence_rows,
            "optimizer_steps": packed.total_steps,
            "optimizer_steps_unpacked": plain_plan.total_steps,
            "warmup_steps": packed.warmup_steps,
            "first_batch": first_batch,
            "attention_isolation": kernel_isolation(padding_free, first_batch, rows),
            "fields": owned_values(m, AXIS),
        }
    )


def _describe(name: str, v: dict[str, Any]) -> str:
    if not v["packing"]:
        return f"{name} does not pack ({v['train_rows']} sequences, {v['optimizer_steps']} steps)"
    return (
        f"{name} packs ({v['packing_strategy']}) {v['sample_examples']} examples into {v['sample_sequences']} "
        f"sequences: about {v['train_sequences']} sequences, {v['optimizer_steps']} optimizer steps instead of "
        f"{v['optimizer_steps_unpacked']}, warmup {v['warmup_steps']}"
    )


@PROBES.register(AXIS)
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Packing's effect on the step count and on attention between examples, for both recipes."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    names = pair_names(a.recipe.name, b.recipe.name)
    findings = []
    if (va["packing"] or vb["packing"]) and va["optimizer_steps"] != vb["optimizer_steps"]:
        findings.append(
            make_finding(
                "packing.optimizer_steps",
                "high",
                va["optimizer_steps"],
                vb["optimizer_steps"],
                f"{_describe(names[0], va)}; {_describe(names[1], vb)}",
                side_values(
                    va,
                    vb,
                    (
                        "sequences_per_example",
                        "train_sequences",
                        "optimizer_steps_unpacked",
                        "warmup_steps",
                    ),
                ),
            )
        )
    across_a, across_b = va["first_batch"]["attending_across"], vb["first_batch"]["attending_across"]
    if across_a != across_b:
        findings.append(
            make_finding(
                "packing.cross_example_attention",
                "high",
                across_a,
                across_b,
                f"examples attending to a preceding different example in the first per-device batch: {names[0]} "
                f"{across_a} of {va['first_batch']['pieces']}, {names[1]} {across_b} of {vb['first_batch']['pieces']} "
                f"(padding-free collation {va['padding_free_collator']} / {vb['padding_free_collator']})",
                {"a": va["first_batch"], "b": vb["first_batch"]},
            )
        )
    packed = [(name, v) for name, v in zip(names, (va, vb), strict=True) if v["attention_isolation"]]
    if packed:
        findings.append(
            make_finding(
                "packing.attention_isolation",
                "info",
                va["attention_isolation"],
                vb["attention_isolation"],
                "whether the attention kernel keeps packed examples apart is not measured: "
                + "; ".join(_isolation_text(name, v) for name, v in packed),
                {"a": va["first_batch"], "b": vb["first_batch"]},
                align=None,
            )
        )
    findings += owned_field_findings(make_finding, names, va["fields"], vb["fields"])
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))


def _isolation_text(name: str, v: dict[str, Any]) -> str:
    batch = v["first_batch"]
    kernel = v["attn_implementation"] or "the library default"
    return (
        f"{name} packs {batch['pieces']} example pieces into its first batch and sends position_ids without an "
        f"attention mask; from that batch "
        f"transformers' packed-sequence detection lets {batch['attending_across']} of them attend to a preceding "
        f"example, whether {kernel} attention applies it is decided by the kernel and the model's mask path"
    )
