"""Shared raw rows looked up among the rows a captured recipe's own code produced: a row is found when its
question string occurs, character for character, in the user text of a captured row (train rows first, then
eval rows; the first such row wins), and its example is the one the recipe's own preparation and collator
made. A row no captured row contains is "not captured": never re-tokenized here with parity's defaults."""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from parity.capture.reader import CapturedRecipe, PreparedDataset
from parity.labels import IGNORE_INDEX

MATCH_RULE = "the row's question string occurs verbatim in the user text of a captured row (first one, train then eval)"
SEPARATOR = "\x00"
"""Joins the user texts of one split for searching; a question never contains it, so no match spans two rows."""


@dataclass(frozen=True)
class SharedExample:
    """One shared raw row as a recipe trains it, or, where the capture does not contain it, the stand-in shown
    instead (`same_row` False: a different row, shown so the reader sees the recipe's format)."""

    row: dict[str, str]
    """The shared raw row asked for (question/answer)."""
    conversation: dict[str, Any] | None
    """The example in TRL's conversational format (prompt and completion messages); None when the recipe's
    rows are not conversational."""
    user_message: str
    input_ids: list[int]
    labels: list[int] | None
    """None where the capture cannot say which tokens carry loss for this row."""
    same_row: bool
    source: str
    """Where the example comes from, in words (which captured row, or why the row is not captured)."""
    found_in: tuple[str, int] | None = None
    """(captured split, row index) of the captured row holding this shared row; None otherwise."""

    def evidence(self) -> dict[str, Any]:
        return {"same_row": self.same_row, "source": self.source, "question": self.row.get("question", "")}


def user_text(row: dict[str, Any]) -> str:
    """The user-side text of a captured row: its user messages (prompt or messages column) or its prompt or
    text string."""
    for column in ("prompt", "messages"):
        value = row.get(column)
        if isinstance(value, list):
            return "\n".join(str(m.get("content", "")) for m in value if m.get("role") == "user")
        if isinstance(value, str):
            return value
    text = row.get("text")
    return text if isinstance(text, str) else ""


def conversation_of(row: dict[str, Any]) -> dict[str, Any] | None:
    """A captured row as prompt/completion messages (a messages row split before its last assistant turn)."""
    prompt, completion = row.get("prompt"), row.get("completion")
    if isinstance(prompt, list) and isinstance(completion, list):
        return {"prompt": prompt, "completion": completion}
    messages = row.get("messages")
    if isinstance(messages, list) and messages and messages[-1].get("role") == "assistant":
        return {"prompt": messages[:-1], "completion": messages[-1:]}
    return None


@dataclass(frozen=True)
class _Split:
    """The user texts of one captured split, joined for one-pass substring search."""

    name: str
    rows: list[dict[str, Any]]
    joined: str
    starts: list[int]

    @classmethod
    def of(cls, name: str, rows: list[dict[str, Any]]) -> _Split:
        texts = [user_text(row) for row in rows]
        starts, offset = [], 0
        for text in texts:
            starts.append(offset)
            offset += len(text) + len(SEPARATOR)
        return cls(name, rows, SEPARATOR.join(texts), starts)

    def first_containing(self, question: str) -> int | None:
        position = self.joined.find(question) if question else -1
        return None if position < 0 else bisect_right(self.starts, position) - 1


@dataclass(frozen=True)
class Labels:
    """How labels of a captured prepared row are known, measured on the rows the trainer's collator batched."""

    rule: str | None
    """'collator-identity' (labels = input_ids), 'completion-mask', 'prepared' or None (unknown)."""
    description: str


def collator_rule(captured: CapturedRecipe) -> Labels:
    """The labels rule every collated train example follows (labels = input_ids, or input_ids where the
    completion mask is 1 and -100 elsewhere); prepared labels when the preparation wrote them."""
    prepared = captured.prepared.get("train")
    collated = captured.collated.get("train")
    if prepared is not None and prepared.labels is not None:
        return Labels("prepared", "labels as the recipe's preparation wrote them")
    if prepared is None or collated is None or not collated.rows:
        return Labels(
            None, "no collated train examples in the capture: which tokens carry loss is not captured"
        )
    masks = prepared.completion_mask
    identity = masked = True
    for i, row in enumerate(collated.rows):
        identity = identity and row["labels"] == row["input_ids"]
        if masks is not None:
            expected = [t if m else IGNORE_INDEX for t, m in zip(row["input_ids"], masks[i], strict=False)]
            masked = masked and row["labels"] == expected
    count = len(collated.rows)
    if identity:
        return Labels(
            "collator-identity", f"labels = input_ids, as the collator built all {count} collated rows"
        )
    if masks is not None and masked:
        return Labels(
            "completion-mask",
            f"labels = input_ids where completion_mask is 1, as the collator built all {count} collated rows",
        )
    return Labels(
        None, "the collated rows follow no rule parity can apply to other rows: labels not captured"
    )


