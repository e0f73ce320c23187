"""`--model proxy`: the compact vocabulary holds every id the legs use, remapped batches are a bijection of TRL's
(same masks, lengths and positions), spare rows take a leg's extra ids, and a proxy run trains and generates."""

from __future__ import annotations

import math

import pytest
import torch

from parity.errors import ParityError
from parity.materialize import materialize
from parity.registry import resolve_recipe
from parity.run import run_pair
from parity.run.options import RunOptions
from parity.run.proxy import IGNORE, ProxyVocab, Remap, RemappingCollator, build_proxy
from parity.run.proxy_vocab import proxy_vocab
from parity.trl_bridge import build_collator

DATA = "synthetic:200:40"
REVISE = ["training.per_device_train_batch_size=2", "launch.global_batch=4", "training.max_length=48"]
LLMHALLUC = ["training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=2"]


@pytest.fixture(scope="module")
def legs():
    opts = RunOptions(data=DATA, samples=16, eval_rows=4, eval_samples=2).resolved()
    ma = materialize(resolve_recipe("llmhalluc", [*LLMHALLUC, "training.max_length=48"]), DATA, 1, 16)
    mb = materialize(resolve_recipe("revise", REVISE), DATA, 1, 16)
    return ma, mb, opts, proxy_vocab([ma, mb], opts)


def test_vocabulary_is_the_union_of_both_legs_ids_plus_specials(legs):
    ma, mb, _, vocab = legs
    tok = mb.tokenizer
    used = {i for m in (ma, mb) for row in m.prepared.input_ids[:16] for i in row}
    assert used <= set(vocab.ids)
    assert {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id} <= set(vocab.ids)
    assert list(vocab.ids) == sorted(vocab.ids)
    assert len(vocab.ids) == 285
    assert vocab.size == len(vocab.ids) + 256


def test_remapped_batch_is_a_bijection_of_trls_batch(legs):
    _, mb, _, vocab = legs
    features = [
        {"input_ids": ids, "labels": labels}
        for ids, labels in zip(mb.prepared.input_ids[:6], mb.prepared.labels[:6], strict=True)
    ]
    remap = Remap(vocab, vocab.ids)
    collator = build_collator(mb.tokenizer, mb.sft_config)
    original = collator(features)
    mapped = RemappingCollator(collator, remap)(features)
    assert mapped["input_ids"].shape == original["input_ids"].shape
    assert torch.equal(mapped["attention_mask"], original["attention_mask"])
    assert torch.equal(mapped["labels"] == IGNORE, original["labels"] == IGNORE)
    assert int((mapped["labels"] != IGNORE).sum()) == int((original["labels"] != IGNORE).sum()) > 0
    assert int(mapped["input_ids"].max()) < len(vocab.ids)
    assert torch.equal(remap.to_real(mapped["input_ids"]), original["input_ids"])
    kept = original["labels"] != IGNORE
    assert torch.equal(remap.to_real(mapped["labels"][kept]), original["labels"][kept])
    pairs = set(
        zip(original["input_ids"].flatten().tolist(), mapped["input_ids"].flatten().tolist(), strict=True)
    )
    assert len({real for real, _ in pairs}) == len({row for _, row in pairs}) == len(pairs)
    pad = mb.tokenizer.pad_token_id
    assert remap.row(pad) == vocab.ids.index(pad)


def test_ids_outside_the_vocabulary_take_spare_rows_in_id_order():
    vocab = ProxyVocab((5, 9, 20), spare=2)
    remap = Remap(vocab, [5, 9, 20, 40, 7])
    assert remap.extras == [7, 40]
    assert remap.to_proxy(torch.tensor([[40, 5, IGNORE, 7]])).tolist() == [[4, 0, IGNORE, 3]]
    assert remap.to_real(torch.tensor([3, 4, 2])).tolist() == [7, 40, 20]
    with pytest.raises(ParityError, match="not in the proxy vocabulary"):
        remap.to_proxy(torch.tensor([11]))
    with pytest.raises(ParityError, match="3 token ids are outside the proxy vocabulary"):
        Remap(vocab, [1, 2, 3])


def test_proxy_model_has_the_compact_vocabulary_and_maps_specials(legs, tmp_path):
    from transformers import AutoModelForCausalLM

    _, mb, _, vocab = legs
    directory = build_proxy(mb.tokenizer, vocab, 0, tmp_path / "proxy")
    model = AutoModelForCausalLM.from_pretrained(directory)
    assert model.get_input_embeddings().weight.shape == (vocab.size, 64)
    assert model.config.pad_token_id == vocab.ids.index(mb.tokenizer.pad_token_id)
    assert model.config.eos_token_id == vocab.ids.index(mb.tokenizer.eos_token_id)
    assert ProxyVocab.read(directory) == vocab
    assert ProxyVocab.read(tmp_path) is None


def test_proxy_run_is_a_null_test_starting_near_ln_vocab(tmp_path):
    summary = run_pair(
        "revise",
        "revise",
        None,
        set_a=[*REVISE, "training.learning_rate=0.003"],
        set_b=[*REVISE, "training.learning_rate=0.003"],
        out=tmp_path / "run",
        model="proxy",
        data=DATA,
        max_steps=3,
        samples=24,
        eval_rows=2,
        eval_samples=1,
        max_new_tokens=3,
        preflight_samples=8,
    )
    vocab = ProxyVocab.read(tmp_path / "run" / "init-model")
    assert summary.verdict == "identical"
    first = summary["runs"]["a"]["loss_curve"][0]
    assert abs(first - math.log(vocab.size)) < 0.3
    generated = summary["generation"]["a"]
    assert generated is not None
