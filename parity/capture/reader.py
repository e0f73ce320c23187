"""`load_capture(CAPDIR)`: a captured recipe directory as typed data (manifest, training arguments,
tokenizer, raw and prepared datasets, collator, model, launch table per world size)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from parity.capture.cache import SCHEMA_VERSION
from parity.capture.integrity import TRUST_EDITS_VARIABLE, changes, trusting_edits
from parity.errors import ParityError

REQUIRED_FILES = ("manifest.json", "training_args.json", "collator.json", "model.json")
_noted: set[tuple[str, str]] = set()
"""Edited captures already named in a note (read with edits trusted)."""


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
    def loss_step(self) -> dict[str, Any] | None:
        """loss_step.json (captured with --train-step): the trainer's own first optimizer step on the stand-in
        model, each micro-batch's num_items_in_batch and each row's token weight; None when not captured."""
        path = self.path / "loss_step.json"
        return _read_json(path) if path.is_file() else None

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


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ParityError(
            f"capture {path.parent}: {path.name} is not valid JSON ({err.msg} at line {err.lineno})"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ParityError(f"capture {path.parent}: cannot read {path.name} ({err})") from None


def _object(value: Any, where: str, what: str = "a JSON object") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParityError(f"{where} must be {what}, not {type(value).__name__}")
    return value


def _typed(doc: dict[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    """doc[key], which must be of one of `kinds` (bool is never an int here)."""
    if key not in doc:
        raise ParityError(f"{where}: missing key '{key}'")
    value = doc[key]
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join("null" if kind is type(None) else kind.__name__ for kind in kinds)
        raise ParityError(f"{where}: '{key}' must be {names}, not {type(value).__name__}")
    return value


def check_schema(path: Path, manifest: dict[str, Any]) -> None:
    """A ParityError unless the manifest has this parity's schema version (newer: upgrade; older: re-capture)."""
    version = manifest.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ParityError(
            f"capture {path}: manifest.json has no valid schema_version ({version!r}); "
            "not a `parity capture` output"
        )
    if version > SCHEMA_VERSION:
        raise ParityError(
            f"capture {path}: written by a newer parity (schema_version {version}; this parity reads "
            f"{SCHEMA_VERSION}); upgrade parity"
        )
    if version < SCHEMA_VERSION:
        raise ParityError(
            f"capture {path}: written by an older parity (schema_version {version}, without file digests; "
            f"this parity reads {SCHEMA_VERSION}); capture it again"
        )


def check_unedited(path: Path, manifest: dict[str, Any]) -> None:
    """A ParityError naming the files changed since the capture, unless edits are trusted (then a note)."""
    changed = changes(path, manifest)
    if not changed:
        return
    listed = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    if trusting_edits():
        if (str(path), listed) not in _noted:
            _noted.add((str(path), listed))
            logging.getLogger("parity").warning(
                "capture %s: edited since capture: %s (trusted)", path, listed
            )
        return
    raise ParityError(
        f"capture {path}: edited since capture: {listed}; re-capture or pass --trust-edits "
        f"(parity --trust-edits COMMAND, or {TRUST_EDITS_VARIABLE}=1)"
    )


def _launch_row(row: Any, where: str) -> LaunchRow:
    row = _object(row, where)
    optional_int = (int, type(None))
    return LaunchRow(
        _typed(row, "world_size", (int,), where),
        _typed(row, "processes", (int,), where),
        _typed(row, "processes_from", (str,), where),
        _typed(row, "per_device_train_batch_size", optional_int, where),
        _typed(row, "gradient_accumulation_steps", optional_int, where),
        _typed(row, "global_batch", optional_int, where),
        _typed(row, "launcher", (dict, type(None)), where),
    )


def _training_args(args: Any, where: str) -> TrainingArgsRecord:
    args = _object(args, where)
    non_default = _typed(args, "non_default", (dict,), where)
    for name, change in non_default.items():
        if not isinstance(change, dict) or "value" not in change:
            raise ParityError(f"{where}: 'non_default.{name}' must be an object with 'value' and 'default'")
    return TrainingArgsRecord(
        _typed(args, "class", (str,), where),
        _typed(args, "fields", (dict,), where),
        non_default,
        _typed(args, "defaults_from", (str,), where),
    )


def _model(model: Any, where: str) -> ModelRecord:
    model = _object(model, where)
    return ModelRecord(
        _typed(model, "request", (dict, type(None)), where),
        _typed(model, "architecture_class", (str,), where),
        _typed(model, "architecture_config", (dict,), where),
        _typed(model, "parameter_count", (int,), where),
        _typed(model, "peft", (dict, type(None)), where),
        _typed(model, "trainable_parameter_count", (int,), where),
    )


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a capture directory, checked to be an object of this parity's schema."""
    manifest = _object(_read_json(path / "manifest.json"), f"capture {path}: manifest.json")
    check_schema(path, manifest)
    return manifest


def load_capture(path: Path | str) -> CapturedRecipe:
    """Read a captured recipe directory; a missing, malformed or edited one is one ParityError naming the file
    (an edited one is read as it is when edits are trusted: PARITY_TRUST_EDITS=1)."""
    path = Path(path)
    if not path.is_dir():
        raise ParityError(f"capture {path}: not a directory (create it with `parity capture`)")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ParityError(
            f"capture {path}: missing {', '.join(missing)} (not a complete `parity capture` output)"
        )
    manifest = read_manifest(path)
    check_unedited(path, manifest)
    where = f"capture {path}: manifest.json"
    rows = _typed(manifest, "launch", (list,), where)
    if not rows:
        raise ParityError(f"{where}: 'launch' lists no world size")
    _typed(manifest, "command", (list,), where)
    return CapturedRecipe(
        path=path,
        manifest=manifest,
        training_args=_training_args(
            _read_json(path / "training_args.json"), f"capture {path}: training_args.json"
        ),
        collator=_object(_read_json(path / "collator.json"), f"capture {path}: collator.json"),
        model=_model(_read_json(path / "model.json"), f"capture {path}: model.json"),
        launch=[_launch_row(row, f"{where} launch[{index}]") for index, row in enumerate(rows)],
    )
