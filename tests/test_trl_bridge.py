"""materialize() tokenizes exactly as a plain trl.SFTTrainer does: same input_ids, same labels."""

from __future__ import annotations

import contextlib
import dataclasses

import datasets
import pytest
import torch
from conftest import collator, make, tokenized
from transformers import LlamaConfig, LlamaForCausalLM
from trl import SFTTrainer


def plain_trainer_dataset(m, rows, tmp_path):
    """Build SFTTrainer the ordinary way (model, args, train_dataset, processing_class) and return its dataset."""
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(m.tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )
    args = dataclasses.replace(
        m.sft_config, output_dir=str(tmp_path), report_to=[], push_to_hub=False, bf16=False
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        eval_dataset=datasets.Dataset.from_list(m.eval_rows[:4]),
        processing_class=m.tokenizer,
        peft_config=m.lora_config,
    )
    return trainer.train_dataset, trainer.data_collator


@pytest.mark.parametrize("name", ["llmhalluc", "revise"])
def test_materialized_tokens_equal_plain_sft_trainer(name, tmp_path):
    m = make(name, samples=24)
    trainer_dataset, trainer_collator = plain_trainer_dataset(m, m.train_rows[:24], tmp_path)
    assert trainer_dataset["input_ids"] == tokenized(m)["input_ids"]
    assert trainer_dataset["labels"] == tokenized(m)["labels"]
    batch_ours = collator(m)(
        [dict(input_ids=r["input_ids"], labels=r["labels"]) for r in tokenized(m).select(range(4))]
    )
    batch_trl = trainer_collator(
        [dict(input_ids=r["input_ids"], labels=r["labels"]) for r in trainer_dataset.select(range(4))]
    )
    assert torch.equal(batch_ours["input_ids"], batch_trl["input_ids"])
    assert torch.equal(batch_ours["labels"], batch_trl["labels"])


def test_completion_only_default_masks_prompt_for_llmhalluc():
    m = make("llmhalluc", samples=4)
    labels = tokenized(m)[0]["labels"]
    assert m.sft_config.completion_only_loss is None
    assert labels[0] == -100
    assert labels[-1] == m.tokenizer.eos_token_id


def test_revise_trains_every_token():
    m = make("revise", samples=4)
    row = tokenized(m)[0]
    assert m.sft_config.completion_only_loss is False
    assert row["labels"] == row["input_ids"]


def test_in_memory_fingerprints_change_nothing_trl_prepares():
    """TRL's preparation of messages rows on the Qwen tokenizer (no fast path), with datasets' fingerprints hashed
    and with random ones: the same input_ids and labels."""
    from model_fixtures import FAMILIES
    from transformers import AutoTokenizer
    from trl import SFTConfig

    import parity.trl_bridge as bridge

    tokenizer = AutoTokenizer.from_pretrained(FAMILIES["qwen"].tokenizer_dir())
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i}+2?"},
                {"role": "assistant", "content": str(i + 2)},
            ]
        }
        for i in range(4)
    ]
    config = SFTConfig(output_dir="unused", use_cpu=True, report_to=[])
    fast = bridge.prepare_with_trl(rows, tokenizer, config)
    with_hashes = bridge.in_memory_fingerprints
    try:
        bridge.in_memory_fingerprints = contextlib.nullcontext
        hashed = bridge.prepare_with_trl(rows, tokenizer, config)
    finally:
        bridge.in_memory_fingerprints = with_hashes
    assert fast["input_ids"] == hashed["input_ids"] and fast["labels"] == hashed["labels"]
    assert fast["input_ids"][0][:3] == [151644, 872, 198]  # <|im_start|> user \n
