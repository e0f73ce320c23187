"""Tests for the consistency probe: what each recipe trains on against what its own evaluation feeds the model
and extracts. Findings describe each recipe alone (a: A's mismatch, b: B's)."""

from __future__ import annotations

import pytest
from conftest import make

from parity.probes import ProbeContext
from parity.probes.consistency import measure, probe

CTX = ProbeContext()
STRICT_HASH = r"#### (\-?[0-9\.\,]+)"


@pytest.fixture(scope="module")
def llmhalluc(synthetic_pair):
    return synthetic_pair[0]


def test_llmhalluc_trains_with_its_template_and_evaluates_raw_text(llmhalluc, revise):
    """lm-evaluation-harness 1873 (chat templates in evaluation): scores move when the template is or is not
    applied. llmhalluc trains on '<|user|>...<|assistant|>' and evaluates the bare prompt, which also asks for
    'The answer is' where training asked for '####'."""
    [finding] = probe(llmhalluc, revise, CTX).findings
    assert (finding.axis, finding.key, finding.severity, finding.align) == (
        "consistency",
        "consistency.model_input",
        "high",
        None,
    )
    assert (finding.a, finding.b) == ("trains on chat template, evaluates on raw text", None)
    evidence = finding.evidence["a"]
    assert evidence["training_prompt"].startswith("\n<|user|>\n")
    assert evidence["training_prompt"].endswith("starts with ####.\n\n<|assistant|>\n")
    assert evidence["eval_input"].endswith("starts with `The answer is`.")
    values = measure(llmhalluc)
    assert values["extraction"] == {"strict": 1.0, "flexible": 1.0}
    assert (values["num_fewshot"], values["fewshot_answer_format"], values["training_answer_format"]) == (
        5,
        "#### <N>",
        "#### <N>",
    )


def test_revise_is_consistent_and_identical_pairs_have_no_findings(revise):
    values = measure(revise)
    assert values["input_matches"] is True and values["eval_applies_chat_template"] is True
    assert values["extraction"] == {"flexible": 1.0}
    assert probe(revise, revise, CTX).findings == []


def test_a_finding_about_one_recipe_is_reported_when_both_share_it(llmhalluc):
    [finding] = probe(llmhalluc, llmhalluc, CTX).findings
    assert finding.key == "consistency.model_input" and finding.a == finding.b


def test_evaluating_without_the_training_template(revise):
    other = make("revise", ["eval.apply_chat_template=false"])
    [finding] = probe(revise, other, CTX).findings
    assert (finding.key, finding.severity, finding.a, finding.b) == (
        "consistency.model_input",
        "high",
        None,
        "trains on chat template, evaluates on raw text",
    )
    assert finding.evidence["b"]["eval_input"] == measure(other)["training_user_message"]


def test_extractor_that_misses_the_trained_answer_format(revise):
    """Training completions end 'The answer is: N' while the eval's strict filter reads '#### N': the model's
    own trained answers score zero."""
    other = make("revise", [f"eval.strict_regex='{STRICT_HASH}'", "eval.flexible_regex=null"])
    [finding] = probe(revise, other, CTX).findings
    assert (finding.key, finding.severity, finding.a, finding.b) == (
        "consistency.answer_extraction",
        "high",
        1.0,
        0.0,
    )
    assert "'The answer is: <N>'" in finding.summary


def test_few_shot_examples_formatted_unlike_training(revise):
    other = make("revise", ["eval.num_fewshot=5"])
    [finding] = probe(revise, other, CTX).findings
    assert (finding.key, finding.severity, finding.a) == ("consistency.fewshot_format", "medium", None)
    assert finding.b == "5 shots end '#### <N>', training completions 'The answer is: <N>'"
