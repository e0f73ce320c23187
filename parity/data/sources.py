"""Raw GSM8K rows from one of three sources: the built-in synthetic generator, a local JSONL dir, or the hub.

Synthetic and local rows are the same for both recipes of a diff; `hub` reads each recipe's own dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from parity.errors import ParityError
from parity.spec import Recipe

log = logging.getLogger("parity")

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
    try:
        with path.open("rb") as handle:
            for number, raw_line in enumerate(handle, 1):
                row = _parse_line(path, number, raw_line)
                if row is not None:
                    rows.append(row)
    except OSError as err:
        raise ParityError(f"{path}: cannot read ({err.strerror or err})") from None
    if not rows:
        raise ParityError(f"{path}: no rows")
    return rows


def _parse_line(path: Path, number: int, raw_line: bytes) -> dict[str, str] | None:
    """One JSONL line as a question/answer row (None for a blank line); bad lines name file and line."""
    try:
        line = raw_line.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ParityError(f"{path}:{number}: not UTF-8 text (byte {err.start + 1} of the line)") from None
    if not line.strip():
        return None
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, RecursionError):
        raise ParityError(f"{path}:{number}: not valid JSON") from None
    if (
        not isinstance(row, dict)
        or not isinstance(row.get("question"), str)
        or not isinstance(row.get("answer"), str)
    ):
        raise ParityError(f"{path}:{number}: expected an object with string 'question' and 'answer'")
    return {"question": row["question"], "answer": row["answer"]}


OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
TRUE_VALUES = ("1", "true", "yes", "on")
CONNECT_SECONDS = 5.0
"""How long --data hub waits for the first connection to the hub before it says the hub is unreachable."""


def hub_offline_variable() -> str | None:
    """The environment variable that puts the hub clients offline, if one does."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in TRUE_VALUES:
            return name
    return None


def hub_unreachable(endpoint: str | None = None, seconds: float = CONNECT_SECONDS) -> str | None:
    """Why the hub endpoint cannot be reached by one TCP connection (None when it can): checked once, so an
    offline machine fails at once instead of after the hub client's retries."""
    url = urlsplit(endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = url.hostname or "huggingface.co"
    port = url.port or (80 if url.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=seconds):
            return None
    except OSError as err:
        return f"cannot connect to {host}:{port} ({err.strerror or type(err).__name__})"


def _hub(recipe: Recipe) -> RawData:
    import datasets

    spec = recipe.data
    offline = hub_offline_variable()
    if offline is None:
        reason = hub_unreachable()
        if reason:
            raise ParityError(
                f"--data hub: {reason}; use --data DIR or synthetic, or set HF_HUB_OFFLINE=1 to read the hub cache"
            )
    try:
        loaded = {
            split: datasets.load_dataset(spec.hub_path, spec.hub_config, split=name)
            for split, name in (("train", spec.hub_train_split), ("test", spec.hub_eval_split))
        }
    except Exception as err:  # the hub client raises many types; any failure here means "unreachable"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = f"; {offline} is set and the dataset is not in the cache" if offline else ""
        raise ParityError(f"--data hub: cannot load '{spec.hub_path}' ({first_line}){hint}") from None
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


CHARS_PER_TOKEN_CEILING = 32
"""A row longer than this many characters per token of max_length is far beyond it (English averages ~4)."""
_warned_long: set[tuple[str, int]] = set()


def long_rows(rows: list[dict[str, str]], max_length: int) -> list[int]:
    """Indices of rows whose question and answer together are far beyond max_length tokens."""
    limit = CHARS_PER_TOKEN_CEILING * max_length
    return [i for i, row in enumerate(rows) if len(row["question"]) + len(row["answer"]) > limit]


def warn_long_rows(source: str, rows: list[dict[str, str]], max_length: int | None) -> None:
    """One warning line on stderr (once per source and max_length) when rows are far beyond max_length: they
    are tokenized whole before truncation, which costs time and memory and trains on a cut-off fragment."""
    if max_length is None or (source, max_length) in _warned_long:
        return
    found = long_rows(rows, max_length)
    if not found:
        return
    _warned_long.add((source, max_length))
    longest = max(len(rows[i]["question"]) + len(rows[i]["answer"]) for i in found)
    log.warning(
        "%s: %d row(s) far beyond max_length %d tokens (first: row %d, longest %s characters); "
        "they are tokenized whole, then truncated",
        source,
        len(found),
        max_length,
        found[0],
        f"{longest:,}",
    )
