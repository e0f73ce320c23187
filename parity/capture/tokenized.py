"""Captures whose trainer holds token ids (LLaMA-Factory, Axolotl): the trainer's rows without padding, the raw
rows the framework loaded (`loaded/`), where an example's prompt ends, and row counts for the full data."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any, Protocol

from parity.capture.reader import CapturedRecipe, PreparedDataset
from parity.data.conversation import Conversation, conversation_key, normalise
from parity.data.formats import BoundFormat, RowError, detect_format
from parity.errors import ParityError
from parity.labels import IGNORE_INDEX

TOKEN_COLUMNS = ("input_ids", "labels", "attention_mask")


def is_pre_tokenized(captured: CapturedRecipe) -> bool:
    """True when the trainer was handed token ids: no raw rows were captured, the prepared rows have input_ids."""
    prepared = captured.prepared.get("train")
    return not captured.raw.get("train") and prepared is not None and bool(prepared.rows)


def unpadded(
    input_ids: list[int], labels: list[int] | None, attention_mask: list[int] | None
) -> tuple[list[int], list[int] | None]:
    """An example without the padding its attention mask marks (the leading and trailing zeros)."""
    if not attention_mask or len(attention_mask) != len(input_ids):
        return list(input_ids), None if labels is None else list(labels)
    start, end = 0, len(attention_mask)
    while start < end and not attention_mask[start]:
        start += 1
    while end > start and not attention_mask[end - 1]:
        end -= 1
    return list(input_ids[start:end]), None if labels is None else list(labels[start:end])


def unpadded_rows(dataset: PreparedDataset) -> tuple[list[list[int]], list[list[int]] | None]:
    """(input_ids, labels) of every row of a prepared or collated dataset without padding."""
    masks = dataset.attention_mask
    labels = dataset.labels
    ids_out, labels_out = [], []
    for i, ids in enumerate(dataset.input_ids):
        kept, kept_labels = unpadded(
            ids, labels[i] if labels is not None else None, masks[i] if masks is not None else None
        )
        ids_out.append(kept)
        labels_out.append(kept_labels)
    return ids_out, labels_out if labels is not None else None


def tokenized_rows(captured: CapturedRecipe, split: str) -> list[dict[str, Any]]:
    """A pre-tokenized split as the trainer holds it, in TRL's tokenized format without padding: input_ids,
    attention_mask and labels (the trainer's collator's for the rows it collated, else the prepared ones)."""
    ids, prepared_labels = unpadded_rows(captured.prepared[split])
    labels: list[list[int] | None] = list(prepared_labels) if prepared_labels else [None] * len(ids)
    collated = captured.collated.get(split)
    if collated is not None and collated.labels is not None:
        collated_ids, collated_labels = unpadded_rows(collated)
        for i, (row_ids, row_labels) in enumerate(zip(collated_ids, collated_labels or [], strict=False)):
            if i < len(ids) and row_ids == ids[i]:
                labels[i] = row_labels
    rows = []
    for i, row_ids in enumerate(ids):
        row: dict[str, Any] = {"input_ids": row_ids, "attention_mask": [1] * len(row_ids)}
        if labels[i] is not None:
            row["labels"] = labels[i]
        rows.append(row)
    return rows


def trainer_rows(captured: CapturedRecipe) -> dict[str, list[dict[str, Any]]]:
    """The rows the trainer was handed, per split ('train', 'eval...'): the captured raw rows, or for a
    pre-tokenized trainer its prepared rows as token ids without padding."""
    if not is_pre_tokenized(captured):
        return captured.raw
    return {
        name: tokenized_rows(captured, name)
        for name, dataset in captured.prepared.items()
        if dataset.rows and "input_ids" in dataset.rows[0]
    }


def loaded_rows(captured: CapturedRecipe) -> list[dict[str, Any]]:
    """Every row the recipe's dataset loads served, load by load and split by split, as loaded."""
    return [
        row for load in captured.loaded for split in load["splits"].values() for row in split.get("rows", [])
    ]


def loaded_format(rows: list[dict[str, Any]]) -> BoundFormat | None:
    """The registered row format of loaded rows (None: none fits, or they are token ids themselves)."""
    if not rows:
        return None
    try:
        fmt = detect_format(rows[0])
    except ParityError:
        return None
    return None if fmt.name == "tokenized" else fmt


