"""The one conversational form every row format becomes, and a row's identity: its normalised user turns.
Helpers here also read TRL-format rows (prompt/completion, messages, text) without knowing their format.

Identity rule (documented in the README, tested in tests/test_row_identity.py):
* a row's key is the text of its user turns, each normalised (Unicode NFC, every whitespace run collapsed to
  one space, ends stripped) and joined by ' \\x1e '; a row without user turns (plain text, a pre-tokenized row)
  is keyed by its text (decoded ids of its untrained prompt span, special tokens skipped);
* rows that a recipe's own code built (captured rows) carry that recipe's template: the words every user text of
  the set starts and ends with are the template's constant parts and are removed (`strip_constant_words`),
  when the set has at least MIN_ROWS_FOR_CONSTANT_WORDS distinct keys and no key would be left empty;
* two rows are the same row when their keys are equal, else when one row's key occurs in the other's whole
  normalised user text (see parity.capture.examples).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parity.labels import IGNORE_INDEX

TURN_SEPARATOR = " \x1e "
"""Joins the normalised user turns of one row (whitespace normalisation never produces it)."""
MIN_ROWS_FOR_CONSTANT_WORDS = 8
"""Fewest distinct keys from which words common to all of them are taken to be a template's, not content."""


@dataclass(slots=True)
class Conversation:
    """One row as messages (role, content, and tool calls where present), whatever format it came in (a value:
    never changed once built; the recipe's prompt builds a new one)."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[Any] | None = None
    """The tool schemas offered to the model (TRL's `tools` column), None when the row has none."""
    text: str | None = None
    """A plain-text row (language modeling): no turns."""
    tokens: dict[str, list[int]] | None = None
    """A pre-tokenized row: input_ids and, where given, labels and attention_mask."""
    plain: bool = False
    """True for prompt/completion given as plain strings (no chat template applied by TRL)."""

    def contents(self, role: str) -> list[str]:
        return [str(m.get("content") or "") for m in self.messages if m.get("role") == role]

    @property
    def system(self) -> str | None:
        """The system prompt (the first system message), None when there is none."""
        found = self.contents("system")
        return found[0] if found else None

    @property
    def user_turns(self) -> list[str]:
        return self.contents("user")

    @property
    def last_assistant(self) -> int | None:
        """Index of the last assistant message (None: no assistant turn)."""
        return next(
            (i for i in range(len(self.messages) - 1, -1, -1) if self.messages[i].get("role") == "assistant"),
            None,
        )

    @property
    def prompt_messages(self) -> list[dict[str, Any]]:
        """Messages before the last assistant turn (all of them when there is none)."""
        end = self.last_assistant
        return list(self.messages if end is None else self.messages[:end])

    @property
    def completion_messages(self) -> list[dict[str, Any]]:
        """The last assistant turn and anything after it."""
        end = self.last_assistant
        return [] if end is None else list(self.messages[end:])

    @property
    def completion(self) -> str:
        """The text the model is trained to produce last: the last assistant turn's content (or the plain text)."""
        end = self.last_assistant
        if end is not None:
            return str(self.messages[end].get("content") or "")
        return self.text or ""


def normalise(text: str) -> str:
    """NFC, every whitespace run collapsed to one space, ends stripped: the form identity compares."""
    return " ".join((text if text.isascii() else unicodedata.normalize("NFC", text)).split())  # ASCII is NFC


def key_of_turns(turns: list[str]) -> str:
    """The identity key of a row's user turns (or of its one text)."""
    return normalise(turns[0]) if len(turns) == 1 else TURN_SEPARATOR.join(map(normalise, turns))


def identity(key: str) -> str:
    """A short hash of an identity key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def conversation_key(conversation: Conversation, decode: Callable[[list[int]], str] | None = None) -> str:
    """The identity key of one row: its user turns (all its turns' text when it has no user turn), its plain text,
    or the decoded text of a pre-tokenized row's untrained prompt span ('' when nothing can be read)."""
    if conversation.messages:
        turns = conversation.user_turns or [str(m.get("content") or "") for m in conversation.messages]
        return key_of_turns(turns)
    if conversation.text is not None:
        return key_of_turns([conversation.text])
    if conversation.tokens is not None and decode is not None:
        return key_of_turns([decode(prompt_ids(conversation.tokens))])
    return ""


def prompt_ids(tokens: dict[str, list[int]]) -> list[int]:
    """A pre-tokenized row's ids before its first trained token (by labels or a completion mask; all ids when
    neither says)."""
    ids = tokens["input_ids"]
    labels, mask = tokens.get("labels"), tokens.get("completion_mask")
    if labels is not None:
        start = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), len(ids))
    elif mask is not None:
        start = next((i for i, m in enumerate(mask) if m), len(ids))
    else:
        return list(ids)
    return list(ids[:start]) if start else list(ids)


