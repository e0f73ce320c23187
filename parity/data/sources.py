"""Raw GSM8K rows from one of three sources: the built-in synthetic generator, a local JSONL dir, or the hub.

Synthetic and local rows are the same for both recipes of a diff; `hub` reads each recipe's own dataset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from parity.errors import ParityError
from parity.spec import Recipe

GSM8K_TRAIN_ROWS = 7473
GSM8K_TEST_ROWS = 1319


@dataclass(frozen=True)
class RawData:
    """Raw question/answer rows before any recipe preprocessing."""

    source: str
    """'synthetic(seed=0)', 'local:<dir name>' or 'hub:<dataset id>'."""
    train: list[dict[str, str]]
    test: list[dict[str, str]]

    def digest(self) -> str:
        return rows_digest(self.train + self.test)


def rows_digest(rows: list[dict[str, str]]) -> str:
    """A short content hash of question/answer rows (order-sensitive)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(row["question"].encode())
        h.update(b"\x00")
        h.update(row["answer"].encode())
        h.update(b"\x01")
    return h.hexdigest()[:16]


def parse_synthetic(spec: str) -> tuple[int, int, int]:
    """'synthetic[:TRAIN[:TEST[:SEED]]]' -> (train rows, test rows, seed)."""
    parts = spec.split(":")[1:]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ParityError(f"--data {spec}: expected synthetic[:TRAIN_ROWS[:TEST_ROWS[:SEED]]]") from None
    if len(numbers) > 3 or any(n < 0 for n in numbers):
        raise ParityError(f"--data {spec}: expected synthetic[:TRAIN_ROWS[:TEST_ROWS[:SEED]]]")
    train = numbers[0] if numbers else GSM8K_TRAIN_ROWS
    test = numbers[1] if len(numbers) > 1 else max(1, round(train * GSM8K_TEST_ROWS / GSM8K_TRAIN_ROWS))
    seed = numbers[2] if len(numbers) > 2 else 0
    return train, test, seed


def load_raw(data: str, recipe: Recipe) -> RawData:
    """Read the raw rows named by --data ('synthetic...', 'hub' or a directory)."""
    if data == "synthetic" or data.startswith("synthetic:"):
        return _synthetic(*parse_synthetic(data))
    if data == "hub":
        return _hub(recipe)
    return _local(Path(data))


def _synthetic(n_train: int, n_test: int, seed: int) -> RawData:
    from parity.data.synthetic import generate_splits

    train, test = generate_splits(n_train, n_test, seed)
    return RawData(f"synthetic(seed={seed})", train, test)


def _local(path: Path) -> RawData:
    if not path.is_dir():
        raise ParityError(
            f"--data {path}: not a directory (expected train.jsonl and test.jsonl, or 'synthetic'/'hub')"
        )
    return RawData(f"local:{path.name}", _read_jsonl(path / "train.jsonl"), _read_jsonl(path / "test.jsonl"))


def _read_jsonl(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise ParityError(f"--data: missing {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise ParityError(f"{path}:{number}: not valid JSON") from None
            if (
                not isinstance(row, dict)
                or not isinstance(row.get("question"), str)
                or not isinstance(row.get("answer"), str)
            ):
                raise ParityError(f"{path}:{number}: expected an object with string 'question' and 'answer'")
            rows.append({"question": row["question"], "answer": row["answer"]})
    if not rows:
        raise ParityError(f"{path}: no rows")
    return rows


def _hub(recipe: Recipe) -> RawData:
    import datasets

    spec = recipe.data
    try:
        loaded = {
            split: datasets.load_dataset(spec.hub_path, spec.hub_config, split=name)
            for split, name in (("train", spec.hub_train_split), ("test", spec.hub_eval_split))
        }
    except Exception as err:  # the hub client raises many types; any failure here means "unreachable"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ParityError(f"--data hub: cannot load '{spec.hub_path}' ({first_line})") from None
    columns = loaded["train"].column_names
    if not {"question", "answer"} <= set(columns):
        raise ParityError(
            f"--data hub: '{spec.hub_path}' has columns {columns}, expected question and answer"
        )
    rows = {
        split: [{"question": r["question"], "answer": r["answer"]} for r in ds]
        for split, ds in loaded.items()
    }
    return RawData(f"hub:{spec.hub_path}", rows["train"], rows["test"])
