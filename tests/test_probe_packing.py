"""Tests for the `packing` probe: sequences and optimizer steps under TRL's packing, and cross-example attention."""

from __future__ import annotations

from conftest import by_key, make

from parity.align import align
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.packing import probe
from parity.registry import resolve_recipe

CTX = ProbeContext()
BFD = ["training.packing=true", "training.max_length=512"]
WRAPPED = [*BFD, "training.packing_strategy=wrapped"]


def test_bfd_packing_shrinks_the_step_count_without_cross_example_attention(revise):
    """alignment-handbook 27 (and its PR 31): packing turns 32 examples into 9 sequences, so the epoch has a
    third of the optimizer steps and a warmup ratio resolves to fewer warmup steps."""
    result = probe(revise, make("revise", BFD), CTX)
    findings = by_key(result)
    assert sorted(findings) == ["packing.attention_isolation", "packing.optimizer_steps", "training.packing"]
    steps = findings["packing.optimizer_steps"]
    assert (steps.severity, steps.a, steps.b, steps.align) == ("high", 36, 12, "packing")
    b = result.values["b"]
    assert (b["sample_examples"], b["sample_sequences"], b["train_sequences"]) == (32, 9, 101)
    assert (b["warmup_steps"], result.values["a"]["warmup_steps"]) == (2, 4)
    assert b["padding_free_collator"] is True
    assert b["first_batch"] == {"pieces": 28, "attending_across": 0}
    assert (findings["training.packing"].severity, findings["training.packing"].b) == ("high", True)
    isolation = findings["packing.attention_isolation"]
    assert (isolation.severity, isolation.a, isolation.b, isolation.align) == (
        "info",
        None,
        "not measured",
        None,
    )
    assert (
        "28 example pieces" in isolation.summary
        and "sends position_ids without an attention mask" in isolation.summary
    )


def test_attention_isolation_is_not_measured_where_the_kernel_decides_it(revise):
    """trl 3910: packed examples in a padding-free batch are kept apart only where the attention implementation
    honours position_ids (FlashAttention varlen, or a mask built from them); parity derives the segments from the
    batch and never runs the kernel, so it says "not measured" there and nowhere else."""
    packed = probe(revise, make("revise", BFD), CTX).values["b"]
    assert (packed["attention_isolation"], packed["first_batch"]["attending_across"]) == ("not measured", 0)
    wrapped = probe(revise, make("revise", WRAPPED), CTX).values["b"]
    assert (wrapped["attention_isolation"], wrapped["first_batch"]["attending_across"]) == (None, 31)
    padding_free = probe(
        revise, make("revise", ["training.padding_free=true", "training.max_length=null"]), CTX
    )
    assert padding_free.values["b"]["attention_isolation"] is None  # one example per row: nothing to isolate
    assert probe(revise, make("revise"), CTX).values["b"]["attention_isolation"] is None


def test_wrapped_packing_lets_examples_attend_to_each_other(revise):
    """trl 1230 (packing without cross-contamination): packing by plain concatenation, with no position-id reset,
    lets every packed example attend to the examples before it in the same sequence."""
    result = probe(make("revise", BFD), make("revise", WRAPPED), CTX)
    findings = by_key(result)
    assert sorted(findings) == [
        "packing.attention_isolation",
        "packing.cross_example_attention",
        "training.packing_strategy",
    ]
    assert (findings["packing.attention_isolation"].a, findings["packing.attention_isolation"].b) == (
        "not measured",
        None,
    )
    cross = findings["packing.cross_example_attention"]
    assert (cross.severity, cross.a, cross.b, cross.align) == ("high", 0, 31, "packing")
    assert cross.evidence["b"] == {"pieces": 39, "attending_across": 31}
    assert result.values["b"]["padding_free_collator"] is False


def test_padding_free_without_packing_keeps_examples_apart(revise):
    result = probe(revise, make("revise", ["training.padding_free=true", "training.max_length=null"]), CTX)
    assert sorted(by_key(result)) == ["training.padding_free"]
    assert result.values["b"]["first_batch"] == {"pieces": 8, "attending_across": 0}


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_aligning_packing_removes_the_findings():
    pair = align(
        resolve_recipe("revise", WRAPPED), resolve_recipe("revise", ["training.max_length=512"]), ["packing"]
    )
    a, b = (materialize(r, "synthetic:400:80", 1, 32) for r in (pair.aligned_a, pair.aligned_b))
    assert probe(a, b, CTX).findings == []
