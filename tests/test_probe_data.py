"""Tests for the `data` probe: row counts, hashes, preprocessing, eval/test overlap and annotation tokens."""

from __future__ import annotations

import pytest
from conftest import by_key, make

from parity.probes import ProbeContext
from parity.probes.data import probe

CTX = ProbeContext()


@pytest.fixture(scope="module")
def real_result(real_pair):
    return probe(*real_pair, CTX)


def test_eval_on_test_is_flagged_as_leakage_on_real_data(real_result):
    finding = by_key(real_result)["data.eval_split"]
    assert (finding.severity, finding.align) == ("high", "data")
    assert finding.a == "eval = benchmark test split"
    assert finding.evidence["a"]["eval_questions_in_test"] == 1319
    assert finding.evidence["a"]["load_best_model_at_end"] is True
    assert finding.evidence["b"]["eval_questions_in_test"] == 0
    assert "test-set leakage into checkpoint selection" in finding.summary
    assert real_result.values["a"]["test_leak_into_selection"] is True
    assert real_result.values["b"]["test_leak_into_selection"] is False


def test_row_counts_per_split_on_real_data(real_result):
    assert real_result.values["a"]["rows"] == {"train": 7473, "eval": 1319, "test": 1319}
    assert real_result.values["b"]["rows"] == {"train": 6725, "eval": 748, "test": 1319}
    assert real_result.values["a"]["source"] == "local:gsm8k"


def test_annotation_token_share_on_real_data(real_result):
    assert real_result.values["a"]["annotations"] == {
        "rows": 64,
        "annotation_tokens": 1654,
        "completion_tokens": 6647,
        "annotation_token_share": 0.248834,
    }
    assert real_result.values["b"]["annotations"]["annotation_tokens"] == 0
    assert real_result.values["b"]["annotations"]["annotation_token_share"] == 0.0


def test_preprocessing_finding_shows_one_answer_before_and_after(real_result):
    finding = by_key(real_result)["data.preprocess"]
    assert (finding.severity, finding.align) == ("high", "data")
    assert finding.evidence["rows_differing"] == 7473
    assert finding.evidence["a_answer"].endswith("<<48+24=72>>72 clips altogether in April and May.\n#### 72")
    assert finding.evidence["b_answer"] == (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\nThe answer is: 72"
    )
    assert real_result.values["a"]["preprocess_changed_share"] == 0.0
    assert real_result.values["b"]["preprocess_changed_share"] == 1.0


def test_train_content_and_unseeded_split_findings(real_result):
    findings = by_key(real_result)
    assert sorted(findings) == [
        "data.eval_split",
        "data.preprocess",
        "data.source",
        "data.split_seed",
        "data.train",
    ]
    train = findings["data.train"]
    assert train.evidence["rows"]["a"]["train"] == 7473 and train.evidence["rows"]["b"]["train"] == 6725
    assert train.evidence["example"]["same_question"] is True
    seed = findings["data.split_seed"]
    assert (seed.severity, seed.a, seed.b, seed.align) == ("medium", True, False, "data")


@pytest.mark.parametrize(("index", "name"), [(0, "llmhalluc"), (1, "revise")])
def test_identical_pair_has_no_findings(synthetic_pair, index, name):
    assert probe(synthetic_pair[index], make(name), CTX).findings == []


def test_dropping_preprocessing_changes_train_content_and_preprocessing_only(revise):
    result = probe(revise, make("revise", ["data.preprocess=[]"]), CTX)
    assert sorted(by_key(result)) == ["data.preprocess", "data.train"]
    assert result.values["b"]["annotations"]["annotation_token_share"] > 0


def test_leakage_differs_when_only_selection_differs(synthetic_pair):
    a = synthetic_pair[0]
    b = make("llmhalluc", ["training.load_best_model_at_end=false", "launch.early_stopping_patience=null"])
    result = probe(a, b, CTX)
    finding = by_key(result)["data.eval_split"]
    assert [f.key for f in result.findings] == ["data.eval_split"]
    assert finding.severity == "high"
    assert finding.a == finding.b == "eval = benchmark test split"
    assert result.values["b"]["selection_uses_eval"] is False


def brute_force_overlaps(offsets, spans):
    """Reference: a token counts when its characters intersect any span."""
    return sum(
        1 for start, end in offsets if any(start < s_end and end > s_start for s_start, s_end in spans)
    )


@pytest.mark.parametrize(
    ("offsets", "spans", "expected"),
    [
        ([(0, 2), (2, 4), (4, 6)], [], 0),
        ([(0, 2), (2, 4), (4, 6)], [(2, 4)], 1),
        ([(0, 3), (3, 6), (6, 9)], [(2, 4)], 2),  # a span cutting through two tokens
        ([(0, 4), (4, 8)], [(1, 2), (3, 5)], 2),  # token 0 overlaps both spans and counts once
        ([(0, 1), (1, 1), (1, 2)], [(0, 2)], 3),  # a zero-width token inside the span
        ([(0, 2), (2, 4)], [(4, 6)], 0),  # span past the last token
    ],
)
def test_tokens_overlapping_hand_made(offsets, spans, expected):
    from parity.probes.data import tokens_overlapping

    assert tokens_overlapping(offsets, spans) == expected == brute_force_overlaps(offsets, spans)


def test_tokens_overlapping_equals_brute_force_on_every_synthetic_answer(revise):
    from parity.probes.data import token_offsets, tokens_overlapping
    from parity.tasks.gsm8k import GSM8K
    from parity.tasks.gsm8k.synthetic import generate_rows

    answers = [row["answer"] for row in generate_rows(400, seed=3)]
    offsets = token_offsets(revise.tokenizer, answers)
    reference = revise.tokenizer(answers, add_special_tokens=False, return_offsets_mapping=True)
    assert offsets == [list(map(tuple, row)) for row in reference["offset_mapping"]]
    spans = [[match.span() for match in GSM8K.annotation_regex.finditer(answer)] for answer in answers]
    counts = [
        (tokens_overlapping(o, s), brute_force_overlaps(o, s)) for o, s in zip(offsets, spans, strict=True)
    ]
    assert all(fast == slow for fast, slow in counts)
    assert sum(fast for fast, _ in counts) > 1000
