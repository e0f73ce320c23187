"""TRL's own dataset preparation and collator, run without a model.

`SFTTrainer._prepare_dataset` needs only the tokenizer and two attributes that `SFTTrainer.__init__`
derives from the config and the data; we derive them the same way. tests/test_trl_bridge.py proves the
result identical to a plain `SFTTrainer` build.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import datasets

from parity.labels import IGNORE_INDEX

__all__ = ["IGNORE_INDEX"]

ROW_COLUMNS = ("prompt", "completion", "messages", "text", "tools")
"""Columns of TRL's prepared dataset that say what a row was before tokenization."""


def resolve_completion_only_loss(sft_config: Any, first_example: dict) -> bool:
    """SFTTrainer's rule: None means 'True for prompt/completion data'."""
    if sft_config.completion_only_loss is None:
        return "prompt" in first_example and "completion" in first_example
    return bool(sft_config.completion_only_loss)


@dataclass
class Prepared:
    """Rows as TRL's preparation tokenizes them: input_ids and labels as plain lists (what the probes read), each
    kept row's untruncated completion start when the fast path measured it, and the `datasets.Dataset` form."""

    input_ids: list[list[int]]
    labels: list[list[int]]
    completion_starts: list[int] | None = None
    rows: list[dict] | None = None
    """The TRL-format columns (prompt, completion, messages, text, tools) of each kept row, where TRL's dataset
    carries them."""
    _dataset: datasets.Dataset | None = None

    @classmethod
    def from_dataset(cls, dataset: datasets.Dataset) -> Prepared:
        columns = [c for c in ROW_COLUMNS if c in dataset.column_names]
        rows = None
        if columns:
            values = {c: dataset[c][:] for c in columns}
            rows = [{c: values[c][i] for c in columns} for i in range(len(dataset))]
        return cls(dataset["input_ids"][:], dataset["labels"][:], None, rows, dataset)

    @property
    def dataset(self) -> datasets.Dataset:
        """TRL's dataset (the fast path builds it on first use: the probes need only the lists)."""
        if self._dataset is None:
            self._dataset = datasets.Dataset.from_dict({"input_ids": self.input_ids, "labels": self.labels})
        return self._dataset

    def __len__(self) -> int:
        return len(self.input_ids)


def before_packing(sft_config: Any) -> Any:
    """The SFTConfig whose preparation gives the examples a packing config packs, one per row: packing off and,
    as TRL skips truncation when it packs, no max_length."""
    import dataclasses
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dataclasses.replace(sft_config, packing=False, max_length=None)


def prepare_dataset(
    rows: list[dict], tokenizer: Any, sft_config: Any, name: str = "train", engine: str = "auto"
) -> datasets.Dataset:
    """Tokenize rows into input_ids/labels: TRL's own preparation ('trl'), or its proven-identical batched
    fast path where it applies ('auto')."""
    return prepare_rows(rows, tokenizer, sft_config, name, engine).dataset


def prepare_rows(
    rows: list[dict], tokenizer: Any, sft_config: Any, name: str = "train", engine: str = "auto"
) -> Prepared:
    """prepare_dataset as plain lists, plus each kept row's untruncated completion start when the fast path
    measured it."""
    from parity.fast_tokenize import prepare_fast, supports_fast_path

    if engine == "auto" and supports_fast_path(rows, sft_config):
        completion_only = resolve_completion_only_loss(sft_config, rows[0])
        prepared = prepare_fast(rows, tokenizer, sft_config, completion_only)
        return Prepared(prepared["input_ids"], prepared["labels"], prepared["completion_start"])
    return Prepared.from_dataset(prepare_with_trl(rows, tokenizer, sft_config, name))


def prepare_with_trl(
    rows: list[dict], tokenizer: Any, sft_config: Any, name: str = "train"
) -> datasets.Dataset:
    """Tokenize rows into input_ids/labels with SFTTrainer's own preparation code."""
    from trl import SFTTrainer
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    trainer = SFTTrainer.__new__(SFTTrainer)
    trainer._tokenizer = tokenizer
    trainer.completion_only_loss = resolve_completion_only_loss(sft_config, rows[0])
    needs_training_template = sft_config.assistant_only_loss and not has_generation_markers(
        tokenizer.chat_template
    )
    trainer.chat_template = get_training_chat_template(tokenizer) if needs_training_template else None
    dataset = datasets.Dataset.from_list(rows)
    previous = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    trl_logger = logging.getLogger("trl")
    trl_level = trl_logger.level
    try:
        with in_memory_fingerprints():
            return trainer._prepare_dataset(dataset, tokenizer, sft_config, sft_config.packing, None, name)
    finally:
        datasets.logging.set_verbosity(previous)
        trl_logger.setLevel(trl_level)


@contextlib.contextmanager
def in_memory_fingerprints() -> Iterator[None]:
    """Random fingerprints for `datasets` transforms while TRL prepares an in-memory dataset.

    `datasets` fingerprints every `map` call by pickling its arguments, which TRL's include the tokenizer: seconds
    per call for a 150k-entry vocabulary (Qwen). A fingerprint only names cache files, and a dataset built from
    a list lives in memory and writes none, so a random one changes nothing TRL computes
    (tests/test_trl_bridge.py checks the prepared rows are identical with and without it)."""
    import datasets.arrow_dataset
    import datasets.fingerprint as fingerprint

    modules = (fingerprint, datasets.arrow_dataset)  # map() calls it by the name it imported
    hashed = [module.update_fingerprint for module in modules]

    def random_fingerprint(previous: str, transform: Any, transform_args: dict) -> str:
        return fingerprint.generate_random_fingerprint()

    for module in modules:
        module.update_fingerprint = random_fingerprint
    try:
        yield
    finally:
        for module, original in zip(modules, hashed, strict=True):
            module.update_fingerprint = original


def build_collator(tokenizer: Any, sft_config: Any) -> Any:
    """The collator SFTTrainer builds by default for text data."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    padding_free = sft_config.padding_free or (
        sft_config.packing and sft_config.packing_strategy in {"bfd", "bfd_split"}
    )
    # SFTTrainer pads with SFTConfig.pad_token when set, else with the tokenizer's pad token
    pad_token = sft_config.pad_token or tokenizer.pad_token
    return DataCollatorForLanguageModeling(
        pad_token_id=tokenizer.convert_tokens_to_ids(pad_token),
        padding_free=padding_free,
        pad_to_multiple_of=sft_config.pad_to_multiple_of,
    )