def conversations(rows: list[dict[str, Any]], fmt: BoundFormat) -> list[Conversation | None]:
    """Loaded rows as Conversations (None for a row its format cannot read)."""
    out: list[Conversation | None] = []
    for row in rows:
        try:
            out.append(fmt.convert(row))
        except RowError:
            out.append(None)
    return out


def full_train_rows(captured: CapturedRecipe, trained: int) -> int:
    """The train rows the recipe would hold on its full data: `trained` scaled by the loads' full / served row
    counts where `--rows` served fewer (the rows a framework drops are assumed to drop at the same rate)."""
    if not captured.rows_limited:
        return trained
    full = served = 0
    for load in captured.manifest.get("rows", {}).get("loads", []):
        for split in load.get("splits", {}).values():
            if split.get("full_rows") is not None and split.get("served_rows"):
                full += split["full_rows"]
                served += split["served_rows"]
    return round(trained * full / served) if served else trained


def rows_limited_note(captured: CapturedRecipe) -> str:
    """In words: how many rows `--rows` served of how many, and that counts are scaled to the full data."""
    rows = captured.manifest.get("rows", {})
    splits = [split for load in rows.get("loads", []) for split in load.get("splits", {}).values()]
    served = sum(split.get("served_rows") or 0 for split in splits)
    full = sum(split.get("full_rows") or 0 for split in splits)
    return (
        f"the capture served {served} of {full} loaded rows (--rows {rows.get('limit')}); "
        "train rows and steps are counted for the full data"
    )


def first_trained(labels: list[int] | None) -> int | None:
    """Index of the first token that carries loss (None: no labels, or nothing is trained)."""
    if labels is None:
        return None
    return next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), None)


def completion_start(ids: list[int], completion: str, decode: Any) -> int | None:
    """The last position from which the decoded ids still hold the whole completion text (whitespace-normalised):
    where the completion begins in an example whose labels train the prompt too; None when it is not there."""
    wanted = normalise(completion)
    if not wanted or wanted not in normalise(decode(ids)):
        return None
    low, high = 0, len(ids) - 1  # decode(ids[low:]) holds it; find the largest such position
    while low < high:
        middle = (low + high + 1) // 2
        if wanted in normalise(decode(ids[middle:])):
            low = middle
        else:
            high = middle - 1
    return low


def prompt_length(
    ids: list[int], labels: list[int] | None, completion: str | None, decode: Any
) -> int | None:
    """Tokens before an example's completion: those before its first trained token when its labels mask a prompt,
    else where its loaded row's completion text begins; None when neither says."""
    start = first_trained(labels)
    if start:
        return start
    if completion:
        return completion_start(ids, completion, decode)
    return None


class Locator(Protocol):
    """Finds a row by its identity key among a capture's trainer rows (parity.capture.examples.CapturedLookup)."""

    decode: Callable[[list[int]], str] | None

    def locate(self, key: str) -> tuple[str, int] | None: ...


