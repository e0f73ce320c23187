"""Rows in every registered format: each is detected from its columns, becomes one Conversation, and reaches TRL in
the format the recipe hands over, tokenized by TRL's own preparation on the packaged Llama 3.2 tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.data.conversation import Conversation
from parity.data.formats import detect_format
from parity.errors import ParityError
from parity.materialize import materialize
from parity.registry import resolve_recipe
from parity.spec import DataSpec, PromptSpec
from parity.trl_bridge import IGNORE_INDEX, prepare_rows

PLAIN = [
    "data.task=null",
    "data.format=null",
    "data.columns={}",
    "data.trl_format=null",
    "data.preprocess=[]",
    "data.hub_path=null",
    "data.hub_config=null",
    "data.eval_from=test",
    "prompt.user_template=null",
    "prompt.instruction=''",
    "eval.prompt=''",
    "eval.flexible_regex=null",
    "training.completion_only_loss=<default>",
]
"""revise with nothing GSM8K left: no task, no template or instruction, no eval protocol, TRL's default loss mask
(its chat template, tokenizer and training arguments stay)."""
TOOL_TEMPLATE = (
    "{% if tools %}{{ '<|tools|>\\n' + (tools | tojson) + '\\n' }}{% endif %}"
    "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' }}"
    "{% if m.get('tool_calls') %}{{ m['tool_calls'] | tojson }}{% else %}{{ m['content'] }}{% endif %}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
"""A chat template that renders tool schemas, tool calls and tool results (revise's renders none of them)."""
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def plain_recipe(*overrides: str):
    return resolve_recipe("revise", [*PLAIN, *overrides])


def write_data(folder: Path, train: list[dict], test: list[dict] | None = None) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in train))
    if test is not None:
        (folder / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in test))
    return str(folder)


def materialized(tmp_path: Path, rows: list[dict], *overrides: str, test: list[dict] | None = None):
    return materialize(plain_recipe(*overrides), data=write_data(tmp_path / "data", rows, test), samples=8)


