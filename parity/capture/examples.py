"""Shared raw rows looked up among the rows a captured recipe's own code produced, by identity: a row is found when
its identity key (its normalised user turns, parity.data.conversation) equals a captured row's key (the template's
constant words removed from the captured rows), else when it occurs in a captured row's whole normalised user
text (train rows first, then eval rows; the first such row wins). Its example is the one the recipe's own
preparation and collator made. A row no captured row holds is "not captured": never re-tokenized here."""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from parity.capture.reader import CapturedRecipe, PreparedDataset
from parity.capture.tokenized import (
    LoadedPairing,
    full_train_rows,
    is_pre_tokenized,
    trainer_rows,
    unpadded,
)
from parity.data.conversation import (
    Conversation,
    completion_text,
    conversation_key,
    normalise,
    strip_constant_words,
    trl_conversation,
    user_text,
)
from parity.labels import IGNORE_INDEX

__all__ = [
    "CapturedLookup",
    "SharedExample",
    "captured_split",
    "collator_rule",
    "completion_text",
    "user_text",
]

MATCH_RULE = (
    "the row's identity key equals a captured row's (template words removed), else occurs in a captured row's "
    "normalised user text (first one, train then eval)"
)
SEPARATOR = "\x00"
"""Joins the normalised user texts of one split for searching; normalised text never contains it."""


@dataclass(frozen=True)
class SharedExample:
    """One shared raw row as a recipe trains it, or, where the capture does not contain it, the stand-in shown
    instead (`same_row` False: a different row, shown so the reader sees the recipe's format)."""

    row: dict[str, Any]
    """The shared raw row asked for (the dataset's columns)."""
    trained_row: dict[str, Any] | None
    """The example in the TRL format the recipe hands its trainer (prompt/completion, messages, text, ids)."""
    user_message: str
    """Its last user turn (its prompt or text string for rows without turns)."""
    input_ids: list[int]
    labels: list[int] | None
    """None where the capture cannot say which tokens carry loss for this row."""
    same_row: bool
    source: str
    """Where the example comes from, in words (which captured row, or why the row is not captured)."""
    found_in: tuple[str, int] | None = None
    """(captured split, row index) of the captured row holding this shared row; None otherwise."""
    row_text: str = ""
    """The shared row's user text, for the reader (the row's identity is its normalised form)."""
    content: Conversation | None = None
    """For a recipe whose trainer was handed token ids: the raw row its framework loaded and built the example
    from (paired by identity; None where no loaded row pairs with it)."""
    completion: str | None = None
    """For such a recipe: the text its example is trained to produce (the loaded row's answer where the trained
    tokens hold it, else the trained tokens decoded)."""

    @property
    def conversation(self) -> Conversation | None:
        """The trained row as messages (None when there is none)."""
        return trl_conversation(self.trained_row) if self.trained_row is not None else None

    @property
    def pre_tokenized(self) -> bool:
        """True when the recipe handed its trainer token ids (its user message is the decoded prompt)."""
        return self.trained_row is not None and isinstance(self.trained_row.get("input_ids"), list)

    def evidence(self) -> dict[str, Any]:
        return {"same_row": self.same_row, "source": self.source, "question": self.row_text}


@dataclass(frozen=True)
class _Split:
    """The identity keys of one captured split, and its normalised user texts joined for substring search."""

    name: str
    rows: list[dict[str, Any]]
    index: dict[str, int]
    """Identity key -> the first row with it."""
    joined: str
    starts: list[int]

    @classmethod
    def of(cls, name: str, rows: list[dict[str, Any]], keys: list[str], texts: list[str]) -> _Split:
        index: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key:
                index.setdefault(key, i)
        starts, offset = [], 0
        for text in texts:
            starts.append(offset)
            offset += len(text) + len(SEPARATOR)
        return cls(name, rows, index, SEPARATOR.join(texts), starts)

    def first_containing(self, key: str) -> int | None:
        position = self.joined.find(key) if key else -1
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


ALIGN_CHARS = 64
"""Characters of a raw row's normalised user text looked for in its prepared example (a prefix: truncation keeps
the start of a sequence)."""


