"""Tests for the optim probe: optimizer fields with what the HF Trainer builds from them, the parameters weight
decay reaches on the real Llama-3.2-1B architecture, and dropout on the trained path."""

from __future__ import annotations

import pytest
from conftest import by_key, make

from parity.align import align
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.config import probe as config_probe
from parity.probes.optim import decay_split, measure, probe
from parity.registry import resolve_recipe

CTX = ProbeContext()
LORA_R8_ALL_LINEAR = 5_636_096
FULL = 1_235_814_400
NORM_WEIGHTS = 16 * 2 * 2048 + 2048
"""input_layernorm and post_attention_layernorm of 16 layers plus the final norm: exempt from weight decay."""


@pytest.fixture(scope="module")
def llmhalluc(synthetic_pair):
    return synthetic_pair[0]


def test_one_optimizer_field_gives_its_finding_with_the_built_optimizer(revise):
    other = make("revise", ["training.adam_beta2=0.95"])
    [finding] = probe(revise, other, CTX).findings
    assert (finding.axis, finding.key, finding.severity, finding.align) == (
        "optim",
        "training.adam_beta2",
        "medium",
        "optim",
    )
    assert (finding.a, finding.b) == (0.999, 0.95)
    built = finding.evidence["optimizer"]
    assert built["a"]["class"] == built["b"]["class"] == "torch.optim.adamw.AdamW"
    assert (built["a"]["kwargs"]["betas"], built["b"]["kwargs"]["betas"]) == ([0.9, 0.999], [0.9, 0.95])


def test_neftune_and_optimizer_fields_moved_out_of_the_config_probe(revise):
    other = make("revise", ["training.neftune_noise_alpha=5", "training.max_grad_norm=0.3"])
    findings = by_key(probe(revise, other, CTX))
    assert sorted(findings) == ["training.max_grad_norm", "training.neftune_noise_alpha"]
    assert (findings["training.neftune_noise_alpha"].a, findings["training.neftune_noise_alpha"].b) == (
        None,
        5,
    )
    assert config_probe(revise, other, CTX).findings == []


def test_fused_and_unfused_adamw(revise):
    other = make("revise", ["training.optim=adamw_torch"])
    [finding] = probe(revise, other, CTX).findings
    assert (finding.a, finding.b) == ("adamw_torch_fused", "adamw_torch")
    assert finding.evidence["optimizer"]["a"]["kwargs"]["fused"] is True
    assert "fused" not in finding.evidence["optimizer"]["b"]["kwargs"]
    assert "AdamW (fused) vs torch.optim.adamw.AdamW)" in finding.summary


def test_identical_pairs_have_no_findings(revise, llmhalluc):
    assert probe(revise, revise, CTX).findings == []
    assert probe(llmhalluc, llmhalluc, CTX).findings == []


def test_builtin_pair_differs_in_dropout_only(revise, llmhalluc):
    [finding] = probe(llmhalluc, revise, CTX).findings
    assert (finding.key, finding.severity, finding.align) == ("optim.dropout", "low", "peft")
    assert finding.a == {"attention_dropout": 0.0, "lora_dropout": 0.05}
    assert finding.b == {"attention_dropout": 0.0, "lora_dropout": None}


def test_weight_decay_reaches_lora_adapters_only_vs_every_non_norm_weight():
    """The HF Trainer exempts norms and biases from weight decay (Trainer.get_decay_parameter_names); under LoRA
    only the adapters train, so the same weight_decay=0.1 decays 5.6M parameters in one recipe and 1.2B in the
    other."""
    a = make("llmhalluc", ["training.weight_decay=0.1"], samples=8)
    b = make("revise", ["training.weight_decay=0.1"], samples=8)
    findings = by_key(probe(a, b, CTX))
    decayed = findings["optim.decayed_parameters"]
    assert (decayed.severity, decayed.align) == ("medium", "peft")
    assert (decayed.a, decayed.b) == (LORA_R8_ALL_LINEAR, FULL - NORM_WEIGHTS)
    assert decayed.evidence["a"]["exempt_params"] == 0
    assert decayed.evidence["b"]["exempt_params"] == NORM_WEIGHTS
    assert decayed.evidence["b"]["exempt_kinds"] == [
        "input_layernorm.weight",
        "norm.weight",
        "post_attention_layernorm.weight",
    ]


def test_decay_split_is_cached(llmhalluc):
    key = llmhalluc.model_facts.key
    before = decay_split.cache_info().hits
    decay_split(key, None)
    decay_split(key, None)
    assert decay_split.cache_info().hits >= before + 1


def test_aligning_optim_removes_the_findings():
    a = resolve_recipe("revise", ["training.adam_beta2=0.95", "training.neftune_noise_alpha=5"])
    b = resolve_recipe("revise")
    result = align(a, b, "optim")
    aligned = [materialize(r, "synthetic:200:40", 1, 8) for r in (result.aligned_a, result.aligned_b)]
    assert probe(*aligned, CTX).findings == []


def test_the_model_configs_own_dropout_fields_are_compared_and_aligned_by_model(revise):
    from model_fixtures import overrides

    phi3 = make("revise", overrides("phi3"), samples=8)
    [finding] = [f for f in probe(revise, phi3, CTX).findings if f.key == "optim.dropout"]
    assert (finding.severity, finding.align) == ("low", "model")
    assert finding.b == {
        "attention_dropout": 0.0,
        "embd_pdrop": 0.0,
        "resid_pdrop": 0.1,
        "lora_dropout": None,
    }
    assert "resid_pdrop 0.1" in finding.summary


def test_an_unknown_model_config_gives_no_dropout_claim(revise):
    unknown = make("revise", ["model.revision=refs/pr/7"], samples=8)
    assert measure(unknown)["dropout"] == {"attention_dropout": None, "lora_dropout": None}
    assert probe(revise, unknown, CTX).findings == []
