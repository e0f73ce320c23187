"""Tests for the `bos` probe: double BOS in the prepared examples and in render-then-tokenize pipelines."""

from __future__ import annotations

import pytest
from conftest import by_key, make

from parity.align import align
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.bos import probe, rendered_text
from parity.registry import resolve_recipe

CTX = ProbeContext()


@pytest.fixture(scope="module")
def templates(revise) -> dict[str, list[str]]:
    template = revise.recipe.template.chat_template
    return {
        prefix: ["template.force=true", f"template.chat_template={prefix}{template}"]
        for prefix in ("{{ bos_token }}", "<|begin_of_text|>{{ bos_token }}")
    }


def test_builtin_pair_trains_without_bos(synthetic_pair):
    result = probe(*synthetic_pair, CTX)
    assert result.findings == []
    for side in ("a", "b"):
        values = result.values[side]
        assert values["leading_bos"] == {"0": 32}
        assert (
            values["template_emits_bos"],
            values["tokenizer_adds_bos"],
            values["render_then_tokenize_bos"],
        ) == (
            0,
            1,
            1,
        )


def test_template_bos_plus_tokenizer_bos_doubles_when_text_is_tokenized(revise, templates):
    """trl 1400: a template that emits BOS, rendered to text and tokenized with the tokenizer's special tokens,
    starts with two BOS; TRL's own chat tokenization adds none, so the training data keeps one."""
    result = probe(revise, make("revise", templates["{{ bos_token }}"]), CTX)
    findings = by_key(result)
    assert sorted(findings) == ["bos.render_then_tokenize"]
    twice = findings["bos.render_then_tokenize"]
    assert (twice.severity, twice.a, twice.b, twice.align) == ("medium", 1, 2, "template")
    assert result.values["b"]["leading_bos"] == {"1": 32}


def test_template_with_a_literal_and_a_variable_bos_trains_on_double_bos(revise, templates):
    findings = by_key(probe(revise, make("revise", templates["<|begin_of_text|>{{ bos_token }}"]), CTX))
    assert sorted(findings) == ["bos.double", "bos.render_then_tokenize"]
    double = findings["bos.double"]
    assert (double.severity, double.a, double.b, double.align) == ("high", 0, 32, "template")
    assert findings["bos.render_then_tokenize"].b == 3


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_aligning_the_template_removes_the_findings(revise, templates):
    overrides = templates["<|begin_of_text|>{{ bos_token }}"]
    pair = align(resolve_recipe("revise", overrides), resolve_recipe("revise"), ["template"])
    a, b = (materialize(r, "synthetic:400:80", 1, 32) for r in (pair.aligned_a, pair.aligned_b))
    assert probe(a, b, CTX).findings == []


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "<|im_start|>user\nhi<|im_end|>\n"),
        (
            {"prompt": [{"role": "user", "content": "hi"}], "completion": []},
            "<|im_start|>user\nhi<|im_end|>\n",
        ),
        ({"prompt": "Q: hi", "completion": " A"}, "Q: hi A"),
        ({"text": "plain"}, "plain"),
    ],
)
def test_every_row_format_renders_as_a_render_then_tokenize_pipeline_sees_it(row, expected):
    from model_fixtures import FAMILIES
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(FAMILIES["qwen"].tokenizer_dir())
    assert rendered_text(tokenizer, row) == expected


def test_the_eval_harness_bos_is_not_measured_when_the_harnesses_differ(templates):
    """tt-metal 48444 and tpu-inference 1380: the same model scores lower when the eval harness sends its prompt
    without BOS (or with two). The harness tokenizes its prompts itself, so parity measures the training side and
    says the harness side is not measured, only where the two recipes' harnesses differ."""
    bos = make("revise", templates["{{ bos_token }}"])
    other = make("revise", [*templates["{{ bos_token }}"], "eval.harness=lm-eval==0.4.9.2"])
    result = probe(bos, other, CTX)
    findings = by_key(result)
    assert sorted(findings) == ["bos.eval_input"]
    finding = findings["bos.eval_input"]
    assert (finding.severity, finding.a, finding.b, finding.align) == (
        "info",
        "not measured",
        "not measured",
        None,
    )
    assert "(32 of 32 with 1)" in finding.summary and "starts with 2 BOS" in finding.summary
    assert result.values["a"]["eval_input_bos"] == "not measured"
    assert probe(bos, make("revise", templates["{{ bos_token }}"]), CTX).findings == []


def test_no_eval_bos_claim_for_a_recipe_without_bos_or_eval_protocol(revise):
    other = make("revise", ["eval.harness=lm-eval==0.4.9.2"])
    assert "bos.eval_input" not in by_key(probe(revise, other, CTX))
    no_protocol = make("revise", ["eval.prompt=", "eval.strict_regex=null", "eval.flexible_regex=null"])
    assert probe(revise, no_protocol, CTX).values["b"]["eval_input_bos"] is None
