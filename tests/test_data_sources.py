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


def test_synthetic_defaults_are_the_tasks_own_sizes():
    assert parse_synthetic("synthetic") == (None, None, 0)
    assert parse_synthetic("synthetic:400:80:3") == (400, 80, 3)
    assert parse_synthetic("synthetic:1000") == (1000, None, 0)
    revise = resolve_recipe("revise")
    assert [len(load_raw(spec, revise).test) for spec in ("synthetic:1000", "synthetic:0:0")] == [177, 0]
    full = load_raw("synthetic", revise)
    assert (len(full.train), len(full.test), full.task) == (7473, 1319, "gsm8k")


def test_synthetic_same_seed_same_rows_different_seed_different_rows():
    revise = resolve_recipe("revise")
    first = load_raw("synthetic:50:10:1", revise)
    again = load_raw("synthetic:50:10:1", revise)
    other = load_raw("synthetic:50:10:2", revise)
    assert first.train == again.train and first.test == again.test
    assert first.train != other.train
    assert first.source == "synthetic gsm8k (seed=1)"


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
        ({"train.jsonl": "[1, 2]\n"}, "train.jsonl:1: expected a JSON object with the row's columns"),
        ({"train.jsonl": '{"question": "q", "answer": "a"}\n', "test.jsonl": "\n"}, "test.jsonl: no rows"),
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
