"""A row's identity (parity.data.conversation): its normalised user turns, a template's constant words removed
from rows a recipe built, and the lookup rule (equal keys, else containment) with its edge cases."""

from __future__ import annotations

from test_capture_examples import hand_built

from parity.capture.examples import CapturedLookup
from parity.data.conversation import (
    MIN_ROWS_FOR_CONSTANT_WORDS,
    Conversation,
    conversation_key,
    identity,
    key_of_turns,
    normalise,
    strip_constant_words,
)

QUESTIONS = [
    "Tom has 3 pens. How many pens?",
    "Ava buys 4 apples at $2 each. What does she pay?",
    "A train runs 60 km in 1 hour. How far in 3 hours?",
    "Liam reads 12 pages a day. How many in a week?",
    "Nadia saves $5 a week. How much after 6 weeks?",
    "Omar has 20 cards and gives away 7. How many are left?",
    "A box holds 9 eggs. How many in 4 boxes?",
    "Zoe runs 3 laps of 400 m. How many meters?",
]
REVISE = "\nLet's think step by step. Put your final answer at the end with 'The answer is: .'"
LLMHALLUC = "\nLet's think step by step. Put your final answer at the end, starts with ####.\n"


def test_normalisation_collapses_whitespace_and_composes_unicode():
    assert normalise("  Tom has\n\n3\tpens.  ") == "Tom has 3 pens."
    assert normalise("caf\u0065\u0301") == normalise("caf\u00e9") == "caf\u00e9"
    assert normalise("Tom") != normalise("tom")  # case is content
    assert identity(key_of_turns(["Tom  has 3 pens."])) == identity(key_of_turns(["Tom has 3 pens.\n"]))


def test_multi_turn_keys_keep_their_turns_apart():
    assert key_of_turns(["Hi", "2+2?"]) == "Hi \x1e 2+2?"
    assert key_of_turns(["Hi 2+2?"]) != key_of_turns(["Hi", "2+2?"])


def test_a_key_is_the_user_turns_not_the_system_prompt_or_the_answer():
    with_system = Conversation(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"},
        ]
    )
    assert conversation_key(with_system) == "Hi \x1e 2+2?"
    assert conversation_key(Conversation(text="The  sky.")) == "The sky."
    assert (
        conversation_key(Conversation([{"role": "assistant", "content": "only an answer"}]))
        == "only an answer"
    )


def test_a_pre_tokenized_row_is_keyed_by_the_decoded_text_before_its_first_trained_token():
    tokens = {"input_ids": [72, 105, 32, 33, 52], "labels": [-100, -100, -100, 33, 52]}
    decode = "".join  # ids -> text, a stand-in for the tokenizer (chr of each id)
    assert conversation_key(Conversation(tokens=tokens), lambda ids: decode(map(chr, ids))) == "Hi"
    unlabelled = {"input_ids": [72, 105, 32, 33]}
    assert conversation_key(Conversation(tokens=unlabelled), lambda ids: decode(map(chr, ids))) == "Hi !"
    assert conversation_key(Conversation(tokens=tokens)) == ""  # no tokenizer, no identity


def test_a_templates_constant_words_are_removed_from_enough_rows():
    built = [key_of_turns([q + REVISE]) for q in QUESTIONS]
    assert strip_constant_words(built) == [normalise(q) for q in QUESTIONS]
    framed = [key_of_turns(["Question: " + q + "\nAnswer step by step."]) for q in QUESTIONS]
    assert strip_constant_words(framed) == [normalise(q) for q in QUESTIONS]


def test_fewer_rows_than_the_minimum_keep_their_whole_text():
    built = [key_of_turns([q + REVISE]) for q in QUESTIONS[: MIN_ROWS_FOR_CONSTANT_WORDS - 1]]
    assert strip_constant_words(built) == built


def test_an_instruction_that_varies_by_row_is_not_a_template_and_stays():
    built = [key_of_turns([q + (REVISE if i % 2 else LLMHALLUC)]) for i, q in enumerate(QUESTIONS)]
    stripped = strip_constant_words(built)
    assert stripped[0].endswith("starts with ####.") and stripped[1].endswith("'The answer is: .'")
    assert not stripped[0].startswith("Let's")


def test_words_every_question_happens_to_share_are_taken_as_template_words():
    """The rule's known cost: rows whose content all starts with the same words lose them (the other side's
    lookup then finds the row by containment, see below)."""
    same_start = [key_of_turns([f"How many apples does basket {i} hold?"]) for i in range(8)]
    assert strip_constant_words(same_start)[3] == "3"


def test_a_key_is_never_emptied():
    repeated = [key_of_turns([f"Solve {i}"]) for i in range(8)] + [key_of_turns(["Solve"])]
    assert strip_constant_words(repeated) == repeated


def captured(rows: list[str], instruction: str = ""):
    train = [
        {
            "prompt": [{"role": "user", "content": q + instruction}],
            "completion": [{"role": "assistant", "content": "x"}],
        }
        for q in rows
    ]
    return CapturedLookup(
        hand_built({"train": train}, {"train": [{"input_ids": [i]} for i in range(len(rows))]})
    )


def test_a_raw_row_is_found_by_its_key_in_a_capture_whose_template_added_an_instruction():
    lookup = captured(QUESTIONS, REVISE)
    assert [lookup.locate(key_of_turns([q])) for q in QUESTIONS[:3]] == [
        ("train", 0),
        ("train", 1),
        ("train", 2),
    ]
    assert lookup.splits[0].index[normalise(QUESTIONS[5])] == 5  # the equal-key index: template words removed


def test_containment_finds_a_row_in_a_small_capture_and_under_a_varying_instruction():
    assert captured(QUESTIONS[:3], REVISE).locate(key_of_turns([QUESTIONS[2]])) == ("train", 2)
    mixed = CapturedLookup(
        hand_built(
            {
                "train": [
                    {
                        "prompt": [{"role": "user", "content": q + (REVISE if i % 2 else LLMHALLUC)}],
                        "completion": [{"role": "assistant", "content": "x"}],
                    }
                    for i, q in enumerate(QUESTIONS)
                ]
            },
            {"train": [{"input_ids": [i]} for i in range(len(QUESTIONS))]},
        )
    )
    assert mixed.locate(key_of_turns([QUESTIONS[4]])) == ("train", 4)


def test_equal_keys_win_over_an_earlier_row_that_merely_contains_the_key():
    rows = ["Tom has 3 pens. How many pens? And 2 more?", "Tom has 3 pens. How many pens?"]
    assert captured(rows).locate(key_of_turns(["Tom has 3 pens. How many pens?"])) == ("train", 1)


def test_rows_two_captures_built_with_different_varying_instructions_are_not_paired():
    """Documented limit: neither row's text contains the other's once both carry a different instruction that is
    not constant across their own rows."""
    lookup = captured(QUESTIONS[:2], "\nBe brief.")
    assert lookup.locate(key_of_turns([QUESTIONS[0] + "\nShow your work."])) is None
