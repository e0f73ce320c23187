"""Tests for the `model` probe and axis: the base model each recipe trains, one high finding when it differs,
alignable with `--align model`, and no Llama fact in the report of a recipe that trains another model."""

from __future__ import annotations

import json

import pytest
from conftest import by_key, make
from model_fixtures import FAMILIES, overrides

from parity.align import align, axis_values
from parity.diff import diff_materialized
from parity.probes import ProbeContext
from parity.probes.model import probe
from parity.registry import resolve_recipe

CTX = ProbeContext()
DATA = "synthetic:64:16"
LLAMA_FACTS = ("128000", "128001", "128256", "LlamaForCausalLM")
"""Llama 3.2's BOS / EOS ids, vocabulary and class: none may appear in a report of recipes that train Qwen."""


def revise_on(family: str, extra: tuple[str, ...] = ()):
    return make("revise", [*overrides(family), *extra], data=DATA, samples=16)


@pytest.fixture(scope="module")
def qwen():
    return revise_on("qwen")


@pytest.fixture(scope="module")
def llama():
    return revise_on("llama")


def test_identical_pairs_have_no_finding(synthetic_pair, qwen):
    assert probe(*synthetic_pair, CTX).findings == []
    assert probe(qwen, revise_on("qwen"), CTX).findings == []


def test_qwen_against_llama_is_one_high_model_finding(qwen, llama):
    result = probe(qwen, llama, CTX)
    [finding] = result.findings
    assert (finding.axis, finding.key, finding.severity, finding.align) == (
        "model",
        "model.base",
        "high",
        "model",
    )
    assert (finding.a, finding.b) == (FAMILIES["qwen"].model, "meta-llama/Llama-3.2-1B")
    assert finding.evidence["differs"] == ["name_or_path", "architecture", "parameters", "vocab_size"]
    assert "Qwen3ForCausalLM, 596,049,920 parameters, vocabulary 151,936" in finding.summary
    assert "LlamaForCausalLM, 1,235,814,400 parameters, vocabulary 128,256" in finding.summary
    a = result.values["a"]
    assert (a["architecture"], a["vocab_size"], a["stop_ids"]) == (
        "Qwen3ForCausalLM",
        151936,
        [151645, 151643],
    )


def test_the_full_diff_blames_the_model_once_and_states_no_llama_fact_for_qwen(qwen, llama):
    report = diff_materialized(qwen, llama)
    assert [(f.key, f.severity) for f in report.findings if f.key.startswith("model.")] == [
        ("model.base", "high")
    ]
    assert [f.axis for f in report.findings if f.severity == "high" and f.align == "model"] == [
        "model",
        "eos",
    ]
    qwen_side = json.dumps([values["a"] for values in report.to_dict()["probes"].values() if "a" in values])
    assert [fact for fact in LLAMA_FACTS if fact in qwen_side] == []


@pytest.mark.parametrize("recipes", [("llmhalluc", "revise"), ("revise", "revise")])
def test_a_qwen_pair_report_states_no_llama_fact(recipes):
    a, b = (make(name, overrides("qwen"), data=DATA, samples=16) for name in recipes)
    text = json.dumps(diff_materialized(a, b).to_dict())
    assert [fact for fact in LLAMA_FACTS if fact in text] == []
    assert "Qwen3ForCausalLM" in text and "151645" in text


def test_a_phi3_pair_report_states_its_own_class_and_vocabulary():
    a, b = (make(name, overrides("phi3"), data=DATA, samples=8) for name in ("llmhalluc", "revise"))
    report = diff_materialized(a, b).to_dict()
    text = json.dumps(report)
    assert "LlamaForCausalLM" not in text and "128256" not in text
    assert report["probes"]["model"]["a"]["architecture"] == "Phi3ForCausalLM"
    assert report["probes"]["peft"]["a"]["target_names"] == [
        "down_proj",
        "gate_up_proj",
        "o_proj",
        "qkv_proj",
    ]


def test_same_architecture_another_size_and_another_revision(llama):
    result = probe(llama, revise_on("llama", ("model.name_or_path=meta-llama/Llama-3.2-3B",)), CTX)
    [finding] = result.findings
    assert finding.evidence["differs"] == ["name_or_path", "parameters"]
    assert result.values["b"]["parameters"] == 3_212_749_824
    [finding] = probe(llama, revise_on("llama", ("model.revision=refs/pr/7",)), CTX).findings
    assert (finding.evidence["differs"], finding.b) == (["revision"], "meta-llama/Llama-3.2-1B@refs/pr/7")
    assert finding.evidence["b"]["architecture"] is None
    assert probe(llama, revise_on("llama", ("model.revision=main",)), CTX).findings == []


def test_hub_ids_are_case_insensitive(llama):
    other = revise_on("llama", ("model.name_or_path=meta-llama/llama-3.2-1b",))
    assert probe(llama, other, CTX).findings == []


def test_aligning_the_model_copies_the_base_model_and_its_tokenizer(qwen, llama):
    pair = align(qwen.recipe, llama.recipe, ["model"])
    assert axis_values(pair.aligned_a, "model") == {
        "model.name_or_path": "meta-llama/Llama-3.2-1B",
        "model.revision": None,
        "tokenizer.source": None,
    }
    assert sorted(pair.applied_a) == ["model.name_or_path", "tokenizer.source"]
    aligned = make(
        "revise", pair.overrides_a and [*overrides("qwen"), *pair.overrides_a], data=DATA, samples=16
    )
    assert probe(aligned, llama, CTX).findings == []
    assert by_key(diff_materialized(aligned, llama)) == {}


def test_a_recipe_naming_no_model_is_refused():
    from parity.errors import ParityError

    with pytest.raises(ParityError, match="recipe 'revise' names no model: set model.name_or_path"):
        resolve_recipe("revise", ["model.name_or_path=null"])
