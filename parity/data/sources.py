"""Raw rows from one of three sources: a task's synthetic generator, a local JSONL dir, or the hub.

Rows keep the dataset's own columns (any registered row format, parity.data.formats); synthetic and local rows are
the same for both recipes of a diff, `hub` reads each recipe's own dataset. A test split is optional.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from parity.errors import ParityError
from parity.spec import Recipe

log = logging.getLogger("parity")

Row = dict[str, Any]
SPLITS = ("train", "test")


@dataclass(frozen=True)
class RawData:
    """Raw rows before any recipe preprocessing, in the dataset's own columns."""

    source: str
    """'synthetic <task> (seed=0)', 'local:<dir name>', 'hub:<dataset id>' or 'captured rows of <recipe>'."""
    train: list[Row]
    test: list[Row]
    locations: dict[str, list[str]] | None = None
    """Where each row was read, per split ('train.jsonl:7'), for errors; None: 'train row 7'."""
    templated: bool = False
    """True for rows a recipe's own code built (its template is in them): identity strips the template's words."""
    task: str | None = None
    """The task pack whose synthetic generator made the rows."""
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    """Conversions of these rows, per row format and column map (parity.materialize)."""

    def digest(self) -> str:
        return rows_digest(self.train + self.test)

    def location(self, split: str, index: int) -> str:
        if self.locations is not None:
            return self.locations[split][index]
        return f"{self.source} {split} row {index}"


def rows_digest(rows: list[Row]) -> str:
    """A short content hash of rows (order-sensitive): each row's values in column order, text as is and anything
    else as sorted JSON, separated by NUL, each row ended by SOH."""
    h = hashlib.sha256()
    for row in rows:
        try:
            text = "\x00".join(row.values())
        except TypeError:  # a value that is not text
            text = "\x00".join(map(_value_text, row.values()))
        h.update(text.encode())
        h.update(b"\x01")
    return h.hexdigest()[:16]


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def parse_synthetic(spec: str) -> tuple[int | None, int | None, int]:
    """'synthetic[:TRAIN[:TEST[:SEED]]]' -> (train rows, test rows, seed); None: the task's own count."""
    parts = spec.split(":")[1:]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise ParityError(f"--data {spec}: expected synthetic[:TRAIN_ROWS[:TEST_ROWS[:SEED]]]") from None
    if len(numbers) > 3 or any(n < 0 for n in numbers):
        raise ParityError(f"--data {spec}: expected synthetic[:TRAIN_ROWS[:TEST_ROWS[:SEED]]]")
    train = numbers[0] if numbers else None
    test = numbers[1] if len(numbers) > 1 else None
    seed = numbers[2] if len(numbers) > 2 else 0
    return train, test, seed


def load_raw(data: str, recipe: Recipe) -> RawData:
    """Read the raw rows named by --data ('synthetic...', 'hub' or a directory)."""
    if data == "synthetic" or data.startswith("synthetic:"):
        return _synthetic(data, recipe)
    if data == "hub":
        return _hub(recipe)
    return _local(Path(data))


def _synthetic(data: str, recipe: Recipe) -> RawData:
    from parity.tasks import task_of

    train_rows, test_rows, seed = parse_synthetic(data)
    task = task_of(recipe)
    if task is None:
        raise ParityError(
            f"--data {data}: recipe '{recipe.name}' names no task (data.task) whose synthetic rows could stand in; "
            "give --data DIR (train.jsonl, optional test.jsonl) or --data hub"
        )
    train, test = task.synthetic(train_rows, test_rows, seed)
    return RawData(f"synthetic {task.name} (seed={seed})", train, test, task=task.name)


def _local(path: Path) -> RawData:
    if not path.is_dir():
        raise ParityError(
            f"--data {path}: not a directory (expected train.jsonl and an optional test.jsonl, or 'synthetic'/'hub')"
        )
    train, train_lines = _read_jsonl(path / "train.jsonl")
    test_path = path / "test.jsonl"
    test, test_lines = _read_jsonl(test_path) if test_path.exists() else ([], [])
    locations = {
        "train": [f"{path / 'train.jsonl'}:{n}" for n in train_lines],
        "test": [f"{test_path}:{n}" for n in test_lines],
    }
    return RawData(f"local:{path.name}", train, test, locations)


