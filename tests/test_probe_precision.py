"""Tests for the precision probe: flags, load dtype, attention kernel and DeepSpeed at the world size."""

from __future__ import annotations

import pytest
from conftest import make

from parity.probes import ProbeContext
from parity.probes.precision import measure, probe

CTX = ProbeContext()


def test_real_pair_only_the_attention_kernel_differs(real_pair):
    result = probe(*real_pair, CTX)
    [finding] = result.findings
    assert (finding.key, finding.severity, finding.align, finding.a, finding.b) == (
        "model.attn_implementation",
        "medium",
        "precision",
        None,
        "flash_attention_2",
    )
    assert finding.summary == "attention kernel: llmhalluc sdpa (library default) vs revise flash_attention_2"
    assert (finding.evidence["a"]["effective"], finding.evidence["b"]["effective"]) == (
        "sdpa",
        "flash_attention_2",
    )


def test_real_pair_values(real_pair):
    values = probe(*real_pair, CTX).values
    a, b = values["a"], values["b"]
    assert values["library"]["default_load_dtype"] == "auto"
    assert values["library"]["default_attn_implementation"] == "sdpa"
    assert (
        a["torch_dtype"]
        == b["torch_dtype"]
        == {
            "requested": "bfloat16",
            "effective": "bfloat16",
            "label": "bfloat16",
        }
    )
    assert a["flags"]["bf16"] is b["flags"]["bf16"] is True
    assert a["attn_implementation"] == {
        "requested": None,
        "effective": "sdpa",
        "label": "sdpa (library default)",
    }
    assert b["attn_implementation"]["effective"] == "flash_attention_2"
    assert [row["deepspeed_stage"] for row in a["deepspeed_by_world_size"]] == [None, 0, 0, 0]
    assert a["deepspeed_config"] is None


def test_deepspeed_differs_at_world_size_8():
    a, b = make("llmhalluc", world_size=8, samples=16), make("revise", world_size=8, samples=16)
    keys = {f.key: f for f in probe(a, b, CTX).findings}
    ds = keys["launch.deepspeed_config"]
    assert (ds.severity, ds.align, ds.a, ds.b) == (
        "medium",
        "precision",
        "configs/deepspeed/ds_z0_config.json",
        None,
    )
    assert ds.evidence["stage"] == [0, None]


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, revise, CTX).findings == []


@pytest.mark.parametrize(
    ("override", "key", "severity"),
    [
        ("training.bf16=false", "training.bf16", "medium"),
        ("training.gradient_checkpointing=false", "training.gradient_checkpointing", "medium"),
        ("model.torch_dtype=float32", "model.torch_dtype", "medium"),
        ("model.attn_implementation=sdpa", "model.attn_implementation", "medium"),
        ("model.attn_implementation=flash_attention_3", "model.attn_implementation", "low"),
    ],
)
def test_one_field_pairs(revise, override, key, severity):
    [finding] = probe(revise, make("revise", [override], samples=16), CTX).findings
    assert (finding.key, finding.severity, finding.align) == (key, severity, "precision")


def test_default_attention_resolving_to_the_same_kernel_is_info():
    a = make("revise", ["model.attn_implementation=sdpa"], samples=16)
    b = make("revise", ["model.attn_implementation=null"], samples=16)
    [finding] = probe(a, b, CTX).findings
    assert (finding.key, finding.severity, finding.a, finding.b) == (
        "model.attn_implementation",
        "info",
        "sdpa",
        None,
    )


@pytest.mark.parametrize(
    ("family", "stored"), [("llama", "bfloat16"), ("qwen", "bfloat16"), ("phi3", "float32")]
)
def test_auto_dtype_loads_the_dtype_the_models_own_config_records(family, stored):
    from model_fixtures import overrides

    values = measure(
        make("revise", [*overrides(family), "model.torch_dtype=auto"], samples=8), CTX.world_sizes
    )
    assert values["torch_dtype"] == {
        "requested": "auto",
        "effective": stored,
        "label": f"auto (checkpoint dtype: {stored})",
    }
    assert values["attn_implementation"]["effective"] == "flash_attention_2"


def test_an_unknown_checkpoint_dtype_and_default_kernel_stay_unknown():
    values = measure(
        make(
            "revise", ["model.revision=refs/pr/7", "model.torch_dtype=auto", "model.attn_implementation=null"]
        ),
        CTX.world_sizes,
    )
    assert values["torch_dtype"]["effective"] is None
    assert values["torch_dtype"]["label"] == "auto (checkpoint dtype: unknown)"
    assert values["attn_implementation"] == {
        "requested": None,
        "effective": None,
        "label": "unknown (library default)",
    }
