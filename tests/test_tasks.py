"""Task packs (parity/tasks): GSM8K and MATH declare their gold rule, answer format, annotation spans and synthetic
rows; the answer and consistency probes read them, and a recipe without an eval protocol gets no claims."""

from __future__ import annotations

import json

import pytest
from test_row_formats import PLAIN

from parity.diff import diff_materialized
from parity.errors import ParityError
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.registry import resolve_recipe
from parity.tasks import get_task, gold_answer, load_tasks
from parity.tasks.math import BOXED

MATH_DATA = "synthetic:120:40"
FINAL_ANSWER = json.dumps(r"The answer is \$\\boxed\{(.*)\}\$\.")
MATH = [
    *PLAIN,
    "data.task=math",
    "eval.prompt='{problem}'",
    "eval.apply_chat_template=true",
    f"eval.strict_regex={json.dumps(BOXED)}",
]
"""A recipe that trains on MATH solutions as they are and evaluates with the boxed answer."""
FINAL = [
    *PLAIN,
    "data.task=math",
    "eval.prompt='{problem}'",
    "eval.apply_chat_template=true",
    "eval.num_fewshot=4",
    "eval.flexible_regex='Final answer: (.+)'",
    f"data.preprocess=[{{op: regex_sub, field: solution, pattern: {FINAL_ANSWER}, replacement: 'Final answer: \\1'}}]",
]
"""The same rows with the boxed last line rewritten to 'Final answer: X' and an extractor for that."""


def math_recipe(overrides: list[str]):
    return materialize(resolve_recipe("revise", overrides), data=MATH_DATA, samples=16)


def test_the_registry_holds_gsm8k_and_math_and_names_them_on_a_typo():
    assert sorted(load_tasks().names()) == ["gsm8k", "math"]
    with pytest.raises(ParityError, match=r"unknown task 'gsm9k' \(known: gsm8k, math\)"):
        get_task("gsm9k")


def test_gsm8k_pack_gold_format_annotations_and_sizes():
    gsm8k = get_task("gsm8k")
    answer = "She sold 48/2 = <<48/2=24>>24 clips.\n#### 1,234"
    assert gsm8k.gold(answer) == "1,234"
    assert gsm8k.answer_format(answer) == "#### <N>"
    assert gsm8k.answer_format("So the total is $12.50.\nThe answer is: 72") == "The answer is: <N>"
    assert [m.group() for m in gsm8k.annotation_regex.finditer(answer)] == ["<<48/2=24>>"]
    assert (gsm8k.train_rows, gsm8k.test_rows) == (7473, 1319)
    train, test = gsm8k.synthetic(20, None, 0)
    assert (len(train), len(test)) == (20, 4)


def test_math_pack_reads_boxed_answers_with_nested_braces():
    math = get_task("math")
    solution = "So $x = \\frac{7}{2}$.\nThe answer is $\\boxed{\\frac{7}{2}}$."
    assert math.gold(solution) == "\\frac{7}{2}"
    assert math.gold("no box") is None
    assert math.answer_format(solution) == "The answer is $\\boxed{<A>}$."
    assert math.answer_format("Final answer: 42") == "Final answer: <A>"
    assert math.annotation is None


