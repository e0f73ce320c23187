"""Throughput and MFU arithmetic (`parity.run.throughput`) with Llama-3.2-1B's shape, the GPU load settings a
`--model` with real weights gets (bf16, flash-attn only where it is installed), and the throughput a CPU leg records."""

from __future__ import annotations

import pytest

from parity.run.model import attention_for
from parity.run.throughput import ModelShape, flops_per_token, peak_tflops, throughput

LLAMA_1B = ModelShape(parameters=1_235_814_400, trainable=1_235_814_400, layers=16, hidden=2048)
LORA_Q_V_R8 = 851_968
"""LoRA r=8 on q_proj and v_proj of Llama-3.2-1B: 16 x 8 x ((2048 + 2048) + (2048 + 512))."""


def test_full_fine_tuning_costs_6n_plus_the_attention_term():
    assert flops_per_token(LLAMA_1B, 512) == 6 * 1_235_814_400 + 12 * 16 * 2048 * 512 == 7_616_212_992


def test_lora_skips_the_frozen_weights_gradients():
    lora = ModelShape(1_235_814_400 + LORA_Q_V_R8, LORA_Q_V_R8, 16, 2048)
    assert flops_per_token(lora, 0) == 4 * (1_235_814_400 + LORA_Q_V_R8) + 2 * LORA_Q_V_R8 == 4_948_369_408


def test_mfu_on_one_h100_and_on_two_pcie_cards():
    one = throughput(200_000, 400, 10.0, LLAMA_1B, 1, "NVIDIA H100 80GB HBM3")
    assert one["tokens_per_second"] == 20_000.0 and one["mean_sequence_length"] == 500.0
    assert one["model_flops_per_token"] == 6 * 1_235_814_400 + 12 * 16 * 2048 * 500
    assert one["peak_tflops_per_device"] == 989.4
    assert one["mfu"] == round(20_000 * one["model_flops_per_token"] / 989.4e12, 4) == 0.1539
    two = throughput(400_000, 800, 10.0, LLAMA_1B, 2, "NVIDIA H100 PCIe")
    assert two["peak_tflops_per_device"] == 756.0
    assert two["mfu"] == round(40_000 * two["model_flops_per_token"] / (2 * 756e12), 4) == 0.2014


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H200", 989.4),
        ("NVIDIA A100-SXM4-80GB", 312.0),
        ("NVIDIA L4", 121.0),
        ("Tesla T4", None),
        (None, None),
    ],
)
def test_peak_by_device_name(name, peak):
    assert peak_tflops(name) == peak


def test_cpu_has_tokens_per_second_and_no_mfu():
    cpu = throughput(1_000, 10, 4.0, LLAMA_1B)
    assert (cpu["tokens_per_second"], cpu["device"], cpu["mfu"]) == (250.0, "cpu", None)
    assert throughput(0, 0, 0.0, LLAMA_1B)["tokens_per_second"] is None