USER_ASSISTANT = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
FORMATS = {
    "messages": (
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "4"},
            ]
        },
        "messages",
        Conversation(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                *USER_ASSISTANT,
            ]
        ),
    ),
    "sharegpt": (
        {
            "conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}],
            "system": "Be brief.",
        },
        "sharegpt",
        Conversation([{"role": "system", "content": "Be brief."}, *USER_ASSISTANT]),
    ),
    "prompt_completion": (
        {"prompt": [USER_ASSISTANT[0]], "completion": [USER_ASSISTANT[1]]},
        "prompt_completion",
        Conversation(USER_ASSISTANT),
    ),
    "prompt_completion_text": (
        {"prompt": "2+2?", "completion": " 4"},
        "prompt_completion",
        Conversation([USER_ASSISTANT[0], {"role": "assistant", "content": " 4"}], plain=True),
    ),
    "alpaca": (
        {"instruction": "Add the numbers.", "input": "2 and 2", "output": "4", "system": "Be brief."},
        "alpaca",
        Conversation(
            [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Add the numbers.\n2 and 2"},
                {"role": "assistant", "content": "4"},
            ]
        ),
    ),
    "question_answer": ({"question": "2+2?", "answer": "4"}, "input_output", Conversation(USER_ASSISTANT)),
    "text": ({"text": "The sky is blue."}, "text", Conversation(text="The sky is blue.")),
    "tokenized": (
        {"input_ids": [128000, 17, 10, 17, 30, 220, 19], "labels": [-100, -100, -100, -100, -100, 220, 19]},
        "tokenized",
        Conversation(
            tokens={
                "input_ids": [128000, 17, 10, 17, 30, 220, 19],
                "labels": [-100, -100, -100, -100, -100, 220, 19],
            }
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(FORMATS))
def test_each_format_is_detected_from_its_columns_and_becomes_one_conversation(case):
    row, name, conversation = FORMATS[case]
    bound = detect_format(row)
    assert bound.name == name
    assert bound.convert(row) == conversation


def test_question_answer_rows_are_input_output_through_a_column_map():
    bound = detect_format({"question": "q", "answer": "a"})
    assert (bound.name, bound.columns, bound.describe()) == (
        "input_output",
        {"input": "question", "output": "answer"},
        "input_output (input=question, output=answer)",
    )
    assert detect_format({"problem": "p", "solution": "s"}).columns == {
        "input": "problem",
        "output": "solution",
    }
    assert detect_format({"instruction": "i", "input": "x", "output": "o"}).name == "alpaca"


PREPARED = {
    # case: (TRL format, TRL row, decoded input_ids, decoded trained span)
    "messages": (
        "messages",
        FORMATS["messages"][0],
        "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello<|end_of_text|>\n<|user|>\n2+2?\n<|assistant|>\n4"
        "<|end_of_text|>",
        None,  # TRL trains every token of a messages row (no completion mask)
    ),
    "sharegpt": (
        "messages",
        {"messages": [{"role": "system", "content": "Be brief."}, *USER_ASSISTANT]},
        "<|system|>\nBe brief.\n<|user|>\n2+2?\n<|assistant|>\n4<|end_of_text|>",
        None,
    ),
    "prompt_completion": (
        "prompt_completion",
        FORMATS["prompt_completion"][0],
        "<|user|>\n2+2?\n<|assistant|>\n4<|end_of_text|>",
        "4<|end_of_text|>",
    ),
    "prompt_completion_text": (
        "prompt_completion_text",
        {"prompt": "2+2?", "completion": " 4"},
        "<|begin_of_text|>2+2? 4<|end_of_text|>",  # TRL tokenizes plain text with BOS and appends EOS
        " 4<|end_of_text|>",
    ),
    "alpaca": (
        "prompt_completion",
        {
            "prompt": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Add the numbers.\n2 and 2"},
            ],
            "completion": [{"role": "assistant", "content": "4"}],
        },
        "<|system|>\nBe brief.\n<|user|>\nAdd the numbers.\n2 and 2\n<|assistant|>\n4<|end_of_text|>",
        "4<|end_of_text|>",
    ),
    "question_answer": (
        "prompt_completion",
        FORMATS["prompt_completion"][0],
        "<|user|>\n2+2?\n<|assistant|>\n4<|end_of_text|>",
        "4<|end_of_text|>",
    ),
    "text": (
        "text",
        {"text": "The sky is blue."},
        "<|begin_of_text|>The sky is blue.<|end_of_text|>",
        None,
    ),
    "tokenized": ("tokenized", FORMATS["tokenized"][0], "<|begin_of_text|>2+2? 4", " 4"),
}


@pytest.mark.parametrize("case", sorted(PREPARED))
def test_each_format_reaches_trl_in_its_own_format_and_trl_tokenizes_it(tmp_path, case):
    row = FORMATS[case][0]
    trl_format, trl_row, text, trained = PREPARED[case]
    m = materialized(tmp_path, [row, row])
    assert m.trl_format == trl_format
    assert m.sample_rows[0] == trl_row
    ids, labels = m.prepared.input_ids[0], m.prepared.labels[0]
    assert m.tokenizer.decode(ids) == text
    kept = [label for label in labels if label != IGNORE_INDEX]
    if trained is None:
        assert labels == ids
    else:
        assert m.tokenizer.decode(kept) == trained
        assert labels == [IGNORE_INDEX] * (len(ids) - len(kept)) + kept
    reference = prepare_rows(m.sample_rows, m.tokenizer, m.sft_config, "train", engine="trl")
    assert (m.prepared.input_ids, m.prepared.labels) == (reference.input_ids, reference.labels)


def test_concrete_ids_of_a_question_answer_row_with_the_packaged_tokenizer(tmp_path):
    m = materialized(tmp_path, [FORMATS["question_answer"][0]] * 2)
    # '<|user|>\n' '2+2?\n' '<|assistant|>\n' '4' EOS
    assert m.prepared.input_ids[0] == [
        27,
        91,
        882,
        91,
        397,
        17,
        10,
        17,
        5380,
        27,
        91,
        78191,
        91,
        397,
        19,
        128001,
    ]
    assert m.prepared.labels[0] == [-100] * 14 + [19, 128001]


