"""How shared raw rows are found among a capture's rows (parity.capture.examples), on hand-built captures:
by identity key (equal keys, else the key contained in a captured user text), first row wins, train before eval,
and the labels rule measured on the collated rows; the manifest's dataset requests."""

from __future__ import annotations

from pathlib import Path

from parity.capture.data_requests import data_requests
from parity.capture.examples import CapturedLookup, captured_split, collator_rule, user_text
from parity.capture.reader import CapturedRecipe, PreparedDataset
from parity.data.conversation import key_of_turns


def key(text: str) -> str:
    """The identity key of a row whose one user turn is `text`."""
    return key_of_turns([text])


def find(lookup: CapturedLookup, *questions: str) -> list:
    """The captured examples of rows whose user turn is each question."""
    return lookup.examples([{"question": q} for q in questions], [key(q) for q in questions])


def conversation(question: str, answer: str, instruction: str = "") -> dict:
    return {
        "prompt": [{"role": "user", "content": question + instruction}],
        "completion": [{"role": "assistant", "content": answer}],
    }


def hand_built(
    raw: dict[str, list[dict]],
    prepared: dict[str, list[dict]],
    collated: list[dict] | None = None,
    manifest: dict | None = None,
) -> CapturedRecipe:
    """A CapturedRecipe with its datasets given (the cached properties are filled, nothing is read)."""
    captured = CapturedRecipe(Path("hand-built"), manifest or {}, None, {}, None, [])  # type: ignore[arg-type]
    captured.__dict__.update(
        raw=raw,
        prepared={name: PreparedDataset(rows) for name, rows in prepared.items()},
        collated={"train": PreparedDataset(collated)} if collated is not None else {},
    )
    return captured


INSTRUCTION = "\nLet's think step by step."
TRAIN = [
    conversation("How many apples are left?", "2", INSTRUCTION),
    conversation("Tom has 3 pens. How many pens?", "3", INSTRUCTION),
    conversation("Tom has 3 pens. How many pens?", "3 (again)", INSTRUCTION),
]
EVAL = [conversation("What is 2 + 2?", "4", INSTRUCTION)]


def completion_mask_capture() -> CapturedRecipe:
    """Prepared rows with a completion mask and no labels; collated labels mask the prompt (first 2 tokens)."""
    prepared_train = [
        {"input_ids": [10, 11, 12, 13], "completion_mask": [0, 0, 1, 1]},
        {"input_ids": [20, 21, 22], "completion_mask": [0, 0, 1]},
        {"input_ids": [30, 31, 32], "completion_mask": [0, 0, 1]},
    ]
    prepared_eval = [{"input_ids": [40, 41, 42, 43, 44], "completion_mask": [0, 0, 0, 1, 1]}]
    collated = [{"input_ids": [10, 11, 12, 13], "labels": [-100, -100, 12, 13]}]
    return hand_built(
        {"train": TRAIN, "eval": EVAL}, {"train": prepared_train, "eval": prepared_eval}, collated
    )


def test_user_text_reads_prompt_messages_strings_and_text():
    assert user_text(TRAIN[0]) == "How many apples are left?" + INSTRUCTION
    assert (
        user_text({"prompt": "<|user|>\nQ?\n<|assistant|>\n", "completion": "A"})
        == "<|user|>\nQ?\n<|assistant|>\n"
    )
    assert (
        user_text({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]}) == "Q"
    )
    assert user_text({"text": "Q and A"}) == "Q and A"


def test_the_first_captured_row_containing_the_question_wins_and_train_comes_before_eval():
    lookup = CapturedLookup(completion_mask_capture())
    found = find(lookup, "Tom has 3 pens. How many pens?", "What is 2 + 2?", "How many apples")
    assert [(e.found_in, e.same_row) for e in found] == [
        (("train", 1), True),
        (("eval", 0), True),
        (("train", 0), True),
    ]
    assert found[0].input_ids == [20, 21, 22]
    assert found[0].trained_row == TRAIN[1]
    assert found[0].conversation.messages == TRAIN[1]["prompt"] + TRAIN[1]["completion"]
    assert found[0].user_message == "Tom has 3 pens. How many pens?" + INSTRUCTION


