"""Dataset loads as the recipe's own code makes them: every `load_dataset` result recorded (its rows, full and
served counts, who asked), served only its first N rows under `--rows N`, and `Dataset.shuffle` calls recorded
(a shuffle before the trainer fixes the data order its sampler starts from)."""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any

from parity_capture_hook import state
from parity_capture_hook.frameworks.common import caller

SAVED_ROWS = 20_000
"""Loaded rows kept per split (the rows shared rows are matched against); counts are always complete."""


def row_limit() -> int | None:
    """`--rows N`: how many rows every dataset load serves (None: all)."""
    limit = state.config().get("rows")
    return int(limit) if limit else None


def _parts(result: Any) -> dict[str, Any]:
    if isinstance(result, dict):
        return {str(split): part for split, part in result.items()}
    return {"": result}


def _file_part(split: str, kwargs: dict[str, Any]) -> str:
    """A file-name-safe split name: the DatasetDict key, else the split asked for (`train[:10%]` -> `train-10`)."""
    name = split or str(kwargs.get("split") or "rows")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "rows"


def _limited(part: Any, limit: int | None) -> tuple[Any, int | None, int | None]:
    """(the part served, its full row count where known, the rows served where known)."""
    full = getattr(part, "num_rows", None)
    if not isinstance(full, int):
        full = None
    if limit is None:
        return part, full, full
    if full is not None:
        return (part.select(range(limit)) if full > limit else part), full, min(full, limit)
    if hasattr(part, "take"):
        return part.take(limit), _iterable_full_rows(part), None
    return part, None, None


def _iterable_full_rows(part: Any) -> int | None:
    """A streaming split's row count where the dataset's own info knows it."""
    info = getattr(part, "info", None)
    splits = getattr(info, "splits", None) or {}
    split = getattr(part, "split", None)
    entry = splits.get(str(split)) if split is not None and hasattr(splits, "get") else None
    return getattr(entry, "num_examples", None) or None


def _next_index(folder: Any) -> int:
    """A load number unique across the run's processes (its record file, created exclusively, filled later)."""
    index = 0
    while True:
        try:
            os.close(os.open(folder / f"{index:03d}.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return index
        except FileExistsError:
            index += 1


def _save(folder: Any, index: int, split: str, part: Any) -> dict[str, Any]:
    """Write a served split's rows (at most SAVED_ROWS) to `NNN-<split>.parquet`."""
    if not hasattr(part, "to_parquet") or not hasattr(part, "num_rows"):
        return {
            "saved_rows": 0,
            "not_saved": f"{type(part).__qualname__} (only map-style datasets are saved)",
        }
    kept = part if part.num_rows <= SAVED_ROWS else part.select(range(SAVED_ROWS))
    name = f"{index:03d}-{split}.parquet"
    kept.to_parquet(str(folder / name))
    return {"saved_rows": kept.num_rows, "file": name}


def _describe_call(path: Any, name: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    call = {"path": path if isinstance(path, str) else repr(path), "name": name}
    for key in ("data_files", "data_dir", "split", "streaming"):
        if kwargs.get(key) is not None:
            call[key] = kwargs[key]
    return state.jsonable(call)


def _record_load(result: Any, path: Any, name: Any, kwargs: dict[str, Any], asked_by: str) -> Any:
    """Limit every split of a load to `row_limit()` rows, record the counts and (full runs) save the rows."""
    limit = row_limit()
    splits: dict[str, Any] = {}
    served: dict[str, Any] = {}
    for split, part in _parts(result).items():
        part_served, full, count = _limited(part, limit)
        served[split] = part_served
        splits[split] = {
            "full_rows": full,
            "served_rows": count,
            "columns": list(getattr(part, "column_names", None) or []),
        }
    entry = {
        "call": _describe_call(path, name, kwargs),
        "asked_by": asked_by,
        "limit": limit,
        "splits": splits,
    }
    if state.config().get("mode") != "args":
        folder = state.state_dir() / "loaded"
        folder.mkdir(exist_ok=True)
        index = _next_index(folder)
        for split, part in served.items():
            splits[split].update(_save(folder, index, _file_part(split, kwargs), part))
        entry["index"] = index
        (folder / f"{index:03d}.json").write_text(json.dumps(state.jsonable(entry), indent=2, sort_keys=True))
    state.record("dataset-rows", **entry)
    if "" in served:
        return served[""]
    if limit is None:
        return result
    for split, part in served.items():
        result[split] = part
    return result


def _patch_datasets(datasets_module: Any) -> None:
    from datasets import load as load_module

    loader = load_module.load_dataset

    @functools.wraps(loader)
    def load_dataset(path: Any, name: Any = None, *args: Any, **kwargs: Any) -> Any:
        asked_by = caller()
        result = loader(path, name, *args, **kwargs)
        return _record_load(result, path, name, kwargs, asked_by)

    load_module.load_dataset = load_dataset
    datasets_module.load_dataset = load_dataset

    shuffle = datasets_module.Dataset.shuffle

    @functools.wraps(shuffle)
    def recorded_shuffle(self: Any, *args: Any, **kwargs: Any) -> Any:
        seed = kwargs.get("seed", args[0] if args else None)
        state.record("dataset-shuffle", rows=getattr(self, "num_rows", None), seed=seed, asked_by=caller())
        return shuffle(self, *args, **kwargs)

    datasets_module.Dataset.shuffle = recorded_shuffle


def install() -> None:
    """After the hub redirects (they serve the name; this records and limits what was served)."""
    from parity_capture_hook import imports

    imports.after_import("datasets", _patch_datasets)
