"""Bounded chat-template rendering: same text as transformers, one-line errors, limits that stop in seconds."""

from __future__ import annotations

import time

import pytest

from parity.errors import ParityError
from parity.registry import resolve_recipe
from parity.render import (
    MAX_TEMPLATE_CHARS,
    TemplateError,
    check_conversations,
    check_template,
    missing_content,
    render_bounded,
    template_kwargs_of,
    unfilled_placeholders,
)
from parity.tokenizer import load_tokenizer

MESSAGES = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
PLAIN = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


@pytest.fixture(scope="module")
def revise_tokenizer():
    return load_tokenizer(resolve_recipe("revise"))[0]


@pytest.mark.parametrize("generation_prompt", [False, True])
def test_same_text_as_apply_chat_template(revise_tokenizer, generation_prompt):
    messages = MESSAGES[:1] if generation_prompt else MESSAGES
    ours = render_bounded(
        revise_tokenizer.chat_template, messages, generation_prompt, template_kwargs_of(revise_tokenizer)
    )
    theirs = revise_tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    assert ours == theirs
    expected_end = "<|assistant|>\n" if generation_prompt else "<|assistant|>\n4<|end_of_text|>"
    assert ours == "<|user|>\nWhat is 2+2?\n" + expected_end


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% for m in messages %}", "syntax error at template line 1: Unexpected end of template"),
        ("{{ raise_exception('system messages are not supported') }}", "system messages are not supported"),
        ("{{ messages[0].content.missing.deeper }}", "uses an undefined value"),
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ ''.__class__.__mro__ }}", "the sandbox refused an operation: access to attribute '__class__'"),
        ("{{ cycler.__init__.__globals__ }}", "the sandbox refused an operation"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion too deep"),
        ("", "the chat template is empty"),
        ("   \n\t", "the chat template is empty"),
        ("{{ messages[0]['content'] * 200000 }}", "repeats a str of length 12 200,000 times"),
        ("{{ 2 ** 100000 }}", "raises 2 to the power 100000"),
    ],
)
def test_template_errors_are_one_line(template, message):
    with pytest.raises(TemplateError) as caught:
        render_bounded(template, MESSAGES)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_non_string_template():
    with pytest.raises(TemplateError, match="must be a string, got NoneType"):
        check_template(None)


def test_size_limit_fails_fast():
    start = time.monotonic()
    with pytest.raises(TemplateError, match="has 5,000,000 characters, more than the limit of 200,000"):
        check_template("x" * 5_000_000)
    assert time.monotonic() - start < 0.5
    check_template("x" * MAX_TEMPLATE_CHARS)


def test_nested_loop_stops_at_the_time_limit():
    template = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    start = time.monotonic()
    with pytest.raises(TemplateError, match="took over 0.5 s"):
        render_bounded(template, MESSAGES, seconds=0.5)
    assert time.monotonic() - start < 2.0


def test_output_limit_stops_a_loop_that_prints():
    template = "{% for i in range(100000) %}{% for m in messages %}{{ m['content'] }}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="produced over 1,000,104 characters"):
        render_bounded(template, MESSAGES)


def test_tracer_is_restored():
    import sys

    before = sys.gettrace()
    with pytest.raises(TemplateError):
        render_bounded("{{ 1 / 0 }}", MESSAGES)
    render_bounded(PLAIN, MESSAGES)
    assert sys.gettrace() is before


def test_missing_content_ignores_trimmed_whitespace():
    messages = [{"role": "user", "content": "  Q?\n"}, {"role": "assistant", "content": "A"}]
    assert missing_content("<u>Q?</u><a>A</a>", messages) == []
    assert missing_content("<u>Q?</u>", messages) == [messages[1]]


def test_unfilled_placeholders():
    assert unfilled_placeholders("Q: {query} {question}", ["{query}", "{question}"]) == [
        "{query}",
        "{question}",
    ]
    assert unfilled_placeholders("Q: 3 {x} apples", ["{question}"]) == []


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (
            "{% for m in messages %}{{ m.text }}{% endfor %}",
            "drops message content: example 0's user message",
        ),
        ("{% for m in messages %}{{ m['role'] }}{% endfor %}", "drops message content"),
        ("{{ 1 / 0 }}", "recipe 'mine': chat template: failed while rendering: ZeroDivisionError"),
    ],
)
def test_check_conversations_requires_every_message(template, message):
    with pytest.raises(ParityError) as caught:
        check_conversations("mine", template, [MESSAGES], {"eos_token": "</s>"})
    assert message in str(caught.value)


def test_a_template_that_drops_part_of_the_content_passes_the_check():
    """Dropping some messages' content is measured by the `content` probe, not refused before tokenizing."""
    user_only = "{% for m in messages if m['role'] == 'user' %}{{ m['content'] }}{% endfor %}"
    check_conversations("mine", user_only, [MESSAGES], {})


def test_check_conversations_unfilled_placeholder_and_missing_template():
    messages = [{"role": "user", "content": "{query}"}, {"role": "assistant", "content": "4"}]
    with pytest.raises(ParityError, match=r"example 0 keeps the unfilled placeholder\(s\) \{query\}"):
        check_conversations("mine", PLAIN, [messages], {}, ["{query}"])
    with pytest.raises(ParityError, match="chat template: none"):
        check_conversations("mine", None, [MESSAGES], {})
    check_conversations("mine", PLAIN, [MESSAGES, MESSAGES], {}, ["{question}\n{instruction}"])