class LoadedPairing:
    """A pre-tokenized trainer's rows paired with the raw rows its framework loaded: each loaded row (read in its
    detected format) is located among the trainer's rows by identity, the first loaded row found wins. What the
    pairing tells about an example: the content it was built from, where its prompt ends, what it is trained to
    produce, and which loaded rows no example was built from."""

    def __init__(
        self, captured: CapturedRecipe, rows: dict[str, list[dict[str, Any]]], locator: Locator
    ) -> None:
        self.captured = captured
        self.rows = rows
        self.locator = locator
        self._texts: dict[tuple[str, str, int], Any] = {}
        """Prompt lengths and completions, by (what, split, row): computed once each."""

    @cached_property
    def loaded_conversations(self) -> list[Conversation | None]:
        """The rows the framework loaded as Conversations in load order (empty: none in a known format)."""
        rows = loaded_rows(self.captured)
        fmt = loaded_format(rows)
        return conversations(rows, fmt) if fmt is not None else []

    @cached_property
    def pairing(self) -> dict[tuple[str, int], tuple[int, Conversation]]:
        """(split, row) of the trainer's rows -> (position among the loaded rows, that row), in load order."""
        paired: dict[tuple[str, int], tuple[int, Conversation]] = {}
        for position, conversation in enumerate(self.loaded_conversations):
            if conversation is None:
                continue
            where = self.locator.locate(conversation_key(conversation))
            if where is not None:
                paired.setdefault(where, (position, conversation))
        return paired

    @cached_property
    def loaded(self) -> dict[tuple[str, int], Conversation]:
        """(split, row) of the trainer's rows -> the loaded raw row it was built from."""
        return {where: conversation for where, (_, conversation) in self.pairing.items()}

    def loaded_positions(self, count: int) -> list[int | None]:
        """Where each of the first `count` train rows stood among the loaded rows (None: no loaded row pairs)."""
        return [self.pairing.get(("train", i), (None, None))[0] for i in range(count)]

    @cached_property
    def dropped(self) -> int | None:
        """Loaded rows (in a known format) no train row was built from: what the framework left out (over-long
        rows, rows it could not convert); None where the loaded rows are in no known format."""
        if not self.loaded_conversations:
            return None
        kept = {position for (split, _), (position, _) in self.pairing.items() if split == "train"}
        return sum(1 for c in self.loaded_conversations if c is not None) - len(kept)

    def text_pairs(self) -> list[tuple[str, str]]:
        """(user text, completion) of every loaded row in load order (the user turns, and what its example is
        trained to produce, else its own answer), then the train rows no loaded row pairs with (prompt decoded)."""
        trained = {
            position: index for (split, index), (position, _) in self.pairing.items() if split == "train"
        }
        pairs = []
        for position, conversation in enumerate(self.loaded_conversations):
            if conversation is None:
                continue
            index = trained.get(position)
            completion = conversation.completion if index is None else self._completion_of(index)
            pairs.append((_user_turns(conversation), completion))
        paired = set(trained.values())
        for index, row in enumerate(self.rows.get("train", [])):
            if index not in paired:
                ids, labels = row["input_ids"], row.get("labels")
                pairs.append((self.prompt_text("train", index, ids, labels), self._completion_of(index)))
        return pairs

    def _completion_of(self, index: int) -> str:
        row = self.rows["train"][index]
        return self.completion("train", index, row["input_ids"], row.get("labels")) or ""

    def completion(self, split: str, index: int, ids: list[int], labels: list[int] | None) -> str | None:
        """What an example is trained to produce: its loaded row's answer where the trained tokens hold it, or its
        start when the example was cut at the length limit (whitespace-normalised; the truncation is the tokens and
        padding probes' to report), else its trained tokens decoded (None: no decoder or no labels)."""
        key = ("completion", split, index)
        if key not in self._texts:
            self._texts[key] = self._completion(split, index, ids, labels)
        return self._texts[key]

    def _completion(self, split: str, index: int, ids: list[int], labels: list[int] | None) -> str | None:
        decode = self.locator.decode
        if decode is None or labels is None:
            return None
        trained = [t for t, label in zip(ids, labels, strict=True) if label != IGNORE_INDEX]
        content = self.loaded.get((split, index))
        if content is not None and content.completion:
            answer, decoded = normalise(content.completion), normalise(decode(trained))
            if answer in decoded or (decoded and answer.startswith(decoded)):
                return content.completion
        return decode(trained)

    def prompt_length(self, split: str, index: int, ids: list[int], labels: list[int] | None) -> int | None:
        """Tokens before an example's completion: before its first trained token where the labels mask a prompt,
        else where its loaded row's answer begins (None: unknown)."""
        decode = self.locator.decode
        if decode is None:
            return first_trained(labels) or None
        key = ("prompt_length", split, index)
        if key not in self._texts:
            content = self.loaded.get((split, index))
            answer = content.completion if content else None
            self._texts[key] = prompt_length(ids, labels, answer, decode)
        return self._texts[key]

    def prompt_text(self, split: str, index: int, ids: list[int], labels: list[int] | None) -> str:
        """An example's prompt as text: its ids before the completion, decoded ('' when unknown)."""
        length = self.prompt_length(split, index, ids, labels)
        decode = self.locator.decode
        return "" if length is None or decode is None else decode(ids[:length])


def _user_turns(conversation: Conversation) -> str:
    """A loaded row's user turns joined by newlines (its text for a row without turns)."""
    return "\n".join(conversation.user_turns) if conversation.messages else (conversation.text or "")
