"""Tests for the `tokens` probe: token alignment of one example, length statistics and truncation."""

from __future__ import annotations

import pytest
from conftest import by_key, make

from parity.probes import ProbeContext
from parity.probes.config import probe as config_probe
from parity.probes.tokens import length_stats, probe

CTX = ProbeContext()


@pytest.fixture(scope="module")
def real_result(real_pair):
    return probe(*real_pair, CTX)


def test_same_example_differs_from_position_zero_on_real_data(real_result):
    finding = by_key(real_result)["tokens.example"]
    # explained by the template difference (the template probe's high finding), so it is info here
    assert (finding.severity, finding.align, finding.a, finding.b) == ("info", "template", 117, 110)
    assert finding.evidence["explained_by"] == "template"
    # the user message and the answers (calculator annotations) differ too: each is named, not only the first
    assert finding.evidence["differing_axes"] == ["template", "prompt", "data"]
    assert (
        "(explained by the template, prompt and data differences, each reported on its own)"
        in finding.summary
    )
    assert finding.evidence["first_difference"] == 0
    first = finding.evidence["ops"][0]
    assert (first["op"], first["a_ids"], first["a_tokens"], first["b_tokens"]) == ("delete", [198], ["Ċ"], [])
    assert "llmhalluc has 198 ('Ċ') where revise has nothing" in finding.summary


def test_length_distributions_on_real_data(real_result):
    assert real_result.values["a"]["lengths"] == {
        "count": 64,
        "mean": 196.703,
        "p50": 198.5,
        "p95": 266.95,
        "max": 392,
    }
    assert real_result.values["b"]["lengths"] == {
        "count": 64,
        "mean": 174.188,
        "p50": 167.5,
        "p95": 265.2,
        "max": 274,
    }
    assert by_key(real_result)["tokens.length_distribution"].severity == "info"
    assert by_key(real_result)["tokens.length_distribution"].align is None


def test_max_length_agrees_and_truncates_nothing_on_real_data(real_pair, real_result):
    assert "training.max_length" not in by_key(real_result)
    assert real_result.values["a"]["max_length"] == real_result.values["b"]["max_length"] == 1024
    assert real_result.values["a"]["truncated"] == real_result.values["b"]["truncated"] == 0
    assert real_result.values["a"]["samples_measured"] == 64
    assert "tokens.truncation" not in by_key(real_result)
    cutoff_len = by_key(config_probe(*real_pair, CTX))["upstream.cutoff_len"]
    assert (cutoff_len.severity, cutoff_len.a, cutoff_len.evidence["closest"]) == ("high", 2048, "max_length")
    assert cutoff_len.evidence["a"]["closest_effective"] == 1024


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_short_max_length_truncates(revise):
    result = probe(revise, make("revise", ["training.max_length=64"]), CTX)
    findings = by_key(result)
    assert (findings["tokens.truncation"].a, findings["tokens.truncation"].b) == (0, 32)
    assert (findings["training.max_length"].a, findings["training.max_length"].b) == (1024, 64)
    example = findings["tokens.example"]
    assert (example.align, example.severity, example.evidence["explained_by"]) == (
        "tokens",
        "info",
        "truncation at max_length",
    )
    assert result.values["b"]["lengths"]["max"] == 64
    assert result.values["b"]["untruncated_lengths"] == result.values["a"]["untruncated_lengths"]


@pytest.mark.parametrize(
    ("override", "align"), [("prompt.instruction=Solve it.", "prompt"), ("data.preprocess=[]", "data")]
)
def test_example_finding_is_aligned_with_its_cause(revise, override, align):
    result = probe(revise, make("revise", [override]), CTX)
    example = by_key(result)["tokens.example"]
    assert (example.align, example.severity, example.evidence["explained_by"]) == (align, "info", align)


def test_another_tokenizer_explains_the_token_difference_as_the_model_axis(revise):
    from model_fixtures import overrides

    result = probe(revise, make("revise", overrides("qwen")), CTX)
    example = by_key(result)["tokens.example"]
    assert (example.align, example.severity) == ("model", "info")


def test_length_stats_uses_linear_percentiles():
    assert length_stats([1, 2, 3, 4]) == {"count": 4, "mean": 2.5, "p50": 2.5, "p95": 3.85, "max": 4}
