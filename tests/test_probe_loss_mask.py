"""Tests for the `loss_mask` probe: trained tokens from TRL's labels, prompt/EOS/BOS handling, provenance."""

from __future__ import annotations

import pytest
from conftest import by_key, make

from parity.probes import ProbeContext
from parity.probes.loss_mask import probe

CTX = ProbeContext()


@pytest.fixture(scope="module")
def real_result(real_pair):
    return probe(*real_pair, CTX)


def test_exact_trained_fractions_on_first_64_real_examples(real_result):
    a, b = real_result.values["a"], real_result.values["b"]
    assert (a["trained_tokens"], a["tokens"], a["trained_fraction"]) == (6711, 12589, 0.533084)
    assert (b["trained_tokens"], b["tokens"], b["trained_fraction"]) == (11148, 11148, 1.0)
    assert (a["prompt_tokens"], a["prompt_tokens_trained_count"]) == (5878, 0)
    assert (b["prompt_tokens"], b["prompt_tokens_trained_count"]) == (5734, 5734)
    assert a["prompt_tokens_trained"] is False and b["prompt_tokens_trained"] is True


def test_findings_on_real_data(real_result):
    findings = by_key(real_result)
    assert sorted(findings) == ["loss_mask.prompt_tokens_trained", "training.completion_only_loss"]
    col = findings["training.completion_only_loss"]
    assert (col.severity, col.align, col.a, col.b) == ("high", "loss_mask", True, False)
    assert (col.evidence["a_configured"], col.evidence["b_configured"]) == (None, False)
    prompt = findings["loss_mask.prompt_tokens_trained"]
    assert (prompt.severity, prompt.align, prompt.a, prompt.b) == ("high", "loss_mask", False, True)
    assert prompt.evidence["a"]["trained_fraction"] == 0.533084


def test_provenance_of_completion_only_loss(real_result):
    assert real_result.values["a"]["completion_only_loss_provenance"].startswith(
        "TRL default (SFTConfig.completion_only_loss=None"
    )
    assert (
        real_result.values["b"]["completion_only_loss_provenance"]
        == "set by recipe (upstream:scripts/step-0-sft.sh)"
    )


def test_eos_trained_and_no_bos_on_real_data(real_result):
    for side in ("a", "b"):
        values = real_result.values[side]
        assert (values["eos_trained"], values["eos_trained_count"], values["examples_ending_with_eos"]) == (
            True,
            64,
            64,
        )
        assert (values["bos_at_start"], values["bos_at_start_count"]) == (False, 0)


def test_example_view_side_by_side(real_result):
    a, b = real_result.values["example"]["a"], real_result.values["example"]["b"]
    assert a[0] == ["Ċ", False] and b[0] == ["<", True]
    assert a[-1] == b[-1] == ["<|end_of_text|>", True]
    assert all(trained for _, trained in b)
    assert sum(trained for _, trained in a) == 49
    assert a[67:69] == [[">Ċ", False], ["N", True]]


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_library_default_completion_only_loss(revise):
    result = probe(revise, make("revise", ["training.completion_only_loss=<default>"]), CTX)
    assert sorted(by_key(result)) == ["loss_mask.prompt_tokens_trained", "training.completion_only_loss"]
    assert result.values["b"]["completion_only_loss"] is True
    assert result.values["b"]["completion_only_loss_provenance"].startswith("TRL default")
    assert result.values["b"]["prompt_tokens_trained_count"] == 0
