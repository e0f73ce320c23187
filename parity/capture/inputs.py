"""The folders a capture serves to the recipe, checked before anything runs: --data folders hold readable
split files (a broken JSONL line, a file that is not UTF-8 or an empty split named with its file and line),
--tokenizer folders hold tokenizer files and valid JSON."""

from __future__ import annotations

import json
from pathlib import Path

from parity.capture.options import CaptureOptions
from parity.errors import ParityError

SPLIT_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")
"""What the capture's load_dataset redirect serves (see the hook's redirects)."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "config.json")
JSON_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
)


def _split_files(folder: Path) -> list[Path]:
    """Split files in the folder and in its config subfolders (`load_dataset(NAME, CONFIG)`)."""
    files = [path for path in sorted(folder.iterdir()) if path.is_file() and path.suffix in SPLIT_SUFFIXES]
    for sub in sorted(path for path in folder.iterdir() if path.is_dir()):
        files += [path for path in sorted(sub.iterdir()) if path.is_file() and path.suffix in SPLIT_SUFFIXES]
    return files


def _lines(path: Path, where: str):
    """(number, text) of each line of a file, read line by line; a ParityError at the first line that is not
    UTF-8."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ParityError(f"{where}: {path.name} line {number} is not UTF-8 text") from None


def _check_jsonl(path: Path, where: str) -> None:
    rows = 0
    for number, line in _lines(path, where):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ParityError(f"{where}: {path.name} line {number} is not valid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise ParityError(f"{where}: {path.name} line {number} is not a JSON object (one row per line)")
        rows += 1
    if rows == 0:
        raise ParityError(f"{where}: {path.name} is empty (no rows)")


def check_data_folder(folder: Path, where: str) -> None:
    """A ParityError naming the file (and line) when a --data folder cannot serve its splits."""
    files = _split_files(folder)
    if not files:
        raise ParityError(f"{where}: no <split>.jsonl/.json/.parquet/.csv files (e.g. train.jsonl)")
    for path in files:
        relative = path.relative_to(folder)
        shown = where if len(relative.parts) == 1 else f"{where}/{relative.parent}"
        if path.stat().st_size == 0:
            raise ParityError(f"{shown}: {path.name} is empty (no rows)")
        if path.suffix == ".jsonl":
            _check_jsonl(path, shown)
        elif path.suffix in (".json", ".csv"):
            for _ in _lines(path, shown):
                pass


def check_tokenizer_folder(folder: Path, where: str) -> None:
    """A ParityError naming the file when a --tokenizer folder has no tokenizer files or invalid JSON."""
    names = {path.name for path in folder.iterdir() if path.is_file()}
    if not names & set(TOKENIZER_FILES):
        raise ParityError(f"{where}: no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    for name in JSON_FILES:
        if name not in names:
            continue
        path = folder / name
        text = "".join(line for _, line in _lines(path, where))
        try:
            document = json.loads(text)
        except json.JSONDecodeError as err:
            raise ParityError(f"{where}: {name} is not valid JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(document, dict):
            raise ParityError(f"{where}: {name} must be a JSON object")


def check_inputs(options: CaptureOptions) -> None:
    """Check every --data and --tokenizer folder of a capture."""
    for name, folder in options.data.items():
        check_data_folder(Path(folder), f"{options.name('data')} {name}={folder}")
    for name, folder in options.tokenizers.items():
        check_tokenizer_folder(Path(folder), f"{options.name('tokenizers')} {name}={folder}")