def test_labels_come_from_the_collator_else_from_the_rule_all_collated_rows_follow():
    lookup = CapturedLookup(completion_mask_capture())
    assert lookup.labels_rule.rule == "completion-mask"
    collated, ruled, held_out = find(
        lookup, "How many apples are left?", "Tom has 3 pens. How many pens?", "What is 2 + 2?"
    )
    assert collated.labels == [-100, -100, 12, 13]
    assert collated.source == "captured train row 0; input_ids and labels from the trainer's collator"
    assert ruled.labels == [-100, -100, 22]
    assert held_out.labels == [-100, -100, -100, 43, 44]
    assert held_out.source == (
        "captured eval row 0; prepared input_ids; labels = input_ids where completion_mask is 1, "
        "as the collator built all 1 collated rows"
    )


def test_an_identity_collator_and_an_unknown_one_are_told_apart():
    prepared = {
        "train": [
            {"input_ids": [1, 2], "completion_mask": [0, 1]},
            {"input_ids": [3], "completion_mask": [1]},
        ]
    }
    identity = hand_built({"train": TRAIN[:2]}, prepared, [{"input_ids": [1, 2], "labels": [1, 2]}])
    assert collator_rule(identity).rule == "collator-identity"
    assert find(CapturedLookup(identity), "Tom has 3 pens.")[0].labels == [3]
    odd = hand_built({"train": TRAIN[:2]}, prepared, [{"input_ids": [1, 2], "labels": [-100, -100]}])
    [example] = find(CapturedLookup(odd), "Tom has 3 pens.")
    assert (example.input_ids, example.labels) == ([3], None)
    assert example.source.endswith(
        "the collated rows follow no rule parity can apply to other rows: labels not captured"
    )


def test_a_row_no_captured_row_contains_is_not_captured_and_the_stand_in_is_labelled():
    [example] = find(CapturedLookup(completion_mask_capture()), "Tom has 4 pens.")
    assert (example.same_row, example.found_in) == (False, None)
    assert example.input_ids == [10, 11, 12, 13]  # captured train row 0, shown as a stand-in
    assert example.source == (
        "not captured: no row the recipe's own code produced holds this row's user turns (3 train, 1 eval); "
        "shown instead: captured train row 0; input_ids and labels from the trainer's collator, NOT the same row"
    )


def test_unpaired_prepared_rows_are_not_guessed():
    captured = hand_built({"train": TRAIN}, {"train": [{"input_ids": [1], "labels": [1]}]})
    [example] = find(CapturedLookup(captured), "How many apples are left?")
    assert (example.same_row, example.input_ids, example.labels) == (True, [], None)
    assert "TRL's preparation kept 1 of 3 rows" in example.source


def test_captured_split_counts_test_questions_in_train_and_eval():
    split = captured_split(
        CapturedLookup(completion_mask_capture()),
        [key("What is 2 + 2?"), key("How many apples are left?"), key("Absent?")],
    )
    assert (split.train_rows, split.eval_rows, split.test_in_train, split.test_in_eval) == (3, 1, 1, 1)
    assert split.eval_is_benchmark_test is True
    assert (
        split.rule
        == "the recipe's own code: 3 train / 1 eval rows; 1 of 3 benchmark test rows are in its eval rows"
    )


def test_dataset_requests_name_loads_pushes_and_reloads_once_each():
    load = {
        "kind": "dataset-load",
        "name": "openai/gsm8k",
        "config": "main",
        "split": None,
        "served_from": "/d",
    }
    push = {
        "kind": "dataset-push",
        "repo_id": "me/gsm8k",
        "config": "default",
        "rows": {"train": 4, "test": 2},
    }
    reload = {
        "kind": "dataset-load",
        "name": "me/gsm8k",
        "source": "pushed earlier in this capture",
        "split": None,
    }
    requests = data_requests({"redirects": {"events": [load, push, reload, load, push, reload]}})
    assert requests.text() == (
        "openai/gsm8k (main) split all <- /d; push_to_hub me/gsm8k (train 4, test 2) reloaded by the next step"
    )
    assert requests.hub() == {
        "path": "openai/gsm8k",
        "config": "main",
        "splits_requested": ["all"],
        "pushed": ["me/gsm8k"],
    }