def prepared_rows_of(
    raw: list[dict[str, Any]], prepared_ids: list[list[int]], decode: Callable[[list[int]], str] | None
) -> list[int | None]:
    """For each raw row, the index of the prepared example made from it, or None where TRL's preparation dropped
    it (a row with no trained token left). TRL drops rows but never reorders them, so each prepared example is
    matched to the next raw row whose user text it contains; the rows are paired by index when none was dropped."""
    if len(raw) == len(prepared_ids):
        return list(range(len(raw)))
    if decode is None or len(prepared_ids) > len(raw):
        return [None] * len(raw)
    found: list[int | None] = [None] * len(raw)
    position = 0
    for index, ids in enumerate(prepared_ids):
        text = normalise(decode(ids))
        while position < len(raw) and normalise(user_text(raw[position]))[:ALIGN_CHARS] not in text:
            position += 1
        if position == len(raw):
            return [None] * len(raw)  # an example no remaining row explains: no pairing is claimed
        found[position] = index
        position += 1
    return found


class CapturedLookup:
    """Finds shared raw rows among a capture's train and eval rows by identity and returns their captured examples."""

    def __init__(self, captured: CapturedRecipe, decode: Callable[[list[int]], str] | None = None) -> None:
        self.captured = captured
        self.decode = decode
        """Token ids -> text, for the identity of pre-tokenized captured rows (the recipe's tokenizer)."""
        self.rows = trainer_rows(captured)
        """The rows the trainer was handed per split (token ids without padding for a pre-tokenized trainer)."""
        self.pre_tokenized = is_pre_tokenized(captured)
        names = ["train"] + sorted(name for name in self.rows if name.startswith("eval"))
        self.names = [name for name in names if name in self.rows]
        self._located: dict[str, tuple[str, int] | None] = {}
        self._aligned: dict[str, list[int | None]] = {}

    @cached_property
    def splits(self) -> list[_Split]:
        rows = {name: self.rows[name] for name in self.names}
        texts = [
            conversation_key(trl_conversation(row), self.decode) for name in self.names for row in rows[name]
        ]
        keys = strip_constant_words(texts)
        splits, start = [], 0
        for name in self.names:
            end = start + len(rows[name])
            splits.append(_Split.of(name, rows[name], keys[start:end], texts[start:end]))
            start = end
        return splits

    @cached_property
    def train_rows_full(self) -> int:
        """The trainer's train rows on the full data (scaled by the loads' full / served counts under `--rows`)."""
        return full_train_rows(self.captured, len(self.rows.get("train", [])))

    @cached_property
    def labels_rule(self) -> Labels:
        return collator_rule(self.captured)

    def examples(self, rows: list[dict[str, Any]], keys: list[str]) -> list[SharedExample]:
        return [self.example(row, key) for row, key in zip(rows, keys, strict=True)]

    def locate(self, key: str) -> tuple[str, int] | None:
        """(split, index) of the captured row holding the row with this identity key (searched once): equal keys
        first, then the first normalised user text containing the key; train before eval in both."""
        if key not in self._located:
            found = None
            if key:
                found = next(((s.name, s.index[key]) for s in self.splits if key in s.index), None)
                found = found or next(
                    ((s.name, i) for s in self.splits if (i := s.first_containing(key)) is not None), None
                )
            self._located[key] = found
        return self._located[key]

    def example(self, row: dict[str, Any], key: str) -> SharedExample:
        """The captured example of one shared raw row, or the stand-in (captured train example 0) when no
        captured row holds it."""
        where = self.locate(key)
        text = key.replace(" \x1e ", "\n")
        if where is not None:
            return self._captured_example(row, *where, same_row=True, text=text)
        stand_in = self._captured_example(row, "train", 0, same_row=False, text=text)
        return dataclasses.replace(
            stand_in,
            found_in=None,
            source=f"not captured: no row the recipe's own code produced holds this row's user turns "
            f"({self._rows_text()}); shown instead: {stand_in.source}, NOT the same row",
        )

    def _rows_text(self) -> str:
        return ", ".join(f"{len(split.rows)} {split.name}" for split in self.splits)

    @cached_property
    def token_rows(self) -> LoadedPairing | None:
        """For a pre-tokenized trainer: its rows paired with the raw rows its framework loaded (None otherwise)."""
        return LoadedPairing(self.captured, self.rows, self) if self.pre_tokenized else None

    def _captured_example(
        self, row: dict[str, Any], split: str, index: int, same_row: bool, text: str
    ) -> SharedExample:
        raw = self.rows[split][index]
        prepared = self.captured.prepared.get(split)
        where = f"captured {split} row {index}"
        found_in = (split, index) if same_row else None
        position = None if prepared is None else self.prepared_index(split)[index]
        if prepared is None or position is None:
            kept = "none" if prepared is None else f"{len(prepared.rows)} of {len(self.rows[split])}"
            return SharedExample(
                row,
                raw,
                _last_user_text(raw),
                [],
                None,
                same_row,
                f"{where}: its prepared example is not captured (TRL's preparation kept {kept} rows, and this "
                "row is not among them or cannot be paired with one)",
                found_in,
                text,
            )
        ids, labels, labels_from = self._ids_and_labels(prepared, split, position)
        if position != index:
            labels_from = f"prepared example {position} (TRL dropped earlier rows); {labels_from}"
        if not self.pre_tokenized:
            return SharedExample(
                row,
                raw,
                _last_user_text(raw),
                ids,
                labels,
                same_row,
                f"{where}; {labels_from}",
                found_in,
                text,
            )
        pairing = self.token_rows
        assert pairing is not None
        return SharedExample(
            row,
            raw,
            pairing.prompt_text(split, index, ids, labels),
            ids,
            labels,
            same_row,
            f"{where} (token ids; its user message is its prompt decoded); {labels_from}",
            found_in,
            text,
            content=pairing.loaded.get((split, index)),
            completion=pairing.completion(split, index, ids, labels),
        )

    def prepared_index(self, split: str) -> list[int | None]:
        """Raw row index -> prepared example index of one split (computed once)."""
        if split not in self._aligned:
            prepared = self.captured.prepared[split]
            self._aligned[split] = prepared_rows_of(self.rows[split], prepared.input_ids, self.decode)
        return self._aligned[split]

    def _ids_and_labels(
        self, prepared: PreparedDataset, split: str, index: int
    ) -> tuple[list[int], list[int] | None, str]:
        collated = self.captured.collated.get("train")
        if split == "train" and collated is not None and index < len(collated.rows):
            row = collated.rows[index]
            ids, labels = unpadded(row["input_ids"], row["labels"], row.get("attention_mask"))
            padding = len(row["input_ids"]) - len(ids)
            removed = f" ({padding} padding tokens removed)" if padding else ""
            return ids, labels, f"input_ids and labels from the trainer's collator{removed}"
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


