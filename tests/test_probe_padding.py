"""Tests for the `padding` probe: collated padding side and what max_length truncation costs."""

from __future__ import annotations

from conftest import by_key, make

from parity.align import align
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.padding import probe
from parity.registry import resolve_recipe

CTX = ProbeContext()
SHORT = ["training.max_length=128"]
KEEP_END = [*SHORT, "training.truncation_mode=keep_end"]


def test_keep_start_truncation_cuts_eos_where_keep_end_keeps_it():
    """trl 1623: completions that lose their EOS never teach the model to stop; keep_start truncation at 128
    tokens cuts it off half of the examples, keep_end keeps it (and cuts the prompt's start instead)."""
    result = probe(make("revise", SHORT), make("revise", KEEP_END), CTX)
    findings = by_key(result)
    assert sorted(findings) == ["padding.eos_cut", "training.truncation_mode"]
    cut = findings["padding.eos_cut"]
    assert (cut.severity, cut.a, cut.b, cut.align) == ("high", 16, 0, "padding")
    mode = findings["training.truncation_mode"]
    assert (mode.severity, mode.a, mode.b, mode.align) == ("medium", "keep_start", "keep_end", "padding")
    truncation = result.values["a"]["truncation"]
    assert (
        truncation["examples_truncated"],
        truncation["tokens_lost"],
        truncation["trained_tokens_lost"],
    ) == (
        16,
        301,
        301,
    )


def test_shorter_max_length_loses_trained_tokens_aligned_by_tokens(revise):
    findings = by_key(probe(revise, make("revise", SHORT), CTX))
    assert sorted(findings) == ["padding.eos_cut", "padding.trained_tokens_lost"]
    lost = findings["padding.trained_tokens_lost"]
    assert (lost.severity, lost.a, lost.b, lost.align) == ("medium", 0, 301, "tokens")
    assert lost.evidence["b"]["trained_fraction_lost"] == 0.07165


def test_chatml_completions_lose_their_end_of_turn_although_a_newline_follows_it():
    """s1 115 (a 12k block size cuts long reasoning traces): ChatML completions end `<|im_end|>` then a trained
    newline, so the EOS to count is the last trained one, not the last token; at 128 tokens 28 of 32 lose it."""
    from model_fixtures import overrides

    qwen = overrides("qwen")
    result = probe(make("revise", qwen), make("revise", [*qwen, "training.max_length=128"]), CTX)
    assert result.values["a"]["truncation"]["examples_ending_with_eos"] == 32
    cut = by_key(result)["padding.eos_cut"]
    assert (cut.severity, cut.a, cut.b) == ("high", 0, 28)
    assert result.values["b"]["truncation"]["examples_truncated"] == 28


def test_an_earlier_turns_trained_end_does_not_hide_a_cut_answer():
    """unsloth 2669 (full-text rows cut at 1024): with the prompt trained too, the user turn's `<|im_end|>` survives
    truncation; the end of turn that matters is the last trained one, and 28 of 32 still lose it."""
    from model_fixtures import overrides

    qwen = [*overrides("qwen"), "training.completion_only_loss=false"]
    cut = by_key(probe(make("revise", qwen), make("revise", [*qwen, "training.max_length=128"]), CTX))[
        "padding.eos_cut"
    ]
    assert (cut.severity, cut.a, cut.b) == ("high", 0, 28)


def test_trl_collator_pads_on_the_right(revise):
    values = probe(revise, make("revise"), CTX).values["a"]
    assert (values["collated_padding_side"], values["tokenizer_padding_side"]) == ("right", "right")


def test_pad_to_multiple_of_is_reported(revise):
    findings = by_key(probe(revise, make("revise", ["training.pad_to_multiple_of=8"]), CTX))
    assert [(k, f.a, f.b, f.align) for k, f in findings.items()] == [
        ("training.pad_to_multiple_of", None, 8, "padding")
    ]


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_aligning_padding_removes_the_findings():
    pair = align(resolve_recipe("revise", KEEP_END), resolve_recipe("revise", SHORT), ["padding"])
    a, b = (materialize(r, "synthetic:400:80", 1, 32) for r in (pair.aligned_a, pair.aligned_b))
    assert probe(a, b, CTX).findings == []
