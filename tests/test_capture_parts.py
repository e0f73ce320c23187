"""Pieces of `parity capture` that need no subprocess: options, the reader's errors, the seeded hub cache,
the stub modules served for `--stub`, the cache key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.capture.cache import cache_key
from parity.capture.hubcache import BUILTIN_CONFIGS, SNAPSHOT, seed_hub_cache
from parity.capture.options import CaptureOptions, parse_pairs, validate
from parity.capture.reader import load_capture
from parity.capture.runner import HOOK_DIR
from parity.errors import ParityError
from parity.models import table_config


def test_pairs_parse_and_a_malformed_one_names_its_flag():
    assert parse_pairs(["a/b=/x", "K=v=w"], "--data") == {"a/b": "/x", "K": "v=w"}
    with pytest.raises(ParityError, match="--data expects NAME=VALUE, got 'oops'"):
        parse_pairs(["oops"], "--data")


def test_out_inside_the_checkout_is_refused(tmp_path):
    options = CaptureOptions(checkout=tmp_path, out=tmp_path / "cap", command=("true",))
    with pytest.raises(ParityError, match="inside the checkout"):
        validate(options)


def test_reader_errors_are_one_clear_line(tmp_path):
    with pytest.raises(ParityError, match="not a directory"):
        load_capture(tmp_path / "absent")
    with pytest.raises(ParityError, match="missing manifest.json, training_args.json"):
        load_capture(tmp_path)
    for name in ("manifest.json", "training_args.json", "collator.json", "model.json"):
        (tmp_path / name).write_text("{}")
    with pytest.raises(ParityError, match=r"manifest.json has no valid schema_version \(None\)"):
        load_capture(tmp_path)
    (tmp_path / "manifest.json").write_text('{"schema_version": 99}')
    with pytest.raises(
        ParityError, match=r"written by a newer parity \(schema_version 99.*\); upgrade parity$"
    ):
        load_capture(tmp_path)
    (tmp_path / "manifest.json").write_text('{"schema_version": 1}')
    with pytest.raises(ParityError, match=r"written by an older parity .*capture it again$"):
        load_capture(tmp_path)
    (tmp_path / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ParityError, match="manifest.json must be a JSON object, not list"):
        load_capture(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ParityError, match="manifest.json is not valid JSON"):
        load_capture(tmp_path)


def test_builtin_llama_config_is_the_architecture_parity_measures():
    published = BUILTIN_CONFIGS["meta-llama/Llama-3.2-1B"]
    config = table_config("meta-llama/Llama-3.2-1B")
    for key in (
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "intermediate_size",
        "vocab_size",
        "tie_word_embeddings",
        "max_position_embeddings",
    ):
        assert published[key] == getattr(config, key), key


def test_seeded_cache_serves_the_tokenizer_offline_under_both_spellings(tmp_path, monkeypatch):
    served = seed_hub_cache(tmp_path, {})
    assert set(served) == set(BUILTIN_CONFIGS)
    for spelling in ("meta-llama/Llama-3.2-1B", "meta-llama/llama-3.2-1b"):
        folder = tmp_path / "hub" / ("models--" + spelling.replace("/", "--"))
        assert (folder / "refs" / "main").read_text() == SNAPSHOT
        snapshot = folder / "snapshots" / SNAPSHOT
        assert {"config.json", "tokenizer.json", "tokenizer_config.json"} <= {
            p.name for p in snapshot.iterdir()
        }
        assert json.loads((snapshot / "config.json").read_text())["num_hidden_layers"] == 16


def test_tokenizer_flag_overrides_and_links_no_weights(tmp_path):
    source = tmp_path / "mine"
    source.mkdir()
    (source / "config.json").write_text("{}")
    (source / "tokenizer.json").write_text("{}")
    (source / "model.safetensors").write_text("weights")
    served = seed_hub_cache(tmp_path / "hf", {"me/Model": source})
    assert served["me/Model"]["files"] == ["config.json", "tokenizer.json"]
    assert (tmp_path / "hf" / "hub" / "models--me--model").is_dir()


def test_stub_modules_answer_any_attribute_with_a_usable_dummy(monkeypatch):
    monkeypatch.syspath_prepend(str(HOOK_DIR))
    from parity_capture_hook.imports import StubModule

    vllm = StubModule("vllm")
    llm_class = vllm.LLM
    assert isinstance(llm_class, type) and llm_class.__qualname__ == "vllm.LLM"
    assert vllm.LLM is llm_class

    class Generator(llm_class):  # a recipe subclassing a stubbed class still imports
        pass

    generator = Generator("model", tensor_parallel_size=2)
    assert list(generator.generate([])) == []
    assert (vllm.SamplingParams | None) is vllm.SamplingParams  # annotations like `SamplingParams | None`
    assert callable(vllm.remote(num_gpus=1))


def test_cache_key_changes_with_the_checkout_and_the_command(tmp_path):
    (tmp_path / "train.py").write_text("print(1)\n")
    options = CaptureOptions(checkout=tmp_path, out=tmp_path.parent / "cap", command=("python", "train.py"))
    first = cache_key(options)
    assert cache_key(options) == first
    assert cache_key(CaptureOptions(checkout=tmp_path, out=options.out, command=("python", "x.py"))) != first
    (tmp_path / "train.py").write_text("print(2)\n")
    assert cache_key(options) != first
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    assert cache_key(options) == cache_key(options)
    assert Path(HOOK_DIR / "sitecustomize.py").is_file()


@pytest.mark.parametrize(
    ("fields", "expected", "reason"),
    [
        ({"max_seq_length": 2048}, 2048, "the capture's SFTTrainer truncates at max_seq_length"),
        ({"max_seq_length": 2048, "max_length": 1024}, None, "SFTTrainer truncates at max_length (1024)"),
    ],
)
def test_a_captured_max_seq_length_is_the_truncation_length_only_where_trl_reads_it(fields, expected, reason):
    """unsloth 2669: trl <= 0.15 truncates at max_seq_length; from 0.16 at max_length, which a max_seq_length set on
    the constructed config never reaches (unsloth's trainer code), so the capture truncated at max_length's 1024."""
    from types import SimpleNamespace

    from parity.capture.reader import TrainingArgsRecord
    from parity.capture.recipe import training_section

    args = TrainingArgsRecord(
        "trl.trainer.sft_config.SFTConfig",
        {"output_dir": "out", **fields},
        {"max_seq_length": {"value": 2048, "default": None}},
        "SFTConfig()",
    )
    training, left_out = training_section(SimpleNamespace(training_args=args))
    assert training.get("max_length") == expected
    assert "max_seq_length" not in training and reason in left_out["max_seq_length"]
