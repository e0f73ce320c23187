"""The batched fast path is bit-identical to TRL's own dataset preparation."""

from __future__ import annotations

import pytest
from conftest import REAL_GSM8K, make, needs_real_gsm8k

from parity.fast_tokenize import completion_start, fully_masked, supports_fast_path
from parity.trl_bridge import prepare_dataset, prepare_with_trl


def assert_identical(m, rows):
    fast = prepare_dataset(rows, m.tokenizer, m.sft_config, engine="auto")
    trl = prepare_with_trl(rows, m.tokenizer, m.sft_config)
    assert supports_fast_path(rows, m.sft_config)
    assert fast["input_ids"] == trl["input_ids"]
    assert fast["labels"] == trl["labels"]
    return fast


@needs_real_gsm8k
@pytest.mark.parametrize("name", ["llmhalluc", "revise"])
def test_identical_on_real_gsm8k(name):
    m = make(name, data=str(REAL_GSM8K), samples=1)
    fast = assert_identical(m, m.train_rows[:300])
    assert len(fast) == 300


@pytest.mark.parametrize(
    "overrides",
    [
        ["training.completion_only_loss=true"],
        ["training.max_length=40"],
        ["training.max_length=40", "training.truncation_mode=keep_end"],
        ["training.max_length=60", "training.completion_only_loss=true"],
        [
            "template.chat_template={{ messages[0]['content'] }}{% if add_generation_prompt %}A:{% endif %}{{ messages[-1]['content'] }}"
        ],
    ],
)
def test_identical_under_config_variants(overrides):
    m = make("revise", overrides, samples=1)
    assert_identical(m, m.train_rows[:80])


def test_truncation_that_leaves_no_loss_drops_the_row_like_trl():
    m = make("llmhalluc", ["training.max_length=20"], samples=1)
    fast = assert_identical(m, m.train_rows[:20])
    assert len(fast) == 0  # the prompt alone fills 20 tokens: every row is fully masked and dropped


def test_packing_falls_back_to_trl():
    m = make("revise", ["training.packing=true"], samples=1)
    assert not supports_fast_path(m.train_rows[:4], m.sft_config)


@pytest.mark.parametrize("name", ["llmhalluc", "revise"])
def test_completion_starts_equal_the_measured_prompt_lengths(name):
    from parity.probes.loss_mask import prompt_lengths

    m = make(name, samples=40)
    rows = m.train_rows[:40]
    measured = prompt_lengths(m, rows, m.prepared.input_ids)
    assert m.prepared.completion_starts == measured
    assert all(start > 5 for start in measured)


def test_direct_encoding_ignores_padding_and_truncation_left_by_an_earlier_call():
    from parity.fast_tokenize import encode_texts

    tokenizer = make("revise", samples=1).tokenizer
    texts = ["a b c", "a"]
    assert encode_texts(tokenizer, texts) == [[64, 293, 272], [64]]
    tokenizer(texts, padding=True)  # a left-padded generation batch leaves padding set on the backend
    assert tokenizer.backend_tokenizer.padding is not None
    assert encode_texts(tokenizer, texts) == [[64, 293, 272], [64]]
    tokenizer(texts, truncation=True, max_length=2)
    assert encode_texts(tokenizer, texts) == [[64, 293, 272], [64]]


@pytest.mark.parametrize(
    ("labels", "dropped"),
    [([], True), ([-100, -100], True), ([-100, 5], False), ([5, -100], False), ([7], False)],
)
def test_fully_masked_rows_are_the_ones_trl_drops(labels, dropped):
    assert fully_masked(labels) is dropped
    assert fully_masked(labels) is (labels.count(-100) == len(labels))


@pytest.mark.parametrize(
    ("prompt_ids", "ids", "start"),
    [
        ([1, 2, 3], [1, 2, 3, 4, 5], 3),  # the prompt is a prefix: the usual case
        ([1, 2, 3], [1, 2, 9, 4], 2),  # the prompt's last token merged with the completion's first
        ([1, 2, 3], [1, 2], 2),  # the prompt is longer than the whole row
        ([], [1, 2], 0),
        ([7], [1, 2], 0),
    ],
)
def test_completion_start_is_trls_common_prefix_length(prompt_ids, ids, start):
    from trl.data_utils import common_prefix_length

    assert completion_start(prompt_ids, ids) == start == common_prefix_length(prompt_ids, ids)