def _read_jsonl(path: Path) -> tuple[list[Row], list[int]]:
    """The JSON object on each non-blank line, and its line number."""
    if not path.is_file():
        raise ParityError(f"--data: missing {path}")
    rows, numbers = [], []
    try:
        with path.open("rb") as handle:
            for number, raw_line in enumerate(handle, 1):
                row = _parse_line(path, number, raw_line)
                if row is not None:
                    rows.append(row)
                    numbers.append(number)
    except OSError as err:
        raise ParityError(f"{path}: cannot read ({err.strerror or err})") from None
    if not rows:
        raise ParityError(f"{path}: no rows")
    return rows, numbers


def _parse_line(path: Path, number: int, raw_line: bytes) -> Row | None:
    """One JSONL line as a row (None for a blank line); bad lines name file and line."""
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
    if not isinstance(row, dict) or not row:
        raise ParityError(f"{path}:{number}: expected a JSON object with the row's columns")
    return row


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
    if not spec.hub_path:
        raise ParityError(f"--data hub: recipe '{recipe.name}' names no hub dataset (data.hub_path)")
    offline = hub_offline_variable()
    if offline is None:
        reason = hub_unreachable()
        if reason:
            raise ParityError(
                f"--data hub: {reason}; use --data DIR or synthetic, or set HF_HUB_OFFLINE=1 to read the hub cache"
            )
    splits = {"train": spec.hub_train_split, "test": spec.hub_eval_split}
    try:
        loaded = {
            split: datasets.load_dataset(spec.hub_path, spec.hub_config, split=name)
            for split, name in splits.items()
            if name is not None
        }
    except Exception as err:  # the hub client raises many types; any failure here means "unreachable"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = f"; {offline} is set and the dataset is not in the cache" if offline else ""
        raise ParityError(f"--data hub: cannot load '{spec.hub_path}' ({first_line}){hint}") from None
    rows = {split: ds.to_list() for split, ds in loaded.items()}
    return RawData(f"hub:{spec.hub_path}", rows["train"], rows.get("test", []))


CHARS_PER_TOKEN_CEILING = 32
"""A row longer than this many characters per token of max_length is far beyond it (English averages ~4)."""
_warned_long: set[tuple[str, int]] = set()


def row_chars(row: Row) -> int:
    """Characters of a row's text: its text columns and the text inside its lists (messages, history)."""
    total = 0
    for value in row.values():
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list | dict):
            total += _nested_chars(value)
    return total


def _nested_chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_nested_chars(v) for v in value.values())
    if isinstance(value, list):
        return sum(_nested_chars(v) for v in value) if value and not isinstance(value[0], int) else 0
    return 0


def long_rows(rows: list[Row], max_length: int) -> list[int]:
    """Indices of rows whose text is far beyond max_length tokens."""
    limit = CHARS_PER_TOKEN_CEILING * max_length
    return [i for i, row in enumerate(rows) if row_chars(row) > limit]


def warn_long_rows(source: str, rows: list[Row], max_length: int | None) -> None:
    """One warning line on stderr (once per source and max_length) when rows are far beyond max_length: they
    are tokenized whole before truncation, which costs time and memory and trains on a cut-off fragment."""
    if max_length is None or (source, max_length) in _warned_long:
        return
    found = long_rows(rows, max_length)
    if not found:
        return
    _warned_long.add((source, max_length))
    longest = max(row_chars(rows[i]) for i in found)
    log.warning(
        "%s: %d row(s) far beyond max_length %d tokens (first: row %d, longest %s characters); "
        "they are tokenized whole, then truncated",
        source,
        len(found),
        max_length,
        found[0],
        f"{longest:,}",
    )
