"""Whole diffs on rows of every registered format: an identical pair gives no finding, a planted system prompt gives
the prompt finding (and only findings `--align prompt` removes), and a messages dataset runs every probe."""

from __future__ import annotations

import json

import pytest
from test_row_formats import FORMATS, PLAIN, write_data

from parity.diff import diff_materialized
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.registry import resolve_recipe


def rows_like(case: str, count: int = 12) -> list[dict]:
    """`count` distinct rows of a format: the format's example row with its numbers changed per row."""
    text = json.dumps(FORMATS[case][0])
    if case == "tokenized":
        return [
            {"input_ids": [128000, 17 + i % 9, 10, 17, 30, 220, 19], "labels": [-100] * 5 + [220, 19]}
            for i in range(count)
        ]
    return [json.loads(text.replace("2+2?", f"{i}+2?").replace("sky", f"sky {i}")) for i in range(count)]


def pair(tmp_path, case: str, overrides_b: tuple[str, ...] = ()):
    data = write_data(tmp_path / case, rows_like(case), rows_like(case, 3))
    a = materialize(resolve_recipe("revise", PLAIN), data=data, samples=8)
    b = materialize(resolve_recipe("revise", [*PLAIN, *overrides_b]), data=data, samples=8)
    return a, b


@pytest.mark.parametrize("case", sorted(FORMATS))
def test_an_identical_pair_gives_no_finding_in_every_format(tmp_path, case):
    report = diff_materialized(*pair(tmp_path, case), context=ProbeContext())
    assert report.findings == []


@pytest.mark.parametrize("case", ["alpaca", "messages", "question_answer"])
def test_a_planted_system_prompt_gives_the_prompt_finding_and_only_what_aligning_the_prompt_removes(
    tmp_path, case
):
    a, b = pair(tmp_path, case, ("prompt.system='You are a careful tutor.'",))
    report = diff_materialized(a, b, context=ProbeContext())
    prompt = [f for f in report.findings if f.axis == "prompt"]
    assert [(f.key, f.severity, f.b) for f in prompt] == [
        ("prompt.system", "high", "You are a careful tutor.")
    ]
    assert "You are a careful tutor." in prompt[0].summary
    assert {f.align for f in report.findings if f.severity in ("high", "medium")} == {"prompt"}


def test_a_messages_dataset_diff_runs_every_probe(tmp_path):
    a, b = pair(tmp_path, "messages", ("training.max_length=20",))
    report = diff_materialized(a, b, context=ProbeContext())
    assert {"loss_mask", "bos", "consistency", "template", "tokens", "prompt", "data"} <= set(report.probes)
    loss_mask = report.probes["loss_mask"]["a"]
    assert (loss_mask["examples"], loss_mask["prompt_tokens_trained"]) == (8, True)
    assert report.probes["bos"]["a"]["leading_bos"] == {"0": 8}
    assert report.probes["consistency"]["a"]["eval_protocol"].startswith("none")
    assert "tokens.truncation" in {f.key for f in report.findings}


def two_column_rows(count: int = 12) -> list[dict]:
    """Messages rows that carry two tool lists and Alpaca rows that carry two histories, so that recipes reading
    different columns (data.columns) differ in exactly that part of the prompt."""
    return [
        {
            "instruction": f"What is {i}+2?",
            "output": str(i + 2),
            "history": [["Hi", "Hello"]],
            "short_history": [],
        }
        for i in range(count)
    ]


def test_earlier_turns_that_differ_are_one_prompt_history_finding(tmp_path):
    data = write_data(tmp_path / "history", two_column_rows(), two_column_rows(3))
    a = materialize(resolve_recipe("revise", [*PLAIN, "data.format=alpaca"]), data=data, samples=8)
    b = materialize(
        resolve_recipe("revise", [*PLAIN, "data.format=alpaca", "data.columns={history: short_history}"]),
        data=data,
        samples=8,
    )
    report = diff_materialized(a, b, context=ProbeContext())
    prompt = [f for f in report.findings if f.axis == "prompt"]
    assert [(f.key, f.severity) for f in prompt] == [("prompt.history", "high")]
    assert prompt[0].a == [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert prompt[0].b == []
    assert prompt[0].summary.startswith("earlier turns differ for the same row (8 of 8 rows)")


def test_tool_schemas_that_differ_are_one_prompt_tools_finding(tmp_path):
    from test_row_formats import TOOL_TEMPLATE, WEATHER_TOOL

    clock = {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}}
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Weather in city {i}?"},
                {"role": "assistant", "content": "Sunny"},
            ],
            "tools": [WEATHER_TOOL],
            "more_tools": [WEATHER_TOOL, clock],
        }
        for i in range(12)
    ]
    data = write_data(tmp_path / "tools", rows)
    template = f"template.chat_template={json.dumps(TOOL_TEMPLATE)}"
    a = materialize(resolve_recipe("revise", [*PLAIN, template]), data=data, samples=8)
    b = materialize(
        resolve_recipe(
            "revise", [*PLAIN, template, "data.format=messages", "data.columns={tools: more_tools}"]
        ),
        data=data,
        samples=8,
    )
    report = diff_materialized(a, b, context=ProbeContext())
    prompt = [f for f in report.findings if f.axis == "prompt"]
    assert [(f.key, f.severity) for f in prompt] == [("prompt.tools", "high")]
    assert (prompt[0].a, prompt[0].b) == ([WEATHER_TOOL], [WEATHER_TOOL, clock])
    assert {f.align for f in report.findings if f.severity == "high"} == {"prompt"}


def test_rows_handed_to_trl_as_plain_strings_are_one_template_applied_finding(tmp_path):
    data = write_data(tmp_path / "plain", rows_like("question_answer"), rows_like("question_answer", 3))
    a = materialize(resolve_recipe("revise", PLAIN), data=data, samples=8)
    b = materialize(
        resolve_recipe("revise", [*PLAIN, "data.trl_format=prompt_completion_text"]), data=data, samples=8
    )
    assert (a.trl_format, b.trl_format) == ("prompt_completion", "prompt_completion_text")
    report = diff_materialized(a, b, only=["template"], context=ProbeContext())
    [finding] = report.findings
    assert (finding.key, finding.severity, finding.a, finding.b) == ("template.applied", "high", True, False)
    assert finding.summary.startswith("B (revise)'s rows reach TRL without a chat template")
    assert report.probes["template"]["b"]["rendered"] == ""
