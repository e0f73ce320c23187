"""`load_capture(CAPDIR)`: a captured recipe directory as typed data (manifest, training arguments,
tokenizer, raw and prepared datasets, collator, model, launch table per world size)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from parity.capture.cache import SCHEMA_VERSION
from parity.errors import ParityError

REQUIRED_FILES = ("manifest.json", "training_args.json", "collator.json", "model.json")


@dataclass(frozen=True)
class TrainingArgsRecord:
    """The trainer's arguments: class, every field, and the fields that differ from the class defaults."""

    class_name: str
    fields: dict[str, Any]
    non_default: dict[str, dict[str, Any]]
    defaults_from: str


@dataclass(frozen=True)
class LaunchRow:
    """What the recipe's own launch logic gives at one world size."""

    world_size: int
    processes: int
    processes_from: str
    per_device_train_batch_size: int | None
    gradient_accumulation_steps: int | None
    global_batch: int | None
    launcher: dict[str, Any] | None


@dataclass(frozen=True)
class PreparedDataset:
    """A dataset as the trainer holds it after TRL's preparation."""

    rows: list[dict[str, Any]]

    @property
    def input_ids(self) -> list[list[int]]:
        return [row["input_ids"] for row in self.rows]

    @property
    def labels(self) -> list[list[int]] | None:
        return [row["labels"] for row in self.rows] if self.rows and "labels" in self.rows[0] else None

    @property
    def attention_mask(self) -> list[list[int]] | None:
        key = "attention_mask"
        present = self.rows and self.rows[0].get(key) is not None
        return [row[key] for row in self.rows] if present else None

    @property
    def completion_mask(self) -> list[list[int]] | None:
        key = "completion_mask"
        return [row[key] for row in self.rows] if self.rows and key in self.rows[0] else None


@dataclass(frozen=True)
class ModelRecord:
    request: dict[str, Any] | None
    architecture_class: str
    architecture_config: dict[str, Any]
    parameter_count: int
    peft: dict[str, Any] | None
    trainable_parameter_count: int


def _read_parquet_rows(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet

    return pyarrow.parquet.read_table(path).to_pylist()


def _parquet_folder(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in sorted(folder.glob("*.parquet"))} if folder.is_dir() else {}


@dataclass(frozen=True)
class CapturedRecipe:
    """A captured recipe directory; datasets are read on first access."""

    path: Path
    manifest: dict[str, Any]
    training_args: TrainingArgsRecord
    collator: dict[str, Any]
    model: ModelRecord
    launch: list[LaunchRow]

    @property
    def tokenizer_path(self) -> Path:
        return self.path / "tokenizer"

    @cached_property
    def prepared(self) -> dict[str, PreparedDataset]:
        """{'train': ..., 'eval': ...} (eval dictionaries as 'eval-<name>')."""
        files = _parquet_folder(self.path / "prepared")
        return {name: PreparedDataset(_read_parquet_rows(path)) for name, path in files.items()}

    @cached_property
    def collated(self) -> dict[str, PreparedDataset]:
        """The first prepared train examples as the trainer's own collator batches them (input_ids, labels)."""
        files = _parquet_folder(self.path / "collated")
        return {name: PreparedDataset(_read_parquet_rows(path)) for name, path in files.items()}

    @cached_property
    def raw(self) -> dict[str, list[dict[str, Any]]]:
        """The rows the recipe passed to the trainer, before TRL's preparation."""
        return {name: _read_parquet_rows(path) for name, path in _parquet_folder(self.path / "raw").items()}

    @cached_property
    def framework(self) -> dict[str, Any]:
        """framework.json: the framework that built the trainer, its parsed settings with provenance and parity's
        effective values (empty for a capture made before frameworks were recorded)."""
        path = self.path / "framework.json"
        return _read_json(path) if path.is_file() else {}

    @cached_property
    def loaded(self) -> list[dict[str, Any]]:
        """Every dataset load the recipe made, in order: call, who asked, per split full/served/saved row counts
        and (full run) the served rows under `rows`."""
        folder = self.path / "loaded"
        loads = []
        for path in sorted(folder.glob("[0-9][0-9][0-9].json")) if folder.is_dir() else []:
            load = _read_json(path)
            for split in load.get("splits", {}).values():
                if split.get("file"):
                    split["rows"] = _read_parquet_rows(folder / split["file"])
            loads.append(load)
        return loads

    @cached_property
    def batches(self) -> list[dict[str, Any]]:
        """The first prepared train rows collated in batches of per_device_train_batch_size: one row per
        batch row (batch, position, input_ids, labels, attention_mask), padded as a real batch is."""
        path = self.path / "collated" / "batches.parquet"
        return _read_parquet_rows(path) if path.is_file() else []

    @property
    def rows_limited(self) -> bool:
        """True when `--rows` served fewer rows than a load had (counts and steps then need the full data)."""
        return bool(self.manifest.get("rows", {}).get("limited"))

    @property
    def peft(self) -> dict[str, Any] | None:
        return self.model.peft

    def launch_at(self, world_size: int) -> LaunchRow:
        for row in self.launch:
            if row.world_size == world_size:
                return row
        captured = [row.world_size for row in self.launch]
        raise ParityError(f"capture {self.path} has no world size {world_size} (captured: {captured})")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ParityError(f"capture {path.parent}: {path.name} is not valid JSON ({err.msg})") from None


def load_capture(path: Path | str) -> CapturedRecipe:
    """Read a captured recipe directory; a missing or malformed one is one ParityError."""
    path = Path(path)
    if not path.is_dir():
        raise ParityError(f"capture {path}: not a directory (create it with `parity capture`)")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ParityError(
            f"capture {path}: missing {', '.join(missing)} (not a complete `parity capture` output)"
        )
    manifest = _read_json(path / "manifest.json")
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ParityError(
            f"capture {path}: schema_version {manifest.get('schema_version')!r}, expected {SCHEMA_VERSION}; "
            "capture it again"
        )
    try:
        args = _read_json(path / "training_args.json")
        model = _read_json(path / "model.json")
        return CapturedRecipe(
            path=path,
            manifest=manifest,
            training_args=TrainingArgsRecord(
                args["class"], args["fields"], args["non_default"], args["defaults_from"]
            ),
            collator=_read_json(path / "collator.json"),
            model=ModelRecord(
                model["request"],
                model["architecture_class"],
                model["architecture_config"],
                model["parameter_count"],
                model["peft"],
                model["trainable_parameter_count"],
            ),
            launch=[
                LaunchRow(
                    row["world_size"],
                    row["processes"],
                    row["processes_from"],
                    row["per_device_train_batch_size"],
                    row["gradient_accumulation_steps"],
                    row["global_batch"],
                    row["launcher"],
                )
                for row in manifest["launch"]
            ],
        )
    except KeyError as err:
        raise ParityError(f"capture {path}: missing key {err} (capture it again)") from None
