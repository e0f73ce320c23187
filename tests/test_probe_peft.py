"""Tests for the peft probe: method, LoRA fields and trainable parameters on the real Llama-3.2-1B architecture."""

from __future__ import annotations

import pytest
from conftest import by_key, make

from parity.probes import ProbeContext
from parity.probes.peft import count_parameters, probe

CTX = ProbeContext()
FULL = 1_235_814_400
LORA_R8_ALL_LINEAR = 5_636_096
"""16 layers x r=8 x [q 2048+2048, k 2048+512, v 2048+512, o 2048+2048, gate 2048+8192, up 2048+8192, down 8192+2048]."""
LORA_AS_REVISE = [
    "peft.method=lora",
    "peft.lora.r=8",
    "peft.lora.lora_alpha=16",
    "peft.lora.lora_dropout=0.05",
    "peft.lora.target_modules=all-linear",
    "peft.lora.task_type=CAUSAL_LM",
]


@pytest.fixture(scope="module")
def llmhalluc(synthetic_pair):
    return synthetic_pair[0]


def test_lora_count_is_the_layer_arithmetic():
    assert LORA_R8_ALL_LINEAR == 16 * 8 * (4096 + 2560 + 2560 + 4096 + 10240 + 10240 + 10240)


def test_real_pair_method_finding(real_pair):
    result = probe(*real_pair, CTX)
    [finding] = result.findings
    assert (finding.key, finding.severity, finding.align, finding.a, finding.b) == (
        "peft.method",
        "high",
        "peft",
        "lora",
        "none",
    )
    assert finding.evidence["trainable_params"] == [LORA_R8_ALL_LINEAR, FULL]
    assert finding.evidence["trainable_fraction"] == [
        round(LORA_R8_ALL_LINEAR / (FULL + LORA_R8_ALL_LINEAR), 6),
        1.0,
    ]
    assert "5,636,096" in finding.summary and "1,235,814,400" in finding.summary


def test_real_pair_values(real_pair):
    values = probe(*real_pair, CTX).values
    a, b = values["a"], values["b"]
    assert (b["method"], b["trainable_params"], b["total_params"]) == ("full", FULL, FULL)
    assert (a["method"], a["trainable_params"], a["total_params"]) == (
        "lora",
        LORA_R8_ALL_LINEAR,
        FULL + LORA_R8_ALL_LINEAR,
    )
    assert a["targeted_modules"] == 112
    assert a["target_names"] == ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    assert a["lora"]["r"] == 8 and a["lora"]["target_modules"] == "all-linear"


def test_identical_pairs_have_no_findings(revise, llmhalluc):
    assert probe(revise, revise, CTX).findings == []
    assert probe(llmhalluc, llmhalluc, CTX).findings == []


def test_revise_with_lora_differs_only_in_method(revise, llmhalluc):
    lora_revise = make("revise", LORA_AS_REVISE, samples=16)
    [finding] = probe(revise, lora_revise, CTX).findings
    assert (finding.key, finding.a, finding.b) == ("peft.method", "none", "lora")
    assert probe(llmhalluc, lora_revise, CTX).findings == []


@pytest.mark.parametrize(
    ("override", "key", "severity", "trainable"),
    [
        ("peft.lora.r=16", "peft.lora.r", "high", 2 * LORA_R8_ALL_LINEAR),
        ("peft.lora.lora_alpha=32", "peft.lora.lora_alpha", "medium", LORA_R8_ALL_LINEAR),
        ("peft.lora.lora_dropout=0.1", "peft.lora.lora_dropout", "medium", LORA_R8_ALL_LINEAR),
        (
            "peft.lora.target_modules=[q_proj, v_proj]",
            "peft.lora.target_modules",
            "high",
            16 * 8 * (4096 + 2560),
        ),
    ],
)
def test_one_lora_field(llmhalluc, override, key, severity, trainable):
    result = probe(llmhalluc, make("llmhalluc", [override], samples=16), CTX)
    [finding] = result.findings
    assert (finding.key, finding.severity, finding.align) == (key, severity, "peft")
    assert result.values["b"]["trainable_params"] == trainable


def test_targets_spelled_differently_but_resolving_the_same_are_info(llmhalluc):
    explicit = "peft.lora.target_modules=[q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj]"
    [finding] = probe(llmhalluc, make("llmhalluc", [explicit], samples=16), CTX).findings
    assert (finding.key, finding.severity) == ("peft.lora.target_modules", "info")


def test_counts_are_cached(llmhalluc):
    key = llmhalluc.model_facts.key
    before = count_parameters.cache_info().hits
    count_parameters(key, None)
    count_parameters(key, None)
    assert count_parameters.cache_info().hits >= before + 1


QWEN_LORA_R8_ALL_LINEAR = 5_046_272
"""28 layers x r=8 x [q 1024+2048, k 1024+1024, v 1024+1024, o 2048+1024, gate/up/down 3 x (1024+3072)]."""


def test_lora_on_another_architecture_counts_its_own_parameters():
    from model_fixtures import overrides

    qwen = make("llmhalluc", overrides("qwen"), samples=8)
    result = probe(qwen, make("llmhalluc", [*overrides("qwen"), "peft.lora.r=16"], samples=8), CTX)
    [finding] = result.findings
    assert (finding.key, finding.severity) == ("peft.lora.r", "high")
    assert finding.evidence["trainable_params"] == [QWEN_LORA_R8_ALL_LINEAR, 2 * QWEN_LORA_R8_ALL_LINEAR]
    assert result.values["a"]["total_params"] == 596_049_920 + QWEN_LORA_R8_ALL_LINEAR
    assert result.values["a"]["architecture"].endswith("qwen3-chatml")


def test_targets_the_model_lacks_are_a_finding_not_an_abort(llmhalluc):
    """Phi-3's fused projection names on Llama: peft refuses the LoraConfig (training would stop at
    get_peft_model); the diff reports it and goes on."""
    fused = make("llmhalluc", ["peft.lora.target_modules=[qkv_proj, gate_up_proj]"], samples=8)
    findings = by_key(probe(llmhalluc, fused, CTX))
    assert sorted(findings) == ["peft.lora.target_modules", "peft.refused"]
    refused = findings["peft.refused"]
    assert (refused.severity, refused.align, refused.a) == ("high", "peft", None)
    assert refused.b.startswith("Target modules") and "qkv_proj" in refused.b
    assert "LlamaForCausalLM" in refused.summary
    assert findings["peft.lora.target_modules"].evidence["trainable_params"] == [LORA_R8_ALL_LINEAR, None]


def test_target_parameters_none_and_empty_are_the_same_setting(llmhalluc):
    assert (
        probe(llmhalluc, make("llmhalluc", ["peft.lora.target_parameters=[]"], samples=8), CTX).findings == []
    )


def test_a_trained_set_field_that_trains_the_same_parameters_is_low(llmhalluc):
    [finding] = probe(
        llmhalluc, make("llmhalluc", ["peft.lora.exclude_modules=[lm_head]"], samples=8), CTX
    ).findings
    assert (finding.key, finding.severity) == ("peft.lora.exclude_modules", "low")
    assert finding.evidence["trainable_params"] == [LORA_R8_ALL_LINEAR, LORA_R8_ALL_LINEAR]