def test_tool_calls_and_the_tools_schema_reach_trl_and_the_template(tmp_path):
    row = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}
                ],
            },
            {"role": "tool", "content": "18C"},
            {"role": "assistant", "content": "It is 18C."},
        ],
        "tools": [WEATHER_TOOL],
    }
    m = materialized(tmp_path, [row, row], f"template.chat_template={json.dumps(TOOL_TEMPLATE)}")
    assert m.sample_rows[0] == {"messages": row["messages"], "tools": [WEATHER_TOOL]}
    text = m.tokenizer.decode(m.prepared.input_ids[0])
    assert text.startswith(
        '<|tools|>\n[{"type": "function", "function": {"name": "weather", "description": "Weather'
    )
    assert (
        '<|assistant|>\n[{"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}]'
        in text
    )
    assert text.endswith("<|tool|>\n18C\n<|assistant|>\nIt is 18C.<|end_of_text|>\n")


def test_sharegpt_function_calls_and_observations_become_tool_calls_and_tool_messages():
    row = {
        "conversations": [
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
            {"from": "observation", "value": "18C"},
            {"from": "gpt", "value": "It is 18C."},
        ],
        "tools": json.dumps([WEATHER_TOOL]),
    }
    conversation = detect_format(row).convert(row)
    assert conversation.messages[1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}],
    }
    assert [m["role"] for m in conversation.messages] == ["user", "assistant", "tool", "assistant"]
    assert conversation.tools == [WEATHER_TOOL]


def test_alpaca_placeholders_come_from_the_rows_own_columns(tmp_path):
    row = {"instruction": "Add the numbers.", "input": "2 and 2", "output": "4"}
    template = "### Instruction:\n{instruction}\n\n### Input:\n{input}"
    m = materialized(tmp_path, [row, row], f"prompt.user_template={json.dumps(template)}")
    assert m.sample_rows[0]["prompt"] == [
        {"role": "user", "content": "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 2"}
    ]


def test_the_recipes_instruction_fills_instruction_only_where_the_rows_have_no_such_column(tmp_path):
    m = materialized(
        tmp_path,
        [{"question": "2+2?", "answer": "4"}] * 2,
        "prompt.user_template='{question} {instruction}'",
        "prompt.instruction='Think.'",
    )
    assert m.sample_rows[0]["prompt"][0]["content"] == "2+2? Think."


def test_an_unknown_placeholder_is_one_error_naming_the_columns(tmp_path):
    with pytest.raises(ParityError) as err:
        materialized(
            tmp_path, [{"instruction": "i", "output": "o"}], "prompt.user_template='{instruction}\n{input}'"
        )
    assert str(err.value) == (
        "recipe 'revise': prompt.user_template: {input} is not a column of the rows (text columns: instruction, "
        "output; {instruction} is the recipe's prompt.instruction)"
    )


def test_a_system_prompt_set_by_the_recipe_replaces_the_rows_own(tmp_path):
    m = materialized(tmp_path, [FORMATS["alpaca"][0]] * 2, "prompt.system='You are a calculator.'")
    assert m.sample_rows[0]["prompt"][0] == {"role": "system", "content": "You are a calculator."}
    assert [message["role"] for message in m.sample_rows[0]["prompt"]] == ["system", "user"]


def test_a_named_format_with_a_column_map_reads_other_column_names(tmp_path):
    rows = [{"q": "2+2?", "a": "4"}, {"q": "3+3?", "a": "6"}]
    m = materialized(tmp_path, rows, "data.format=input_output", "data.columns={input: q, output: a}")
    assert m.sample_rows[1] == {
        "prompt": [{"role": "user", "content": "3+3?"}],
        "completion": [{"role": "assistant", "content": "6"}],
    }


def test_rows_in_no_known_format_are_one_error_naming_their_columns(tmp_path):
    with pytest.raises(ParityError) as err:
        materialized(tmp_path, [{"query_text": "2+2?", "reply": "4"}])
    assert str(err.value).startswith(
        "rows with columns query_text, reply are in no known format (messages, sharegpt"
    )


def test_a_bad_row_names_its_file_and_line(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "train.jsonl").write_text(
        json.dumps({"question": "2+2?", "answer": "4"})
        + "\n\n"
        + json.dumps({"question": ["x"], "answer": "4"})
        + "\n"
    )
    with pytest.raises(ParityError) as err:
        materialize(plain_recipe(), data=str(folder), samples=2)
    assert str(err.value) == (
        f"{folder / 'train.jsonl'}:3: expected a string in column 'question' (the user turn), got list "
        "(rows read as input_output (input=question, output=answer))"
    )


