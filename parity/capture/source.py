"""`capture:DIR` as a recipe source: the name resolves to the Recipe a captured directory stands for, and its
materialization reads the captured rows and examples (tokenized and collated by the recipe's own code, in its
own environment) instead of re-tokenizing them here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.capture.examples import CapturedLookup
from parity.capture.reader import CapturedRecipe, load_capture
from parity.capture.recipe import recipe_from_capture
from parity.capture.tokenized import unpadded_rows
from parity.spec import Recipe

PREFIX = "capture:"
PROVENANCE_KEY = "capture"
"""Recipe.provenance key holding the captured directory (survives copies, overrides and alignment)."""


def is_capture_ref(ref: str) -> bool:
    return ref.startswith(PREFIX)


def recipe_for(ref: str) -> Recipe:
    """The Recipe of `capture:DIR` (a ParityError when DIR is not a complete capture)."""
    path = Path(ref[len(PREFIX) :]).expanduser()
    recipe = recipe_from_capture(load_capture(path), name=ref)
    recipe.provenance[PROVENANCE_KEY] = str(path.resolve())
    return recipe


def captured_directory(recipe: Recipe) -> Path | None:
    """The capture a recipe came from, or None for every other recipe."""
    path = recipe.provenance.get(PROVENANCE_KEY)
    return Path(path) if path else None


@dataclass(frozen=True)
class CapturedExamples:
    """What materialization takes from a capture: TRL-format rows and examples as the recipe trained them."""

    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]
    input_ids: list[list[int]]
    labels: list[list[int]]
    lookup: CapturedLookup

    def install(self, materialized: Any, samples: int | None) -> None:
        """Fill a Materialized's cached rows and prepared examples (its cached properties) from the capture, and
        give it the lookup that finds shared raw rows among the captured ones."""
        from parity.trl_bridge import Prepared

        count = len(self.input_ids) if samples is None else min(samples, len(self.input_ids))
        self.lookup.decode = materialized.decode  # pre-tokenized captured rows are identified by their text
        materialized.captured = self.lookup
        rows, kept = self.sample(count)
        materialized.__dict__.update(
            train_rows=self.train_rows,
            eval_rows=self.eval_rows,
            sample_rows=rows,
            prepared=Prepared([self.input_ids[i] for i in kept], [self.labels[i] for i in kept]),
        )

    def sample(self, count: int) -> tuple[list[dict[str, Any]], list[int]]:
        """The first `count` examples with the raw row each was made from: paired by index, or where TRL's
        preparation dropped rows, by the order-preserving pairing of `prepared_rows_of` (an example no raw row
        explains is left out of the sample)."""
        prepared = self.lookup.captured.prepared.get("train")
        if prepared is None or len(prepared.rows) == len(self.train_rows):
            return self.train_rows[:count], list(range(count))
        raw_of = {
            example: row
            for row, example in enumerate(self.lookup.prepared_index("train"))
            if example is not None
        }
        if not raw_of:  # nothing could be paired: index order, as the capture lists them
            return self.train_rows[:count], list(range(count))
        kept = [i for i in range(count) if i in raw_of]
        return [self.train_rows[raw_of[i]] for i in kept], kept


def captured_examples(captured: CapturedRecipe) -> CapturedExamples:
    """The captured train/eval rows (token ids for a pre-tokenized trainer) and the collated train examples without
    padding (prepared labels when none were collated)."""
    collated = captured.collated.get("train")
    prepared = captured.prepared.get("train")
    source = collated if collated is not None and collated.rows else prepared
    if source is None:
        from parity.errors import ParityError

        raise ParityError(f"capture {captured.path}: no prepared train examples")
    input_ids, labels = unpadded_rows(source)
    lookup = CapturedLookup(captured)
    return CapturedExamples(
        train_rows=lookup.rows.get("train", []),
        eval_rows=lookup.rows.get("eval", []),
        input_ids=input_ids,
        labels=labels if labels is not None else input_ids,
        lookup=lookup,
    )
