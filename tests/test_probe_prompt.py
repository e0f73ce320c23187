"""Tests for the `prompt` probe and the character-diff helpers it uses."""

from __future__ import annotations

from conftest import make

from parity.probes import ProbeContext
from parity.probes.prompt import probe
from parity.textdiff import char_diff, edge_notes, visible

CTX = ProbeContext()
REVISE_INSTRUCTION = "Let's think step by step. Put your final answer at the end with 'The answer is: .'"
QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


def test_exact_user_messages_for_first_real_train_row(real_pair):
    result = probe(*real_pair, CTX)
    assert result.values["a"]["user_message"] == (
        QUESTION + "\nLet's think step by step. Put your final answer at the end, starts with ####.\n"
    )
    assert result.values["b"]["user_message"] == (
        QUESTION + "\nLet's think step by step. Put your final answer at the end with 'The answer is: .'"
    )


def test_user_message_finding_on_real_data(real_pair):
    result = probe(*real_pair, CTX)
    [finding] = result.findings
    assert (finding.key, finding.severity, finding.align) == ("prompt.user_message", "high", "prompt")
    assert "llmhalluc ends with an extra '\\n'" in finding.summary
    assert finding.evidence["a_message"].endswith("starts·with·####.⏎")
    assert finding.evidence["diff"][-1] == {
        "op": "replace",
        "a_pos": [233, 234],
        "b_pos": [237, 238],
        "a": "⏎",
        "b": "'",
    }
    assert result.values["rows_differing"] == result.values["rows_compared"] == 64
    assert result.values["same_instruction"] is False


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_trailing_newline_alone_is_one_finding(revise):
    result = probe(revise, make("revise", ["prompt.user_template={question}\n{instruction}\n"]), CTX)
    [finding] = result.findings
    end = len(result.values["a"]["user_message"])
    assert finding.evidence["diff"] == [
        {"op": "insert", "a_pos": [end, end], "b_pos": [end, end + 1], "a": "", "b": "⏎"}
    ]
    assert finding.evidence["notes"][0] == "B (revise) ends with an extra '\\n'"
    assert result.values["same_instruction"] is True


def test_instruction_change_is_named(revise):
    result = probe(revise, make("revise", ["prompt.instruction=Solve it."]), CTX)
    [finding] = result.findings
    question = "Tara has 94 stamps. She keeps 6 for herself and shares the rest equally among 4 friends. "
    question += "How many stamps does each friend get?"
    assert (finding.key, finding.severity, finding.align) == ("prompt.user_message", "high", "prompt")
    assert finding.summary == "user message differs for the same row (32 of 32 rows): instructions differ"
    assert finding.a == question + "\n" + REVISE_INSTRUCTION
    assert finding.b == question + "\nSolve it."
    assert (finding.evidence["a_instruction"], finding.evidence["b_instruction"]) == (
        REVISE_INSTRUCTION,
        "Solve it.",
    )
    assert (result.values["rows_differing"], result.values["rows_compared"]) == (32, 32)
    assert result.values["same_instruction"] is False


def test_visible_whitespace():
    assert visible("a b\n\tc") == "a·b⏎→c"


def test_char_diff_and_edge_notes():
    assert char_diff("\nab", "ab") == [{"op": "delete", "a_pos": [0, 1], "b_pos": [0, 0], "a": "⏎", "b": ""}]
    assert edge_notes("\nab\n", "ab", "x", "y") == [
        "x starts with an extra '\\n'",
        "x ends with an extra '\\n'",
    ]
    assert edge_notes("ab ", "ab\n", "x", "y") == ["x ends with ' ', y with '\\n'"]
