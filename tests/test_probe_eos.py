"""Tests for the `eos` probe: what ends the completions, which EOS ids generation stops on, EOS through the collator."""

from __future__ import annotations

import pytest
from conftest import by_key, make
from model_fixtures import overrides

from parity.align import align
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.eos import last_stop, measure, probe
from parity.registry import resolve_recipe

CTX = ProbeContext()
EOT = ["training.eos_token=<|eot_id|>"]


@pytest.fixture(scope="module")
def template_without_eos(revise) -> list[str]:
    template = revise.recipe.template.chat_template
    stripped = template.replace(" + eos_token }}{% endif %}{% endif %}", " }}{% endif %}{% endif %}")
    assert stripped != template
    return ["template.force=true", f"template.chat_template={stripped}"]


def test_builtin_pair_ends_every_completion_with_the_eos_generation_stops_on(synthetic_pair):
    result = probe(*synthetic_pair, CTX)
    assert result.findings == []
    for side in ("a", "b"):
        values = result.values[side]
        assert (values["end_token_id"], values["end_token"], values["stop_fraction"]) == (
            128001,
            "<|end_of_text|>",
            1.0,
        )
        assert values["eos_ids"] == {"tokenizer": 128001, "model_config": 128001, "generation": [128001]}
        assert values["collator"]["pad_token_id"] == 128004


def test_a_template_without_eos_trains_no_stop_token(revise, template_without_eos):
    """trl 1623 and PR 3091: when nothing appends EOS to the completion, the model never learns to stop; here the
    template drops `eos_token`, so no example ends with an id generation stops on."""
    findings = by_key(probe(revise, make("revise", template_without_eos), CTX))
    assert sorted(findings) == ["eos.completion_end", "eos.generation_stops"]
    stops = findings["eos.generation_stops"]
    assert (stops.severity, stops.a, stops.b, stops.align) == ("high", 1.0, 0.0, "template")
    end = findings["eos.completion_end"]
    assert (end.a, end.b, end.align) == ("<|end_of_text|>", None, "template")
    assert "no stop id in the trained tokens (32 of 32)" in end.summary


def test_sft_eos_token_moves_the_tokenizer_model_and_generation_ids(revise):
    """SFTConfig.eos_token: SFTTrainer sets it on the tokenizer before tokenizing, so the template ends every
    completion with <|eot_id|>, and mirrors it onto the model and generation configs."""
    result = probe(revise, make("revise", EOT), CTX)
    findings = by_key(result)
    assert sorted(findings) == ["eos.completion_end", "eos.ids", "training.eos_token"]
    end = findings["eos.completion_end"]
    assert (end.severity, end.a, end.b, end.align) == ("high", "<|end_of_text|>", "<|eot_id|>", "eos")
    ids = findings["eos.ids"]
    assert (ids.severity, ids.align) == ("medium", "eos")
    assert ids.b == {"tokenizer": 128009, "model_config": 128009, "generation": [128009, 128001]}
    field = findings["training.eos_token"]
    assert (field.severity, field.a, field.b, field.align) == ("high", None, "<|eot_id|>", "eos")
    b = result.values["b"]
    assert (b["end_token_id"], b["stop_fraction"], b["collator"]["trained_eos"]) == (128009, 1.0, 8)
    assert revise.tokenizer.eos_token == "<|end_of_text|>"


def test_pad_equal_to_eos_keeps_eos_in_the_collated_labels(revise):
    """trl 1623: with pad == eos, a collator that masks labels by pad id drops every EOS; TRL's collator pads the
    labels by position, so the 8 trained EOS of the first batch keep their loss."""
    result = probe(revise, make("revise", ["tokenizer.pad_token=eos"]), CTX)
    collator = result.values["b"]["collator"]
    assert collator == {
        "pad_token_id": 128001,
        "trained_eos": 8,
        "masked_by_collator": 0,
        "pad_positions": 211,
    }
    assert result.findings == []


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_aligning_eos_removes_the_findings():
    pair = align(resolve_recipe("revise", EOT), resolve_recipe("revise"), ["eos"])
    a, b = (materialize(r, "synthetic:400:80", 1, 32) for r in (pair.aligned_a, pair.aligned_b))
    assert probe(a, b, CTX).findings == []


def test_sft_pad_token_is_the_collator_pad_id(revise):
    result = probe(revise, make("revise", ["training.pad_token=<|end_of_text|>"]), CTX)
    assert result.values["b"]["collator"]["pad_token_id"] == 128001
    assert [(f.key, f.a, f.b, f.align) for f in result.findings] == [
        ("training.pad_token", None, "<|end_of_text|>", "eos")
    ]


QWEN_IM_END, NEWLINE, QWEN_ENDOFTEXT = 151645, 198, 151643


@pytest.fixture(scope="module")
def qwen_revise():
    return make("revise", overrides("qwen"), samples=16)


def test_chatml_completions_end_with_im_end_then_a_trained_newline(qwen_revise):
    """Qwen's ChatML template ends each assistant turn with <|im_end|> then "\\n": the end of turn is the last stop
    id inside the trained span, the newline after it carries loss, and generation stops on <|im_end|>."""
    values = measure(qwen_revise)
    assert (values["end_token_id"], values["end_token"]) == (QWEN_IM_END, "<|im_end|>")
    assert (values["trailing_ids"], values["trailing_tokens"]) == ([NEWLINE], ["Ċ"])
    assert values["examples"] == values["examples_ending_with_it"] == values["examples_with_trailing"] == 16
    assert (values["ending_with_a_stop_id"], values["stop_fraction"], values["examples_without_stop"]) == (
        16,
        1.0,
        0,
    )
    assert values["eos_ids"] == {
        "tokenizer": QWEN_IM_END,
        "model_config": QWEN_IM_END,
        "generation": [QWEN_IM_END, QWEN_ENDOFTEXT],
    }
    assert values["collator"]["pad_token_id"] == QWEN_ENDOFTEXT
    assert probe(qwen_revise, make("revise", overrides("qwen"), samples=16), CTX).findings == []


def test_a_chatml_template_without_the_trailing_newline_differs_only_there(qwen_revise):
    template = qwen_revise.tokenizer.chat_template.replace("{{- '<|im_end|>\\n' }}", "{{- '<|im_end|>' }}")
    assert template != qwen_revise.tokenizer.chat_template
    other = make(
        "revise",
        [*overrides("qwen"), "template.force=true", f"template.chat_template={template}"],
        samples=16,
    )
    [finding] = probe(qwen_revise, other, CTX).findings
    assert (finding.key, finding.severity, finding.align) == ("eos.trailing", "low", "template")
    assert (finding.a, finding.b) == (["Ċ"], [])


@pytest.mark.parametrize(
    ("ids", "labels", "expected"),
    [
        ([5, 7, 2, 9], [-100, 7, 2, 9], (2, [9])),
        ([5, 7, 2, 2, 2, 2], [-100, 7, 2, 2, 2, 2], (2, [])),
        ([5, 2, 7, 2, 2], [-100, -100, 7, 2, -100], (2, [])),
        ([5, 2, 7, 8], [-100, -100, 7, 8], (None, [])),
    ],
)
def test_last_stop_reads_no_padding_as_content(ids, labels, expected):
    """Padding (pad id 2 == EOS here) is never content: a trailing run of the pad id counts once, and a stop id
    only counts inside the trained span."""
    assert last_stop(ids, labels, {2}, 2) == expected
