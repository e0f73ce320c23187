"""Probe `content`: does every message's content reach the model? Each training example's messages are looked up
in what TRL's preparation made of them: assistant content meant to carry loss in the trained spans (labels), every
other message in the input ids. A chat template that drops or rewrites content (DeepSeek-R1-Distill's keeps only
the text after `</think>` in assistant turns) shows up as characters and tokens that never reach the loss."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.rendering import CLOCKS, frozen_clock
from parity.textdiff import pair_names
from parity.trl_bridge import IGNORE_INDEX, Prepared

AXIS = "content"
make_finding = FindingMaker(AXIS)
ALIGN = "template"
"""Content is dropped by the chat template the recipe renders with: aligning the template removes the finding."""
SPAN_SEPARATOR = "\x00"
"""Joins separately decoded trained spans, so no match runs across two spans."""
SHOWN_CHARS = 160
"""Characters of the first dropped text quoted in a finding."""
WHITESPACE = re.compile(r"\s+")


def normalized(text: str) -> str:
    """Whitespace runs collapsed to one space, ends stripped: templates that trim or reflow newlines around content
    (ChatML's reasoning block, `| trim`) keep it."""
    return WHITESPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class Message:
    """One message of a training example and where its content must arrive."""

    role: str
    content: str
    in_loss: bool
    """True for content meant to carry loss (the completion; assistant turns of a messages row)."""
    turn: int


def messages_of(row: dict[str, Any]) -> list[Message] | None:
    """The messages of one TRL-format row (conversational prompt/completion, messages, plain prompt/completion);
    None for a row with no messages to check (plain text, pre-tokenized)."""
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list) and isinstance(completion, list):
        return [*_messages(prompt, False, 0), *_messages(completion, True, len(prompt))]
    if isinstance(prompt, str) and isinstance(completion, str):
        return [Message("user", prompt, False, 0), Message("assistant", completion, True, 1)]
    messages = row.get("messages")
    if isinstance(messages, list):
        return [
            Message(str(m.get("role", "")), m["content"], m.get("role") == "assistant", turn)
            for turn, m in enumerate(messages)
            if isinstance(m, dict) and isinstance(m.get("content"), str) and m["content"].strip()
        ]
    return None


def loaded_messages(m: Materialized, index: int) -> list[Message] | None:
    """For a recipe whose trainer was handed token ids: the messages of the raw row its framework loaded and built
    train example `index` from (paired by identity, parity.capture.examples); None where none pairs with it."""
    pairing = m.captured.token_rows if m.captured is not None else None
    conversation = pairing.loaded.get(("train", index)) if pairing is not None else None
    if conversation is None or not conversation.messages:
        return None
    return messages_of({"messages": conversation.messages})


def _messages(messages: list[Any], in_loss: bool, first_turn: int) -> list[Message]:
    return [
        Message(str(m.get("role", "")), m["content"], in_loss, first_turn + turn)
        for turn, m in enumerate(messages)
        if isinstance(m, dict) and isinstance(m.get("content"), str) and m["content"].strip()
    ]


def trained_spans(ids: list[int], labels: list[int]) -> list[list[int]]:
    """The runs of consecutive token ids whose labels carry loss."""
    spans: list[list[int]] = []
    current: list[int] = []
    for token, label in zip(ids, labels, strict=True):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    return spans


def dropped_words(content: str, target: str, prefilled: Callable[[], str] = str) -> list[str]:
    """Runs of `content` (whitespace-normalized, compared word by word) that do not occur in `target`, in order;
    empty when the content occurs in the target as a whole. A run that occurs in the target after all (a word glued
    to template text) or in `prefilled()` (text the generation prompt already supplies, like `<think>`) is kept."""
    if content in target:
        return []
    words, target_words = content.split(" "), target.split(" ")
    matcher = SequenceMatcher(None, words, target_words, autojunk=False)
    runs, position = [], 0
    for start, _, size in matcher.get_matching_blocks():
        if start > position:
            runs.append(" ".join(words[position:start]))
        position = start + size
    runs = [run for run in runs if run not in target]
    return [run for run in runs if run not in prefilled()] if runs else []


def generation_prefill(m: Materialized, row: dict[str, Any]) -> str:
    """The text the chat template's generation prompt adds after a conversational prompt (e.g. `<｜Assistant｜><think>`),
    normalized; empty for rows without a conversational prompt."""
    prompt = row.get("prompt")
    if not isinstance(prompt, list) or not m.tokenizer.chat_template:
        return ""
    with_prompt = m.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    without = m.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=False)
    return normalized(with_prompt[len(without) :]) if with_prompt.startswith(without) else ""


def per_example(m: Materialized) -> tuple[list[dict[str, Any]], Prepared, set[int]]:
    """The sampled rows, their examples one per row before any truncation, and the indices of examples to skip: a
    captured recipe's examples are as its own code made them, so those that reached max_length (truncated there,
    which the `padding` probe reports) are skipped."""
    rows, examples = m.sample_rows, m.examples
    max_length = None if m.sft_config.packing else m.sft_config.max_length
    reached = {
        i for i, ids in enumerate(examples.input_ids) if max_length is not None and len(ids) >= max_length
    }
    if not reached or m.captured is not None:
        return rows, examples, reached
    import dataclasses
    import warnings

    from parity.trl_bridge import prepare_rows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = dataclasses.replace(m.sft_config, max_length=None, packing=False)
    return rows, prepare_rows(rows, m.tokenizer, config, "content"), set()


def _decode(m: Materialized, ids: list[int]) -> str:
    return m.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