def strip_constant_words(keys: list[str]) -> list[str]:
    """The keys with the words all of them start and end with removed (a template's constant text), when there are
    at least MIN_ROWS_FOR_CONSTANT_WORDS distinct keys and every key keeps at least one word; else unchanged."""
    distinct = set(keys)
    if len(distinct) < MIN_ROWS_FOR_CONSTANT_WORDS:
        return list(keys)
    words = [key.split(" ") for key in distinct]
    head = _common_length(words)
    tail = _common_length([w[::-1] for w in words])
    if not head and not tail:
        return list(keys)
    if any(len(w) - head - tail < 1 for w in words):
        return list(keys)
    return [" ".join(key.split(" ")[head : len(key.split(" ")) - tail]) for key in keys]


def _common_length(sequences: list[list[str]]) -> int:
    """How many leading items all sequences share."""
    first = sequences[0]
    length = len(first)
    for other in sequences[1:]:
        length = min(length, len(other))
        for i in range(length):
            if other[i] != first[i]:
                length = i
                break
        if not length:
            break
    return length


def clean_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message without the None-valued keys a columnar file adds (parquet stores the union of all keys)."""
    return {k: v for k, v in message.items() if v is not None}


def _chatml(message: dict[str, Any]) -> dict[str, Any]:
    """A from/value message with TRL's key renaming (`maybe_convert_to_chatml`: from -> role, value -> content)."""
    if "from" not in message and "value" not in message:
        return message
    renamed = {"from": "role", "value": "content"}
    return {renamed.get(k, k): v for k, v in message.items()}


def trl_conversation(row: dict[str, Any]) -> Conversation:
    """A TRL-format row (what a recipe hands its trainer) as a Conversation."""
    tools = row.get("tools")
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list) or isinstance(completion, list):
        messages = [clean_message(m) for m in (prompt or []) + (completion or [])]
        return Conversation(messages, tools)
    if isinstance(prompt, str) and isinstance(completion, str):
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        return Conversation(messages, tools, plain=True)
    for column in ("messages", "conversations"):
        value = row.get(column)
        if isinstance(value, list):
            return Conversation([clean_message(_chatml(m)) for m in value], tools)
    if isinstance(row.get("input_ids"), list):
        keep = ("input_ids", "labels", "attention_mask", "completion_mask", "assistant_masks")
        return Conversation(tokens={k: list(row[k]) for k in keep if isinstance(row.get(k), list)})
    text = row.get("text")
    return Conversation(text=text if isinstance(text, str) else (prompt if isinstance(prompt, str) else ""))


def user_text(row: dict[str, Any]) -> str:
    """The user-side text of a TRL-format row: its user messages, or its prompt or text string."""
    prompt = row.get("prompt")
    if isinstance(prompt, str):
        return prompt
    messages = prompt if isinstance(prompt, list) else row.get("messages", row.get("conversations"))
    if isinstance(messages, list):
        return "\n".join([str(m.get("content") or "") for m in messages if m.get("role") == "user"])
    text = row.get("text")
    return text if isinstance(text, str) else ""


def completion_text(row: dict[str, Any]) -> str:
    """The assistant-side text of a TRL-format row (its last assistant turn, or its completion string)."""
    value = row.get("completion")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join([str(m.get("content", "")) for m in value if m.get("role") == "assistant"])
    messages = row.get("messages")
    if isinstance(messages, list) and messages and messages[-1].get("role") == "assistant":
        return str(messages[-1].get("content", ""))
    return ""


def prompt_completion(row: dict[str, Any]) -> dict[str, Any] | None:
    """A TRL-format row as conversational prompt/completion messages (a messages row split before its last
    assistant turn); None for a row without messages."""
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list) and isinstance(completion, list):
        return {"prompt": prompt, "completion": completion}
    conversation = trl_conversation(row)
    if conversation.plain or not conversation.messages or conversation.last_assistant is None:
        return None
    return {"prompt": conversation.prompt_messages, "completion": conversation.completion_messages}