class CapturedLookup:
    """Finds shared raw rows among a capture's train and eval rows and returns their captured examples."""

    def __init__(self, captured: CapturedRecipe) -> None:
        self.captured = captured
        names = ["train"] + sorted(name for name in captured.raw if name.startswith("eval"))
        self.splits = [_Split.of(name, captured.raw[name]) for name in names if name in captured.raw]
        self._located: dict[str, tuple[str, int] | None] = {}

    @cached_property
    def labels_rule(self) -> Labels:
        return collator_rule(self.captured)

    def examples(self, rows: list[dict[str, str]]) -> list[SharedExample]:
        return [self.example(row) for row in rows]

    def locate(self, question: str) -> tuple[str, int] | None:
        """(split, index) of the first captured row whose user text contains the question (searched once)."""
        if question not in self._located:
            self._located[question] = next(
                (
                    (split.name, index)
                    for split in self.splits
                    if (index := split.first_containing(question)) is not None
                ),
                None,
            )
        return self._located[question]

    def example(self, row: dict[str, str]) -> SharedExample:
        """The captured example of one shared raw row, or the stand-in (captured train example 0) when no
        captured row contains its question."""
        where = self.locate(row.get("question", ""))
        if where is not None:
            return self._captured_example(row, *where, same_row=True)
        stand_in = self._captured_example(row, "train", 0, same_row=False)
        return dataclasses.replace(
            stand_in,
            found_in=None,
            source=f"not captured: no row the recipe's own code produced contains this question ({self._rows_text()}); "
            f"shown instead: {stand_in.source}, NOT the same row",
        )

    def _rows_text(self) -> str:
        return ", ".join(f"{len(split.rows)} {split.name}" for split in self.splits)

    def _captured_example(self, row: dict[str, str], split: str, index: int, same_row: bool) -> SharedExample:
        raw = self.captured.raw[split][index]
        prepared = self.captured.prepared.get(split)
        where = f"captured {split} row {index}"
        found_in = (split, index) if same_row else None
        if prepared is None or len(prepared.rows) != len(self.captured.raw[split]):
            kept = "none" if prepared is None else f"{len(prepared.rows)} of {len(self.captured.raw[split])}"
            return SharedExample(
                row,
                conversation_of(raw),
                user_text(raw),
                [],
                None,
                same_row,
                f"{where}: its prepared example is not captured (TRL's preparation kept {kept} rows, so "
                "raw and prepared rows cannot be paired)",
                found_in,
            )
        ids, labels, labels_from = self._ids_and_labels(prepared, split, index)
        return SharedExample(
            row,
            conversation_of(raw),
            user_text(raw),
            ids,
            labels,
            same_row,
            f"{where}; {labels_from}",
            found_in,
        )

    def _ids_and_labels(
        self, prepared: PreparedDataset, split: str, index: int
    ) -> tuple[list[int], list[int] | None, str]:
        collated = self.captured.collated.get("train")
        if split == "train" and collated is not None and index < len(collated.rows):
            row = collated.rows[index]
            return (
                list(row["input_ids"]),
                list(row["labels"]),
                "input_ids and labels from the trainer's collator",
            )
        ids = list(prepared.rows[index]["input_ids"])
        rule = self.labels_rule
        if rule.rule == "prepared":
            return ids, list(prepared.rows[index]["labels"]), f"input_ids and {rule.description}"
        if rule.rule == "collator-identity":
            return ids, list(ids), f"prepared input_ids; {rule.description}"
        if rule.rule == "completion-mask":
            mask = prepared.rows[index]["completion_mask"]
            labels = [t if m else IGNORE_INDEX for t, m in zip(ids, mask, strict=True)]
            return ids, labels, f"prepared input_ids; {rule.description}"
        return ids, None, f"prepared input_ids; {rule.description}"


def completion_text(row: dict[str, Any]) -> str:
    """The assistant-side text of a captured row (its completion messages or string)."""
    value = row.get("completion")
    if isinstance(value, list):
        return "\n".join(str(m.get("content", "")) for m in value if m.get("role") == "assistant")
    if isinstance(value, str):
        return value
    messages = row.get("messages")
    if isinstance(messages, list) and messages and messages[-1].get("role") == "assistant":
        return str(messages[-1].get("content", ""))
    return ""


@dataclass(frozen=True)
class CapturedSplit:
    """The train/eval split a captured recipe's own code made, measured against the shared benchmark test rows."""

    train_rows: int
    eval_rows: int
    test_rows: int
    test_in_train: int
    """Shared test questions found in the captured train rows."""
    test_in_eval: int
    """Shared test questions found in the captured eval rows."""

    @property
    def eval_is_benchmark_test(self) -> bool:
        return self.eval_rows > 0 and self.test_in_eval == self.eval_rows

    @property
    def rule(self) -> str:
        return (
            f"the recipe's own code: {self.train_rows} train / {self.eval_rows} eval rows; "
            f"{self.test_in_eval} of {self.test_rows} benchmark test questions are in its eval rows"
        )


def captured_split(lookup: CapturedLookup, test_rows: list[dict[str, str]]) -> CapturedSplit:
    """Row counts of the captured splits and where the shared test questions occur in them."""
    found = [lookup.locate(row.get("question", "")) for row in test_rows]
    splits = {split.name: len(split.rows) for split in lookup.splits}
    return CapturedSplit(
        train_rows=splits.get("train", 0),
        eval_rows=sum(n for name, n in splits.items() if name != "train"),
        test_rows=len(test_rows),
        test_in_train=sum(1 for where in found if where and where[0] == "train"),
        test_in_eval=sum(1 for where in found if where and where[0] != "train"),
    )