def _last_user_text(row: dict[str, Any]) -> str:
    """The last user turn of a captured row (its prompt or text string when it has no turns)."""
    conversation = trl_conversation(row)
    if conversation.messages:
        turns = conversation.user_turns
        return turns[-1] if turns else ""
    return user_text(row)


@dataclass(frozen=True)
class CapturedSplit:
    """The train/eval split a captured recipe's own code made, measured against the shared benchmark test rows."""

    train_rows: int
    eval_rows: int
    test_rows: int
    test_in_train: int
    """Shared test rows found in the captured train rows."""
    test_in_eval: int
    """Shared test rows found in the captured eval rows."""

    @property
    def eval_is_benchmark_test(self) -> bool:
        return self.eval_rows > 0 and self.test_in_eval == self.eval_rows

    @property
    def rule(self) -> str:
        return (
            f"the recipe's own code: {self.train_rows} train / {self.eval_rows} eval rows; "
            f"{self.test_in_eval} of {self.test_rows} benchmark test rows are in its eval rows"
        )


def captured_split(lookup: CapturedLookup, test_keys: list[str]) -> CapturedSplit:
    """Row counts of the captured splits and where the shared test rows (their identity keys) occur in them."""
    found = [lookup.locate(key) for key in test_keys]
    splits = {split.name: len(split.rows) for split in lookup.splits}
    splits["train"] = lookup.train_rows_full
    return CapturedSplit(
        train_rows=splits.get("train", 0),
        eval_rows=sum(n for name, n in splits.items() if name != "train"),
        test_rows=len(test_keys),
        test_in_train=sum(1 for where in found if where and where[0] == "train"),
        test_in_eval=sum(1 for where in found if where and where[0] != "train"),
    )
