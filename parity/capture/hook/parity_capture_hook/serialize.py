"""Writes what a constructed trainer holds: training arguments (with the class defaults they differ from),
tokenizer, raw and prepared datasets, collator, model request/architecture/PEFT, and library versions."""

from __future__ import annotations

import copy
import dataclasses
import importlib.metadata
import platform
import sys
import time
from typing import Any

from parity_capture_hook import frameworks, models, state

LIBRARIES = (
    "transformers",
    "trl",
    "peft",
    "torch",
    "datasets",
    "accelerate",
    "huggingface_hub",
    "tokenizers",
)
_SECRET_FIELDS = {"hub_token", "push_to_hub_token"}


def _field_values(args: Any) -> dict[str, Any]:
    values = {}
    for field in dataclasses.fields(args):
        value = getattr(args, field.name, None)
        if field.name in _SECRET_FIELDS and value is not None:
            value = "<redacted>"
        values[field.name] = state.jsonable(value)
    return values


def _declared_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return "<required>"


def default_values(cls: type, args: Any = None) -> tuple[dict[str, Any], str]:
    """Every field of `cls` at its default, measured by instantiating the class in this environment.

    A class whose fields without a default (transformers < 4.50's `output_dir`) can be given the captured values is
    built with those; one that still cannot be built (a recipe's subclass with required fields) takes its nearest
    library ancestor's instance for inherited fields and declared defaults for its own."""
    try:
        return _field_values(cls()), f"{cls.__qualname__}()"
    except Exception:  # noqa: BLE001 - recipe subclasses may require fields; fall back to an ancestor
        pass
    required = {
        f.name: getattr(args, f.name, None)
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    if args is not None and required:
        try:
            return _field_values(cls(**required)), f"{cls.__qualname__}({', '.join(required)} as captured)"
        except Exception:  # noqa: BLE001 - fall back to an ancestor
            pass
    for base in cls.__mro__[1:]:
        if not dataclasses.is_dataclass(base) or not base.__module__.startswith(("trl.", "transformers.")):
            continue
        try:
            values = _field_values(base())
        except Exception:  # noqa: BLE001
            continue
        for field in dataclasses.fields(cls):
            if field.name not in values:
                values[field.name] = state.jsonable(_declared_default(field))
        return values, f"{base.__module__}.{base.__qualname__}() + declared defaults of {cls.__qualname__}"
    return {
        f.name: state.jsonable(_declared_default(f)) for f in dataclasses.fields(cls)
    }, "declared defaults"


def write_training_args(args: Any) -> None:
    cls = type(args)
    fields = _field_values(args)
    defaults, defaults_from = default_values(cls, args)
    differs = {
        name: {"value": value, "default": defaults.get(name)}
        for name, value in fields.items()
        if defaults.get(name) != value
    }
    state.write_json(
        "training_args.json",
        {
            "class": f"{cls.__module__}.{cls.__qualname__}",
            "fields": fields,
            "non_default": differs,
            "defaults_from": defaults_from,
        },
    )


def _datasets(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(key): part for key, part in value.items()}
    return {"": value}


def _write_datasets(folder: str, role: str, value: Any) -> dict[str, Any]:
    written = {}
    target = state.state_dir() / folder
    target.mkdir(exist_ok=True)
    for key, dataset in _datasets(value).items():
        name = role if not key else f"{role}-{key}"
        if hasattr(dataset, "to_parquet") and hasattr(dataset, "num_rows"):
            dataset.to_parquet(str(target / f"{name}.parquet"))
            written[name] = {"rows": dataset.num_rows, "columns": list(dataset.column_names)}
        else:
            written[name] = {"not_saved": f"{type(dataset).__qualname__} (only map-style datasets are saved)"}
    return written


COLLATED_EXAMPLES = 1024
"""Prepared train examples also run through the trainer's own collator, one per batch (labels as trained)."""


def _dataloader_dataset(trainer: Any) -> Any:
    """The train dataset as the trainer's own dataloader hands it to the collator: columns the model's forward does
    not take removed by `Trainer._remove_unused_columns` (when `remove_unused_columns` is set), as
    `get_train_dataloader` does."""
    dataset = getattr(trainer, "train_dataset", None)
    remove = getattr(trainer, "_remove_unused_columns", None)
    if dataset is None or remove is None or not hasattr(dataset, "column_names"):
        return dataset
    try:
        return remove(dataset, description="training")
    except Exception:  # noqa: BLE001 - a trainer that cannot say which columns it keeps: the dataset as it is
        return dataset


def _write_collated(trainer: Any) -> dict[str, Any]:
    """input_ids and labels of the first prepared train examples as the trainer's collator builds them."""
    dataset = _dataloader_dataset(trainer)
    if dataset is None or not hasattr(dataset, "select"):
        return {"not_saved": "no map-style train dataset"}
    count = min(COLLATED_EXAMPLES, dataset.num_rows)
    rows = {"input_ids": [], "labels": [], "attention_mask": []}
    try:
        for example in dataset.select(range(count)):
            batch = trainer.data_collator([example])
            for key in rows:
                rows[key].append(_first_row(batch, key))
    except Exception as err:  # noqa: BLE001 - a collator parity cannot drive is reported, not fatal
        return {"not_saved": f"the collator raised {type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    import datasets

    target = state.state_dir() / "collated"
    target.mkdir(exist_ok=True)
    datasets.Dataset.from_dict(rows).to_parquet(str(target / "train.parquet"))
    return {"rows": count, "of": dataset.num_rows}


def _first_row(batch: Any, key: str) -> list | None:
    """Row 0 of one collated tensor (None when the collator builds no such key, or a non-2D one)."""
    value = batch.get(key) if hasattr(batch, "get") else None
    if value is None or getattr(value, "dim", lambda: 0)() != 2:
        return None
    return value[0].tolist()


COLLATED_BATCHES = 4
"""Batches of per_device_train_batch_size consecutive prepared rows also collated together (the padding a real
batch gets: to its longest row, then the collator's multiple)."""


def _write_batches(trainer: Any) -> dict[str, Any]:
    """collated/batches.parquet: the first COLLATED_BATCHES batches, one row per batch row."""
    import datasets

    dataset = _dataloader_dataset(trainer)
    if dataset is None or not hasattr(dataset, "select"):
        return {"not_saved": "no map-style train dataset"}
    target = state.state_dir() / "collated"
    target.mkdir(exist_ok=True)
    size = max(1, int(getattr(trainer.args, "per_device_train_batch_size", 1) or 1))
    columns: dict[str, list] = {
        "batch": [],
        "position": [],
        "input_ids": [],
        "labels": [],
        "attention_mask": [],
    }
    count = min(COLLATED_BATCHES, -(-dataset.num_rows // size))
    try:
        for index in range(count):
            rows = range(index * size, min((index + 1) * size, dataset.num_rows))
            batch = trainer.data_collator(list(dataset.select(rows)))
            for position in range(len(rows)):
                columns["batch"].append(index)
                columns["position"].append(position)
                for key in ("input_ids", "labels", "attention_mask"):
                    value = batch.get(key) if hasattr(batch, "get") else None
                    ok = value is not None and getattr(value, "dim", lambda: 0)() == 2
                    columns[key].append(value[position].tolist() if ok else None)
    except Exception as err:  # noqa: BLE001 - reported, not fatal
        return {"not_saved": f"the collator raised {type(err).__name__}: {str(err).splitlines()[0][:200]}"}
    datasets.Dataset.from_dict(columns).to_parquet(str(target / "batches.parquet"))
    return {"batches": count, "batch_size": size}


def describe_collator(collator: Any) -> dict[str, Any]:
    description: dict[str, Any] = {"class": f"{type(collator).__module__}.{type(collator).__qualname__}"}
    if dataclasses.is_dataclass(collator):
        values = {f.name: getattr(collator, f.name, None) for f in dataclasses.fields(collator)}
    else:
        values = dict(getattr(collator, "__dict__", {}))
    settings = {}
    for key, value in values.items():
        if value is None or isinstance(value, bool | int | float | str | list | tuple | dict):
            settings[key] = state.jsonable(value)
        else:
            settings[key] = f"<{type(value).__qualname__}>"
    description["settings"] = settings
    return description


def _real_architecture(model: Any) -> tuple[Any, Any, dict[str, Any] | None]:
    """(architecture class, real config, request) of the model the trainer holds."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for entry in reversed(models.STAND_INS):
        if entry["model"] is base:
            return entry["class"], entry["real_config"], entry["request"]
    if models.STAND_INS:
        entry = models.STAND_INS[-1]
        return entry["class"], entry["real_config"], entry["request"]
    return type(base), base.config, None


def _meta_model(cls: Any, config: Any) -> Any:
    import torch

    real = copy.deepcopy(config)
    with torch.device("meta"):
        return cls._from_config(real, attn_implementation="sdpa")


def describe_model(trainer: Any, peft_config_argument: Any) -> dict[str, Any]:
    model = trainer.model
    cls, real_config, request = _real_architecture(model)
    description: dict[str, Any] = {
        "request": request,
        "architecture_class": f"{cls.__module__}.{cls.__qualname__}",
        "architecture_config": real_config.to_dict(),
        "trainer_model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        "stand_in": bool(models.STAND_INS),
    }
    meta = _meta_model(cls, real_config)
    description["parameter_count"] = sum(p.numel() for p in meta.parameters())
    peft_configs = getattr(model, "peft_config", None) or {}
    if not peft_configs and peft_config_argument is not None:
        peft_configs = {"default": peft_config_argument}
    if peft_configs:
        import peft
        import torch

        adapter_name, peft_config = next(iter(peft_configs.items()))
        with torch.device("meta"):
            wrapped = peft.get_peft_model(meta, copy.deepcopy(peft_config))
        description["peft"] = {"adapter": adapter_name, "config": peft_config.to_dict()}
        description["trainable_parameter_count"] = sum(
            p.numel() for p in wrapped.parameters() if p.requires_grad
        )
    else:
        description["peft"] = None
        description["trainable_parameter_count"] = description["parameter_count"]
    return description


def library_versions() -> dict[str, Any]:
    versions: dict[str, Any] = {"python": platform.python_version(), "executable": sys.executable}
    for name in LIBRARIES:
        module = sys.modules.get(name)
        version = getattr(module, "__version__", None) if module is not None else None
        if version is None:
            try:
                version = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                version = None
        versions[name] = version
    return versions


def write_everything(trainer: Any, entry: dict[str, Any]) -> None:
    """Every artifact of a constructed trainer; how long each took goes to writing_seconds.json."""
    seconds: dict[str, float] = {}

    def timed(name: str, write: Any) -> Any:
        started = time.monotonic()
        result = write()
        seconds[name] = round(time.monotonic() - started, 3)
        return result

    tokenizer = getattr(trainer, "processing_class", None) or getattr(trainer, "tokenizer", None)
    if tokenizer is not None:
        timed("tokenizer", lambda: tokenizer.save_pretrained(str(state.state_dir() / "tokenizer")))
    raw = timed(
        "raw",
        lambda: {
            **_write_datasets("raw", "train", entry.get("train_dataset")),
            **_write_datasets("raw", "eval", entry.get("eval_dataset")),
        },
    )
    prepared = timed(
        "prepared",
        lambda: {
            **_write_datasets("prepared", "train", getattr(trainer, "train_dataset", None)),
            **_write_datasets("prepared", "eval", getattr(trainer, "eval_dataset", None)),
        },
    )
    state.write_json("datasets.json", {"raw": raw, "prepared": prepared})
    collated, batches = timed("collated", lambda: (_write_collated(trainer), _write_batches(trainer)))
    state.write_json(
        "collator.json",
        {**describe_collator(trainer.data_collator), "collated": collated, "batches": batches},
    )
    state.write_json("model.json", timed("model", lambda: describe_model(trainer, entry.get("peft_config"))))
    state.write_json(
        "processing_class.json",
        {"class": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}"} if tokenizer else {},
    )
    state.write_json("versions.json", library_versions())
    frameworks.write_record(trainer)
    state.write_json("writing_seconds.json", seconds)