def test_gpu_attention_is_flash_only_where_it_is_installed(monkeypatch):
    import importlib.util

    assert attention_for("flash_attention_2", on_gpu=False) == (
        "sdpa",
        "attention: recipe asks for flash_attention_2; on CPU, using sdpa",
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert attention_for("flash_attention_2", on_gpu=True) == (
        "sdpa",
        "attention: recipe asks for flash_attention_2; flash_attn is not installed, using sdpa",
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert attention_for("flash_attention_2", on_gpu=True) == ("flash_attention_2", None)
    assert attention_for(None, on_gpu=True) == (None, None)


def test_a_real_weights_leg_loads_the_recipes_bf16_and_flash_attention_on_a_gpu(monkeypatch):
    import importlib.util

    import torch

    from parity.registry import resolve_recipe
    from parity.run.model import load_kwargs

    revise, llmhalluc = resolve_recipe("revise"), resolve_recipe("llmhalluc")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())
    assert load_kwargs(revise, on_gpu=True, tiny=False) == (
        {"attn_implementation": "flash_attention_2", "dtype": torch.bfloat16},
        [],
    )
    assert load_kwargs(llmhalluc, on_gpu=True, tiny=False) == ({"dtype": torch.bfloat16}, [])
    assert load_kwargs(revise, on_gpu=False, tiny=False) == (
        {"attn_implementation": "sdpa", "dtype": torch.float32},
        [
            "attention: recipe asks for flash_attention_2; on CPU, using sdpa",
            "dtype: recipe loads bfloat16; float32 on CPU",
        ],
    )
    assert load_kwargs(revise, on_gpu=True, tiny=True) == ({"dtype": torch.float32}, [])


def test_random_real_architecture_is_llama_3_2_1b_with_the_same_weights_from_the_seed():
    import torch

    from parity.models import table_config
    from parity.run.model import RANDOM_ARCHITECTURES, random_model

    config = table_config(RANDOM_ARCHITECTURES["random-llama-3.2-1b"], "sdpa")
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (2048, 16, 128256)
    assert config._attn_implementation == "sdpa"
    small = table_config("meta-llama/Llama-3.2-1B", "sdpa")
    small.update({"num_hidden_layers": 1, "hidden_size": 64, "intermediate_size": 128, "vocab_size": 512})
    small.update({"num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16})
    one, two = random_model(small, 7, torch.bfloat16), random_model(small, 7, torch.bfloat16)
    other = random_model(small, 8, torch.bfloat16)
    weight = "model.layers.0.self_attn.q_proj.weight"
    assert one.state_dict()[weight].dtype == torch.bfloat16
    assert torch.equal(one.state_dict()[weight], two.state_dict()[weight])
    assert not torch.equal(one.state_dict()[weight], other.state_dict()[weight])


def test_random_model_flag_is_accepted_by_run_and_bisect():
    from typer.testing import CliRunner

    from parity.cli import app

    for command in ("run", "bisect"):
        out = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).output
        assert "'random-llama-3.2-1b'" in out


def _summary(mfu: float | None) -> dict:
    def run(tokens_per_second: float) -> dict:
        return {
            "steps": 300,
            "batch": {"global_batch": 32, "micro_batch": 8, "accumulation": 4, "processes": 1},
            "tokens_seen": 1_000_000,
            "final_train_loss": 2.0,
            "final_eval_loss": None,
            "final_shared_eval_loss": 2.1,
            "steps_per_second": 1.5,
            "throughput": {"tokens_per_second": tokens_per_second, "mfu": mfu},
        }

    return {"a": "llmhalluc", "b": "revise", "runs": {"a": run(21000.0), "b": run(9000.0)}, "generation": {}}


def test_run_table_has_tokens_per_second_and_mfu_only_where_measured():
    from parity.run.report import metrics_rows

    rows = {row[0]: row[1:] for row in metrics_rows(_summary(0.1539))}
    assert rows["train tokens / s"] == [21000.0, 9000.0]
    assert rows["model FLOPs utilization (bf16 peak)"] == [0.1539, 0.1539]
    cpu = {row[0]: row[1:] for row in metrics_rows(_summary(None))}
    assert "model FLOPs utilization (bf16 peak)" not in cpu


def test_bisect_and_run_pass_the_random_architecture_to_every_leg_as_real_weights(tmp_path):
    from parity.bisect.runs import RunCache
    from parity.run.options import RunOptions
    from parity.run.train import leg_spec

    opts = RunOptions(model="random-llama-3.2-1b", max_steps=2).resolved()
    assert opts.model == "random-llama-3.2-1b"
    cache = RunCache("llmhalluc", "revise", opts, tmp_path, [], [])
    assert cache.prepare_model([]) == "random-llama-3.2-1b"
    assert not (tmp_path / f"init-model-random-llama-3.2-1b-{cache.hash}").exists()
    spec = leg_spec(
        "a", tmp_path, tmp_path / "a.yaml", opts, cache.model_source, opts.model in ("tiny", "proxy")
    )
    assert (spec.model_source, spec.tiny, spec.run_options().seed) == ("random-llama-3.2-1b", False, 0)