def test_an_unknown_sharegpt_role_is_named(tmp_path):
    row = {"conversations": [{"from": "narrator", "value": "Once"}, {"from": "gpt", "value": "upon"}]}
    with pytest.raises(
        ParityError, match=r"train.jsonl:1: unknown ShareGPT role 'narrator' in column 'conversations'"
    ):
        materialized(tmp_path, [row])


def test_train_only_data_has_no_eval_split_and_no_error(tmp_path):
    m = materialized(tmp_path, [{"question": "2+2?", "answer": "4"}, {"question": "3+3?", "answer": "6"}])
    assert (m.raw.test, m.data.eval, m.data.split_rule) == (
        [],
        [],
        "no eval split (the data has no test split)",
    )
    holdout = materialized(
        tmp_path / "holdout",
        [{"question": f"{i}+1?", "answer": str(i + 1)} for i in range(10)],
        "data.eval_from=train_holdout",
        "data.eval_fraction=0.2",
    )
    assert (len(holdout.data.train), len(holdout.data.eval)) == (8, 2)


def test_no_default_hub_dataset_or_config_and_the_built_ins_name_their_own():
    assert (DataSpec().hub_path, DataSpec().hub_config, DataSpec().task) == (None, None, None)
    assert PromptSpec().user_template is None
    assert (resolve_recipe("revise").data.hub_config, resolve_recipe("llmhalluc").data.hub_config) == (
        "main",
        None,
    )
    assert resolve_recipe("revise").data.hub_path == "openai/gsm8k"


def test_hub_data_without_a_named_dataset_is_one_error():
    with pytest.raises(ParityError, match="--data hub: recipe 'revise' names no hub dataset"):
        materialize(plain_recipe(), data="hub")


def test_synthetic_data_needs_a_task():
    with pytest.raises(ParityError, match="recipe 'revise' names no task"):
        materialize(plain_recipe(), data="synthetic")


@pytest.mark.parametrize("case", ["text", "tokenized"])
def test_a_prompt_on_rows_without_turns_is_an_error_not_dropped(tmp_path, case):
    row = FORMATS[case][0]
    with pytest.raises(ParityError, match=f"data.trl_format {case}: the rows have no turns"):
        materialized(tmp_path, [row, row], "prompt.system='Be brief.'")


@pytest.mark.parametrize("template", [None, "{question}\n{instruction}"])
def test_the_one_exchange_fast_path_writes_what_the_conversations_give(tmp_path, template):
    from parity.data.pipeline import exchange_rows, trl_rows
    from parity.tasks.gsm8k.synthetic import generate_rows

    rows = generate_rows(50, seed=2)
    overrides = ["prompt.instruction='Think.'"] + (
        [f"prompt.user_template={json.dumps(template)}"] if template else []
    )
    m = materialized(tmp_path, rows, *overrides)
    generic = trl_rows(m.conversations(rows), rows, m.recipe, "prompt_completion")
    assert exchange_rows(m.row_format.exchanges(rows), rows, m.recipe) == generic == m.recipe_rows(rows)
    assert generic[0]["prompt"][0]["content"] == rows[0]["question"] + ("\nThink." if template else "")


def test_a_preprocessing_step_on_a_column_the_rows_lack_names_the_columns(tmp_path):
    step = "data.preprocess=[{op: replace, pattern: a, replacement: b, field: gold}]"
    with pytest.raises(ParityError) as err:
        materialized(tmp_path, [{"question": "2+2?", "answer": "4"}], step)
    assert (
        str(err.value)
        == "data.preprocess[0].field 'gold' is not a text column of the rows (columns: answer, question)"
    )
    m = materialized(
        tmp_path / "ok", [{"instruction": "Add 2 and 2.", "output": "4"}] * 2, step.replace("gold", "output")
    )
    assert m.sample_rows[0]["completion"] == [{"role": "assistant", "content": "4"}]
    m = materialized(
        tmp_path / "b", [{"instruction": "Add.", "output": "a4"}] * 2, step.replace("gold", "output")
    )
    assert m.sample_rows[0]["completion"] == [{"role": "assistant", "content": "b4"}]
