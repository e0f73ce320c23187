"""Tests for the special_tokens probe: tokens the base model never trained in TRL's prepared rows, and whether
the recipe's training updates their embedding / LM-head rows (peft's wrapping of the real architecture)."""

from __future__ import annotations

import json

import pytest
from conftest import by_key, make

from parity.align import align
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.special_tokens import measure, probe
from parity.registry import resolve_recipe

CTX = ProbeContext()
LLAMA3_TEMPLATE = (
    "{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
    "+ message['content'] + '<|eot_id|>' }}{% endfor %}"
)
"""The Llama 3 instruct turn format: header and end-of-turn tokens the base checkpoint never trained."""
HEADER_TOKENS = ["<|start_header_id|> (128006)", "<|end_header_id|> (128007)", "<|eot_id|> (128009)"]
WITH_LLAMA3 = [f"template.chat_template={json.dumps(LLAMA3_TEMPLATE)}", "template.force=true"]


@pytest.fixture(scope="module")
def llmhalluc(synthetic_pair):
    return synthetic_pair[0]


def test_builtin_recipes_emit_no_untrained_token(llmhalluc, revise):
    for m in (llmhalluc, revise):
        values = measure(m)
        assert values["emitted"] == [] and values["checkpoint_known"] is True
        assert values["untrained_in_tokenizer"] == 255
        assert (values["pad_token"], values["pad_untrained"]) == ("<|finetune_right_pad_id|>", True)
    assert probe(llmhalluc, revise, CTX).findings == []


def test_identical_pairs_have_no_findings(llmhalluc, revise):
    assert probe(llmhalluc, llmhalluc, CTX).findings == []
    assert probe(revise, revise, CTX).findings == []


def test_llama3_template_on_the_base_model_under_lora(llmhalluc):
    """unsloth 915: the Llama 3 chat template on the base model trains on <|start_header_id|>,
    <|end_header_id|> and <|eot_id|>, whose rows the base never trained; LoRA leaves them frozen, and the tuned
    model emits reserved tokens instead of the turn markers."""
    other = make("llmhalluc", WITH_LLAMA3)
    findings = by_key(probe(llmhalluc, other, CTX))
    emitted = findings["special_tokens.untrained_emitted"]
    assert (emitted.axis, emitted.severity, emitted.align) == ("special_tokens", "high", "template")
    assert (emitted.a, emitted.b) == ([], HEADER_TOKENS)
    assert emitted.evidence["in_labels"]["b"] == HEADER_TOKENS
    frozen = findings["special_tokens.frozen_untrained"]
    assert (frozen.severity, frozen.align, frozen.a, frozen.b) == ("high", "template", [], HEADER_TOKENS)
    assert measure(other)["trainable_rows"] == {
        "all_rows": False,
        "token_indices": [],
        "trainable_modules": [],
    }


def test_trainable_token_indices_train_those_rows():
    """The peft fix for the same case: trainable_token_indices makes exactly those rows trainable."""
    frozen = make("llmhalluc", WITH_LLAMA3, samples=8)
    fixed = make(
        "llmhalluc", [*WITH_LLAMA3, "peft.lora.trainable_token_indices=[128006, 128007, 128009]"], samples=8
    )
    [finding] = probe(frozen, fixed, CTX).findings
    assert (finding.key, finding.align, finding.a, finding.b) == (
        "special_tokens.frozen_untrained",
        "peft",
        HEADER_TOKENS,
        [],
    )
    rows = measure(fixed)["trainable_rows"]
    assert rows["token_indices"] == [128006, 128007, 128009] and rows["all_rows"] is False


def test_full_fine_tuning_trains_every_row(revise):
    other = make("revise", WITH_LLAMA3, samples=8)
    values = measure(other)
    assert values["emitted"] == HEADER_TOKENS and values["frozen"] == []
    assert values["trainable_rows"]["all_rows"] is True


def test_a_token_past_the_model_vocabulary_has_no_row():
    template = "{% for message in messages %}{{ '<|image|>' + message['content'] }}{% endfor %}"
    other = make(
        "revise", [f"template.chat_template={json.dumps(template)}", "template.force=true"], samples=8
    )
    values = measure(other)
    assert values["past_vocab"] == ["<|image|> (128256)"] and values["model_vocab_size"] == 128256


def test_aligning_template_and_peft_removes_the_findings():
    a = resolve_recipe("llmhalluc", WITH_LLAMA3)
    b = resolve_recipe("llmhalluc")
    result = align(a, b, "template,peft")
    aligned = [materialize(r, "synthetic:200:40", 1, 8) for r in (result.aligned_a, result.aligned_b)]
    assert probe(*aligned, CTX).findings == []


def test_a_checkpoint_without_pretraining_facts_gets_no_never_trained_claim():
    """Which added tokens Qwen's pre-training used is recorded nowhere parity reads: its ChatML turn tokens are
    neither called untrained nor trained; only ids past the config's vocab_size would be (none here)."""
    from model_fixtures import overrides

    qwen = make("revise", overrides("qwen"), samples=8)
    values = measure(qwen)
    assert (values["checkpoint_known"], values["untrained_in_tokenizer"], values["pad_untrained"]) == (
        False,
        None,
        None,
    )
    assert (values["emitted"], values["past_vocab"], values["model_vocab_size"]) == ([], [], 151936)
    think = "{% for message in messages %}{{ '<think>' + message['content'] + '</think>' }}{% endfor %}"
    other = make(
        "revise",
        [*overrides("qwen"), f"template.chat_template={json.dumps(think)}", "template.force=true"],
        samples=8,
    )
    assert probe(qwen, other, CTX).findings == []
