"""Probes on a captured recipe read the examples its own code made for the shared raw rows, and say "not
captured" for a row it never produced; the data probe reads the captured rows and the manifest's dataset
requests; the lock's golden examples are the captured ones. On the shell-launcher fixture capture."""

from __future__ import annotations

import json

import pytest
from test_capture import FIXTURES, shell_options, workdir  # noqa: F401 - workdir is a fixture used here

from parity.capture import capture
from parity.capture.reader import load_capture
from parity.capture.source import recipe_for
from parity.diff import diff_materialized
from parity.lock import recipe_lock
from parity.materialize import RowNotCaptured, materialize
from parity.probes import ProbeContext
from parity.registry import resolve_recipe

OWN_AXES = ("tokens", "template", "prompt", "loss_mask", "data")
ABSENT_TRAIN = {"question": "A farmer has 3 pens with 5 goats each. How many goats?", "answer": "#### 15"}
ABSENT_TEST = {"question": "Tom has 4 apples and eats 1. How many are left?", "answer": "#### 3"}


def read_rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def captured_path(workdir):  # noqa: F811
    return capture(shell_options(workdir, out=workdir / "captures" / "probes", world_sizes=(1,))).path


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory):
    """Shared rows: fixture train rows 2 and 0 around a row the capture lacks; test row 1 and a missing one."""
    train = read_rows(FIXTURES / "data" / "gsm8k" / "train.jsonl")
    test = read_rows(FIXTURES / "data" / "gsm8k" / "test.jsonl")
    folder = tmp_path_factory.mktemp("shared")
    for name, rows in (("train", [train[2], ABSENT_TRAIN, train[0]]), ("test", [test[1], ABSENT_TEST])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(folder)


def captured_recipe(path, shared_data):
    return materialize(recipe_for(f"capture:{path}"), data=shared_data, samples=None)


@pytest.fixture(scope="module")
def captured(captured_path, shared_data):
    return captured_recipe(captured_path, shared_data)


@pytest.fixture(scope="module")
def against_revise(captured, shared_data):
    revise = materialize(resolve_recipe("revise"), data=shared_data, samples=None)
    return {ex: diff_materialized(captured, revise, context=ProbeContext(show_example=ex)) for ex in (0, 1)}


def own_findings(report) -> dict:
    return {f.key: f for f in report.findings if f.axis in OWN_AXES}


def test_a_shared_row_in_the_capture_gives_exactly_the_captured_ids_and_labels(captured, captured_path):
    collated = load_capture(captured_path).collated["train"]
    [example] = captured.shared_examples([captured.raw.train[0]])  # fixture train row 2 (Betty)
    assert (example.same_row, example.found_in) == (True, ("train", 2))
    assert example.input_ids == collated.input_ids[2]
    assert example.labels == collated.labels[2]
    assert example.input_ids[:8] == [27, 91, 882, 91, 397, 57299, 1919, 374]  # '<|user|>\nBetty ...'
    assert (len(example.input_ids), example.labels.index(next(x for x in example.labels if x != -100))) == (
        125,
        68,
    )
    assert captured.prepare_raw([captured.raw.train[0]]) == [
        {"input_ids": example.input_ids, "labels": example.labels}
    ]
    assert example.source == "captured train row 2; input_ids and labels from the trainer's collator"


def test_a_held_out_row_is_found_among_the_captured_eval_rows(captured, captured_path):
    prepared = load_capture(captured_path).prepared["eval"]
    [example] = captured.shared_examples([captured.raw.test[0]])
    assert example.found_in == ("eval", 1)
    assert (example.input_ids, example.labels) == (prepared.input_ids[1], prepared.labels[1])
    assert len(example.input_ids) == 71
    assert (
        example.source == "captured eval row 1; input_ids and labels as the recipe's preparation wrote them"
    )


def test_a_row_the_capture_lacks_is_not_captured_never_retokenized(captured, captured_path):
    collated = load_capture(captured_path).collated["train"]
    [example] = captured.shared_examples([ABSENT_TRAIN])
    assert (example.same_row, example.found_in) == (False, None)
    assert example.input_ids == collated.input_ids[0]  # the stand-in: captured train row 0, labelled as such
    assert example.source.startswith(
        "not captured: no row the recipe's own code produced holds this row's user turns (4 train, 2 eval); "
        "shown instead: captured train row 0"
    )
    with pytest.raises(RowNotCaptured, match="not captured"):
        captured.prepare_raw([ABSENT_TRAIN])


def test_probes_compare_the_captured_example_of_a_shared_row(against_revise):
    findings = own_findings(against_revise[0])
    tokens = findings["tokens.example"]
    assert (tokens.a, tokens.b) == (125, 149)
    assert tokens.evidence["first_difference"] == 63  # revise's instruction follows the same question
    assert "tokens.example_not_captured" not in findings
    assert findings["prompt.user_message"].summary.startswith(
        "user message differs for the same row (2 of 2 rows)"
    )


def test_probes_say_not_captured_for_a_row_the_capture_lacks(against_revise):
    findings = own_findings(against_revise[1])
    tokens = findings["tokens.example_not_captured"]
    assert (tokens.severity, tokens.a, tokens.b) == ("info", False, True)
    assert (tokens.evidence["a_length"], tokens.evidence["b_length"]) == (86, 55)
    assert tokens.evidence["a_source"].endswith("NOT the same row")
    assert "tokens.example" not in findings and "prompt.user_message" not in findings
    prompt = findings["prompt.user_message_not_captured"]
    assert {k: prompt.evidence[k] for k in ("rows_compared", "rows_not_captured", "rows_differing")} == {
        "rows_compared": 2,
        "rows_not_captured": 1,
        "rows_differing": 2,
    }
    assert findings["template.chat_template"].evidence["token_ops"] == []
    assert "token ids not compared" in findings["template.chat_template"].summary


def test_data_probe_compares_captured_rows_with_a_builtin_recipe(against_revise):
    findings = own_findings(against_revise[0])
    assert sorted(k for k in findings if k.startswith("data.")) == [
        "data.eval_split",
        "data.preprocess",
        "data.train",
    ]
    train = findings["data.train"]
    assert train.evidence["rows"] == {
        "a": {"train": 4, "eval": 2, "test": 2},
        "b": {"train": 2, "eval": 1, "test": 2},
    }
    assert train.evidence["rows_in_common"] == 0
    assert "push_to_hub someone/gsm8k (test 2, train 4) reloaded by the next step" in train.summary
    split = findings["data.eval_split"]
    assert (
        split.a
        == "the recipe's own code: 4 train / 2 eval rows; 1 of 2 benchmark test rows are in its eval rows"
    )
    assert split.evidence["a"]["eval_questions_in_test"] == 1
    completions = findings["data.preprocess"]
    assert (completions.evidence["rows"], completions.evidence["rows_not_in_both"]) == (2, 1)
    assert completions.a.endswith(
        "Betty needs 100 - 50 - 30 - 15 = $5 more.\n#### 5"
    )  # the fixture strips <<...>>


def test_data_source_names_the_dataset_the_recipes_code_loaded(captured, shared_data):
    llmhalluc = materialize(resolve_recipe("llmhalluc"), data=shared_data, samples=None)
    report = diff_materialized(captured, llmhalluc, context=ProbeContext(), only=["data"])
    source = own_findings(report)["data.source"]
    assert (source.a, source.b) == (
        "openai/gsm8k (main) [splits requested: all, pushed as someone/gsm8k]",
        "mtybilly/GSM8K [train/test]",
    )


def test_a_capture_against_itself_has_no_finding(captured, captured_path, shared_data):
    report = diff_materialized(captured, captured_recipe(captured_path, shared_data), context=ProbeContext())
    assert own_findings(report) == {}


def test_lock_golden_examples_are_the_captured_ones_and_deterministic(captured, captured_path, shared_data):
    collated = load_capture(captured_path).collated["train"]
    lock = recipe_lock(captured, 3)
    assert lock.tokenization.input_ids[1] == "not captured"
    assert lock.tokenization.loss_mask[1] == "not captured"
    assert lock.tokenization.example_0.input_ids == collated.input_ids[2]
    assert lock.tokenization.example_0.loss_mask == "".join(
        "0" if x == -100 else "1" for x in collated.labels[2]
    )
    assert lock.config["prompt.user_template"] == "not captured"
    assert lock.config["data.split_rule"].startswith("the recipe's own code: 4 train / 2 eval rows")
    assert recipe_lock(captured_recipe(captured_path, shared_data), 3) == lock


def test_an_uncaptured_eval_protocol_is_one_info_finding_never_compared_as_defaults(against_revise):
    findings = {f.key: f for f in against_revise[0].findings}
    eval_keys = sorted(k for k in findings if k.startswith("eval."))
    assert eval_keys == ["eval.not_captured"]
    finding = findings["eval.not_captured"]
    assert (finding.severity, finding.b, finding.align) == ("info", "given", "eval")
    assert finding.a.startswith("not captured (lives outside the training script")
    assert "consistency.model_input" not in findings  # the capture's eval input is unknown, not "raw text"
    answer = against_revise[0].probes["answer"]
    assert answer["a"]["eval_protocol"] == finding.a and "flexible_regex" not in answer["a"]
    assert (answer["a"]["answer_format"], answer["b"]["answer_format"]) == ("#### <N>", "The answer is: <N>")
    assert set(answer["matrix"].get("flexible", {})) == {"b_extractor_on_a_gold", "b_extractor_on_b_gold"}
    assert answer["gold_source"].endswith(
        "as found in the captured rows (the completions the recipe's own code built)"
    )


def test_eval_keys_given_on_a_capture_replace_not_captured(captured_path, shared_data):
    from parity.overrides import apply_override

    recipe = recipe_for(f"capture:{captured_path}")
    assert recipe.eval_not_captured
    apply_override(recipe, "eval.flexible_regex", "(-?[0-9]+)", "yaml:mine.yaml")
    assert not recipe.eval_not_captured
    m = materialize(recipe, data=shared_data, samples=None)
    revise = materialize(resolve_recipe("revise"), data=shared_data, samples=None)
    keys = {f.key for f in diff_materialized(m, revise, context=ProbeContext()).findings}
    assert "eval.not_captured" not in keys
    assert {"eval.flexible_regex", "eval.prompt"} <= keys
