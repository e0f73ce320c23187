"""Data sources (synthetic, local JSONL, hub) and each recipe's own preprocessing and split rule."""

from __future__ import annotations

import json
import re

import pytest
from conftest import make

from parity.data.pipeline import apply_steps, split_rows
from parity.data.sources import load_raw, parse_synthetic
from parity.errors import ParityError
from parity.registry import resolve_recipe


def test_synthetic_defaults_mirror_gsm8k_sizes():
    assert parse_synthetic("synthetic") == (7473, 1319, 0)
    assert parse_synthetic("synthetic:400:80:3") == (400, 80, 3)
    assert parse_synthetic("synthetic:1000") == (1000, 177, 0)


def test_synthetic_same_seed_same_rows_different_seed_different_rows():
    revise = resolve_recipe("revise")
    first = load_raw("synthetic:50:10:1", revise)
    again = load_raw("synthetic:50:10:1", revise)
    other = load_raw("synthetic:50:10:2", revise)
    assert first.train == again.train and first.test == again.test
    assert first.train != other.train
    assert first.source == "synthetic(seed=1)"


def test_both_recipes_preprocess_synthetic_rows():
    raw = load_raw("synthetic:200:40", resolve_recipe("revise"))
    revise = split_rows(resolve_recipe("revise"), raw)
    llmhalluc = split_rows(resolve_recipe("llmhalluc"), raw)
    assert len(revise.train) == 180 and len(revise.eval) == 20
    assert len(llmhalluc.train) == 200 and len(llmhalluc.eval) == 40
    assert all("<<" not in r["answer"] and "####" not in r["answer"] for r in revise.train)
    assert all(re.search(r"\nThe answer is: -?[\d.]+$", r["answer"]) for r in revise.train)
    assert all(re.search(r"<<[^>]+>>", r["answer"]) for r in llmhalluc.train)
    assert all(re.search(r"\n#### -?[\d.]+$", r["answer"]) for r in llmhalluc.train)


def test_revise_steps_on_a_gsm8k_answer():
    steps = resolve_recipe("revise").data.preprocess
    answer = "Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72"
    assert apply_steps(answer, steps) == "Natalia sold 48/2 = 24 clips.\nThe answer is: 72"


def test_local_dir_is_read(tmp_path):
    rows = [{"question": "What is 2+3?", "answer": "2+3 = <<2+3=5>>5\n#### 5"}]
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    raw = load_raw(str(tmp_path), resolve_recipe("revise"))
    assert raw.train == rows and raw.source == f"local:{tmp_path.name}"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "missing"),
        ({"train.jsonl": "not json\n", "test.jsonl": "{}\n"}, "train.jsonl:1: not valid JSON"),
        (
            {"train.jsonl": '{"question": 1}\n', "test.jsonl": "{}\n"},
            "expected an object with string 'question' and 'answer'",
        ),
    ],
)
def test_bad_local_dir_is_a_clear_error(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ParityError, match=re.escape(message)):
        load_raw(str(tmp_path), resolve_recipe("revise"))


def test_not_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ParityError, match="not a directory"):
        load_raw(str(tmp_path / "nope"), resolve_recipe("revise"))


def test_hub_unreachable_is_one_line_exit_2(monkeypatch, capsys):
    from parity.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-parity-hf-home")
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    import parity.materialize as materialize

    monkeypatch.setattr(materialize, "_raw_cache", {})
    with pytest.raises(ParityError, match="--data hub: cannot load 'openai/gsm8k'"):
        make("revise", data="hub")
    assert main(["diff", "--a", "revise", "--b", "revise", "--data", "hub"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("parity: error: --data hub: cannot load")