def test_math_synthetic_rows_are_deterministic_exact_and_disjoint():
    math = get_task("math")
    train, test = math.synthetic(200, 50, 3)
    assert (train, test) == math.synthetic(200, 50, 3)
    assert train != math.synthetic(200, 50, 4)[0]
    assert not {row["problem"] for row in train} & {row["problem"] for row in test}
    assert all(set(row) == {"problem", "solution"} for row in train + test)
    assert all(math.answer_format(row["solution"]) == "The answer is $\\boxed{<A>}$." for row in train)
    sums = [row for row in train if row["problem"].startswith("What is the sum of the first")]
    n = int(sums[0]["problem"].split("$")[1])
    assert math.gold(sums[0]["solution"]) == str(n * (n + 1) // 2)


def test_gold_answers_come_from_the_recipes_task_unless_it_sets_its_own_rule():
    revise = resolve_recipe("revise")
    assert gold_answer(revise, "...\n#### 72") == "72"
    assert gold_answer(resolve_recipe("revise", ["eval.gold_regex='answer: (\\d+)'"]), "answer: 9") == "9"
    assert gold_answer(resolve_recipe("revise", PLAIN), "...\n#### 72") is None


def test_math_rows_are_read_through_the_tasks_column_map():
    m = math_recipe(MATH)
    assert (m.raw.source, m.row_format.describe()) == (
        "synthetic math (seed=0)",
        "input_output (input=problem, output=solution)",
    )
    assert m.sample_rows[0]["prompt"][0]["content"].startswith(
        ("Compute", "Simplify", "Solve", "What", "Evaluate")
    )


@pytest.fixture(scope="module")
def math_pair():
    return math_recipe(MATH), math_recipe(FINAL)


def test_answer_probe_on_math_finds_the_format_and_both_extractors(math_pair):
    report = diff_materialized(*math_pair, only=["answer"], context=ProbeContext())
    findings = {f.key: f for f in report.findings}
    answer = findings["answer.format"]
    assert (answer.a, answer.b) == ("The answer is $\\boxed{<A>}$.", "Final answer: <A>")
    assert answer.summary.startswith("answer format of completions differs on 40 of 40 test rows")
    matrix = report.probes["answer"]["matrix"]
    assert matrix["strict"] == {"a_extractor_on_a_gold": 1.0, "a_extractor_on_b_gold": 0.0}
    assert matrix["flexible"] == {"b_extractor_on_a_gold": 0.0, "b_extractor_on_b_gold": 1.0}
    assert {"answer.strict_extractor.a", "answer.flexible_extractor.b"} <= set(findings)
    assert report.probes["answer"]["a"]["gold_regex"] == BOXED


def test_consistency_probe_on_math_reads_the_task_rules(math_pair):
    report = diff_materialized(*math_pair, only=["consistency"], context=ProbeContext())
    a, b = report.probes["consistency"]["a"], report.probes["consistency"]["b"]
    assert (a["extraction"], b["extraction"]) == ({"strict": 1.0}, {"flexible": 1.0})
    assert (a["input_matches"], b["input_matches"]) == (True, True)
    assert (b["training_answer_format"], b["fewshot_answer_format"]) == (
        "Final answer: <A>",
        "The answer is $\\boxed{<A>}$.",
    )
    [finding] = report.findings
    assert (finding.key, finding.a, finding.b) == (
        "consistency.fewshot_format",
        None,
        "4 shots end 'The answer is $\\\\boxed{<A>}$.', training completions 'Final answer: <A>'",
    )


def test_a_recipe_without_an_eval_protocol_gets_no_answer_or_consistency_claims():
    plain = math_recipe([*PLAIN, "data.task=math"])
    report = diff_materialized(
        plain, math_recipe(PLAIN[:] + ["data.task=math"]), only=["answer", "consistency"]
    )
    assert report.findings == []
    assert report.probes["answer"]["matrix"] == {}
    assert report.probes["consistency"]["a"]["eval_protocol"].startswith(
        "none (the recipe gives no eval prompt"
    )
    against = diff_materialized(plain, math_recipe(MATH), only=["answer", "consistency"])
    assert [(f.key, f.severity) for f in against.findings] == [("eval.none", "info")]
    assert set(against.probes["answer"]["matrix"]["strict"]) == {
        "b_extractor_on_a_gold",
        "b_extractor_on_b_gold",
    }


def test_a_recipe_without_a_task_gets_no_gold_or_format_claims(tmp_path):
    rows = "".join(json.dumps({"question": f"{i}+1?", "answer": f"#### {i + 1}"}) + "\n" for i in range(12))
    (tmp_path / "train.jsonl").write_text(rows)
    overrides = [*PLAIN, "eval.prompt='{question}'", "eval.strict_regex='#### (.+)'"]
    m = materialize(resolve_recipe("revise", overrides), data=str(tmp_path), samples=8)
    report = diff_materialized(m, m, only=["answer", "consistency"])
    assert report.findings == []
    assert report.probes["answer"]["matrix"] == {}
    assert "answer_format" not in report.probes["answer"]["a"]
    assert report.probes["consistency"]["a"]["extraction"] == {}
