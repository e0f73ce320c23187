"""Tests for the `answer` probe: eval protocols, answer formats and the extractor x gold matrix."""

from __future__ import annotations

import pytest
from conftest import by_key, make

from parity.probes import ProbeContext
from parity.probes.answer import answers_match, extract_answer, probe
from parity.spec import EvalSpec

CTX = ProbeContext()
LLMHALLUC_EVAL = EvalSpec(
    strict_regex=r"####\s*(-?[0-9\.\,]+)",
    flexible_regex=r"(-?[$0-9.,]{2,})|(-?[0-9]+)",
    ignore_patterns=[",", r"\$"],
)
REVISE_EVAL = EvalSpec(
    flexible_regex=r"(-?[$0-9.,]{2,})|(-?[0-9]+)",
    ignore_patterns=[",", r"\$", "(?s).*#### ", r"\.$"],
    ignore_case=True,
    remove_tokens=["<|reserved_special_token_0|>"],
)


@pytest.fixture(scope="module")
def real_result(real_pair):
    return probe(*real_pair, CTX)


def test_strict_takes_first_match_and_flexible_the_last():
    text = "#### 5 then #### 7 and finally 1,250."
    assert extract_answer(text, LLMHALLUC_EVAL, "strict") == "5"
    assert extract_answer(text, LLMHALLUC_EVAL, "flexible") == "1,250."
    assert extract_answer("The answer is: 9", LLMHALLUC_EVAL, "flexible") == "9"
    assert extract_answer("no digits", LLMHALLUC_EVAL, "flexible") is None
    assert extract_answer("The answer is: 72", REVISE_EVAL, "strict") is None


def test_removed_token_is_gone_before_extraction():
    text = "She sold 48 + 24 = 72 clips. The answer is: 72<|reserved_special_token_0|>"
    assert extract_answer(text, REVISE_EVAL, "flexible") == "72"
    kept = EvalSpec(flexible_regex=REVISE_EVAL.flexible_regex)
    assert extract_answer(text, kept, "flexible") == "0"
    assert answers_match(extract_answer(text, REVISE_EVAL, "flexible"), "72", REVISE_EVAL)
    assert not answers_match(extract_answer(text, kept, "flexible"), "72", REVISE_EVAL)


def test_builtin_revise_eval_removes_its_rethink_token(revise):
    spec = revise.recipe.eval
    assert (spec.remove_tokens, spec.ignore_case) == (["<|reserved_special_token_0|>"], True)
    assert extract_answer("The answer is: 18.<|reserved_special_token_0|>", spec, "flexible") == "18."


def test_answers_match_after_ignore_patterns_as_numbers():
    assert answers_match("$1,250.", "1250", REVISE_EVAL)
    assert answers_match("72.", "72", LLMHALLUC_EVAL)
    assert not answers_match("71", "72", LLMHALLUC_EVAL)
    assert not answers_match(None, "72", LLMHALLUC_EVAL)


def test_exact_matrix_on_real_data(real_result):
    assert real_result.values["gold_rows"] == 200
    assert real_result.values["matrix"] == {
        "strict": {"a_extractor_on_a_gold": 1.0, "a_extractor_on_b_gold": 0.0},
        "flexible": {
            "a_extractor_on_a_gold": 1.0,
            "a_extractor_on_b_gold": 1.0,
            "b_extractor_on_a_gold": 1.0,
            "b_extractor_on_b_gold": 1.0,
        },
    }


def test_answer_format_and_extractor_findings_on_real_data(real_result):
    findings = by_key(real_result)
    fmt = findings["answer.format"]
    assert (fmt.severity, fmt.a, fmt.b) == ("high", "#### <N>", "The answer is: <N>")
    assert "llmhalluc completions end '#### 72', revise 'The answer is: 72'" in fmt.summary
    strict = findings["answer.strict_extractor.a"]
    assert (strict.severity, strict.a, strict.b) == ("high", 1.0, 0.0)
    assert "answer.flexible_extractor.a" not in findings and "answer.flexible_extractor.b" not in findings


def test_protocol_findings_on_real_data(real_result):
    findings = by_key(real_result)
    assert sorted(findings) == [
        "answer.format",
        "answer.strict_extractor.a",
        "eval.apply_chat_template",
        "eval.ignore_case",
        "eval.ignore_patterns",
        "eval.num_fewshot",
        "eval.prompt",
        "eval.prompt_matches_training",
        "eval.remove_tokens",
        "eval.strict_regex",
        "eval.task",
    ]
    assert (findings["eval.num_fewshot"].a, findings["eval.num_fewshot"].b) == (5, 0)
    ignore_case = findings["eval.ignore_case"]
    assert (ignore_case.severity, ignore_case.align, ignore_case.a, ignore_case.b) == (
        "medium",
        "eval",
        False,
        True,
    )
    remove = findings["eval.remove_tokens"]
    assert (remove.severity, remove.align, remove.a, remove.b) == (
        "medium",
        "eval",
        [],
        ["<|reserved_special_token_0|>"],
    )
    assert real_result.values["b"]["remove_tokens"] == ["<|reserved_special_token_0|>"]
    assert (findings["eval.apply_chat_template"].a, findings["eval.apply_chat_template"].b) == (False, True)
    matches = findings["eval.prompt_matches_training"]
    assert (matches.severity, matches.align, matches.a, matches.b) == ("medium", "eval", False, True)
    assert real_result.values["a"]["prompt_matches_training"] is False
    assert real_result.values["b"]["prompt_matches_training"] is True


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_shots_alone(revise):
    [finding] = probe(revise, make("revise", ["eval.num_fewshot=5"]), CTX).findings
    assert (finding.key, finding.severity, finding.align, finding.a, finding.b) == (
        "eval.num_fewshot",
        "medium",
        "eval",
        0,
        5,
    )