@measurement(AXIS)
def measure(m: Materialized) -> dict[str, Any]:
    """Characters and tokens of message content that never reach the model, by where they should have arrived."""
    rows, examples, skipped = per_example(m)
    if len(rows) != len(examples):
        return {
            "measured": False,
            "why": f"{len(rows)} rows but {len(examples)} prepared examples: not paired",
        }
    totals = {"loss": _Tally(), "input": _Tally(), "history": _Tally()}
    checked = trained_tokens = 0
    for index, (row, ids, labels) in enumerate(zip(rows, examples.input_ids, examples.labels, strict=True)):
        messages = messages_of(row) or loaded_messages(m, index)
        if messages is None or index in skipped:
            continue
        checked += 1
        trained_tokens += len(labels) - labels.count(IGNORE_INDEX)
        prefilled = functools.cache(functools.partial(generation_prefill, m, row))
        full = normalized(_decode(m, ids))
        trained = SPAN_SEPARATOR.join(normalized(_decode(m, span)) for span in trained_spans(ids, labels))
        for message in messages:
            content = normalized(message.content)
            runs = dropped_words(content, trained if message.in_loss else full, prefilled)
            if not runs:
                totals[_where(message)].add(index, message, content, [])
                continue
            tokens = len(m.tokenizer(" ".join(runs), add_special_tokens=False)["input_ids"])
            totals[_where(message)].add(index, message, content, runs, tokens)
    if not checked:
        return {
            "measured": False,
            "why": "no example with messages to check (plain text, or token ids no loaded row pairs with)",
        }
    return plain(
        {
            "measured": True,
            "examples_checked": checked,
            "examples_skipped_truncated": len(skipped),
            "trained_tokens": trained_tokens,
            "trained_tokens_per_example": round(trained_tokens / checked, 3),
            **{where: tally.as_dict() for where, tally in totals.items()},
        }
    )


def _where(message: Message) -> str:
    """'loss' (content meant to carry loss), 'history' (an earlier assistant turn in the prompt) or 'input'."""
    if message.in_loss:
        return "loss"
    return "history" if message.role == "assistant" else "input"


class _Tally:
    """Content characters and the dropped part, over the checked examples."""

    def __init__(self) -> None:
        self.chars = self.dropped_chars = self.dropped_tokens = 0
        self.examples: set[int] = set()
        self.first: dict[str, Any] | None = None
        self.roles: set[str] = set()

    def add(self, index: int, message: Message, content: str, runs: list[str], tokens: int = 0) -> None:
        self.chars += len(content)
        if not runs:
            return
        self.dropped_chars += sum(map(len, runs))
        self.dropped_tokens += tokens
        self.examples.add(index)
        self.roles.add(message.role)
        if self.first is None:
            text = " ".join(runs)
            self.first = {
                "example": index,
                "turn": message.turn,
                "role": message.role,
                "dropped_chars": len(text),
                "dropped_text": text[:SHOWN_CHARS] + ("..." if len(text) > SHOWN_CHARS else ""),
            }

    def as_dict(self) -> dict[str, Any]:
        return {
            "content_chars": self.chars,
            "dropped_chars": self.dropped_chars,
            "dropped_tokens": self.dropped_tokens,
            "examples_dropping": len(self.examples),
            "roles": sorted(self.roles),
            "first": self.first,
        }


@PROBES.register(AXIS)
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Message content each recipe's template and masking keep out of the model or out of the loss."""
    with frozen_clock(CLOCKS[0]):
        return compare(a, b, measure(a), measure(b), ctx)


FINDINGS = (
    ("loss", "content.not_trained", "high", "content meant to carry loss never reaches it"),
    ("input", "content.input_dropped", "high", "message content never reaches the model's input"),
    ("history", "content.history_dropped", "medium", "earlier assistant turns lose content in the prompt"),
)
"""(where, finding key, severity, what it means) for each place content must arrive."""


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """One finding per place where either recipe drops content (a recipe's own defect: reported even when both
    recipes share it, like `consistency`)."""
    names = pair_names(a.recipe.name, b.recipe.name)
    findings = []
    for where, key, severity, meaning in FINDINGS:
        dropping = [(name, v) for name, v in zip(names, (va, vb), strict=True) if _dropped(v, where)]
        if not dropping:
            continue
        findings.append(
            make_finding(
                key,
                severity,
                _dropped(va, where),
                _dropped(vb, where),
                f"{meaning}: "
                + "; ".join(
                    _describe(name, v, where) if _dropped(v, where) else _kept(name, v)
                    for name, v in zip(names, (va, vb), strict=True)
                    if v.get("measured")
                ),
                {side: v.get(where) for side, v in (("a", va), ("b", vb))},
                align=ALIGN,
            )
        )
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))


def _dropped(v: dict, where: str) -> int | None:
    return v[where]["dropped_chars"] if v.get("measured") else None


def _kept(name: str, v: dict[str, Any]) -> str:
    return f"{name} keeps it all, {v['trained_tokens_per_example']:,} trained tokens per example"


def _describe(name: str, v: dict[str, Any], where: str) -> str:
    tally, first = v[where], v[where]["first"]
    role = "assistant" if where == "loss" else "/".join(tally["roles"])
    return (
        f"{name} drops {tally['dropped_chars']:,} of {tally['content_chars']:,} characters of {role} content "
        f"(about {tally['dropped_tokens']:,} tokens) in {tally['examples_dropping']} of {v['examples_checked']} "
        f"example(s), {v['trained_tokens_per_example']:,} trained tokens per example; first: example "
        f"{first['example']}, {first['role']} turn {first['turn']} loses {first['dropped_text']!r}"
    )
