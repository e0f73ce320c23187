"""TRL: the `trl sft` CLI's parsed arguments (ScriptArguments, ModelConfig, ... from TrlParser) and the
SFTConfig the trainer holds, mapped to parity's effective values."""

from __future__ import annotations

import dataclasses
import functools
import sys
from typing import Any

from parity_capture_hook import imports, state
from parity_capture_hook.frameworks.common import (
    MEASURED,
    arguments_record,
    class_name,
    declared_defaults,
    effective,
    from_arguments,
    model_gradient_checkpointing,
)

_parsed: dict[str, Any] = {}


def _given_keys(args: list[str]) -> tuple[set[str], dict[str, Any]]:
    """Field names the command line and the `--config` YAML set, and {config path: its keys}."""
    given = {arg[2:].split("=", 1)[0].replace("-", "_") for arg in args if arg.startswith("--")}
    files: dict[str, Any] = {}
    if "--config" in args and args.index("--config") + 1 < len(args):
        path = args[args.index("--config") + 1]
        try:
            import yaml

            with open(path, encoding="utf-8") as handle:
                config = yaml.safe_load(handle) or {}
        except (OSError, ValueError, ImportError):
            config = {}
        if isinstance(config, dict):
            given |= set(config)
            files[state.portable(str(path))] = config
    return given - {"config"}, files


def _patch_parser(module: Any) -> None:
    parser_class = getattr(module, "TrlParser", None)
    original = getattr(parser_class, "parse_args_and_config", None)
    if original is None:
        return

    @functools.wraps(original)
    def parse_args_and_config(self: Any, args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        parsed = original(self, args, *rest, **kwargs)
        argv = list(args) if args is not None else sys.argv[1:]
        given, files = _given_keys(argv)
        _parsed.update(
            entry=f"{class_name(parser_class)}.parse_args_and_config",
            given=given,
            config_files=files,
            objects=[item for item in parsed if dataclasses.is_dataclass(item)],
        )
        return parsed

    parser_class.parse_args_and_config = parse_args_and_config


def install() -> None:
    imports.after_import("trl.scripts.utils", _patch_parser)


def active() -> bool:
    """True once TRL's own parser built the recipe's arguments (the `trl sft` CLI or a script using it)."""
    return bool(_parsed)


def owns(trainer: Any) -> bool:
    """True when the trainer's arguments are a TRL config (a recipe's own subclass of one included)."""
    return any(cls.__module__.startswith("trl.") for cls in type(trainer.args).__mro__)


def _given_training_fields(args: Any) -> set[str]:
    """Fields the recipe set: those its parser saw, else (a script of its own) those off the class default."""
    if _parsed:
        return set(_parsed["given"])
    defaults = declared_defaults(type(args))
    return {
        field.name
        for field in dataclasses.fields(args)
        if field.name in defaults
        and state.jsonable(defaults[field.name]) != state.jsonable(getattr(args, field.name, None))
    }


def _completion_only(args_record: dict[str, Any], trainer: Any) -> dict[str, Any] | None:
    if "completion_only_loss" not in args_record["values"]:
        return None
    value = args_record["values"]["completion_only_loss"]
    how = args_record["provenance"]["completion_only_loss"]
    if value is not None:
        return effective(value, "SFTConfig.completion_only_loss", how)
    columns = getattr(getattr(trainer, "train_dataset", None), "column_names", None) or []
    entry = effective("completion_mask" in columns, "SFTConfig.completion_only_loss", how)
    entry["rule"] = (
        "None: completion-only exactly when the prepared rows carry a completion_mask (prompt-completion data)"
    )
    return entry


def training_effective(args: Any, given: set[str], trainer: Any) -> dict[str, Any]:
    """parity's effective values from a TRL SFTConfig (or any TrainingArguments) the trainer holds."""
    record = arguments_record(args, given)
    label = type(args).__qualname__
    values = record["values"]
    out: dict[str, Any] = {}
    for name, field in (("max_length", "max_length"), ("max_length", "max_seq_length")):
        if field in values and name not in out:
            out[name] = from_arguments(record, field, label)
    completion = _completion_only(record, trainer)
    if completion is not None:
        out["completion_only"] = completion
    for name, field in (("assistant_only", "assistant_only_loss"), ("packing", "packing"), ("seed", "seed")):
        if field in values:
            out[name] = from_arguments(record, field, label)
    if "chat_template_path" in values:
        tokenizer = getattr(trainer, "processing_class", None)
        path = values["chat_template_path"]
        if path:
            out["template"] = from_arguments(record, "chat_template_path", label)
        else:
            template = getattr(tokenizer, "chat_template", None)
            out["template"] = effective(
                "the tokenizer's chat template" if template else None, "tokenizer.chat_template", MEASURED
            )
    out["gradient_checkpointing"] = _gradient_checkpointing(record, label, trainer)
    return out


def _gradient_checkpointing(record: dict[str, Any], label: str, trainer: Any) -> dict[str, Any]:
    """The arguments' switch (the Trainer enables it when training starts), or the model's when already on."""
    on_model = model_gradient_checkpointing(trainer.model)
    if on_model:
        return effective(True, "the model (is_gradient_checkpointing)", MEASURED)
    return from_arguments(record, "gradient_checkpointing", label)


def record(trainer: Any) -> dict[str, Any]:
    import trl

    given = _given_training_fields(trainer.args)
    settings = {}
    for item in _parsed.get("objects", []):
        if item is trainer.args or type(item) is type(trainer.args):
            continue
        settings[type(item).__qualname__] = arguments_record(item, _parsed["given"])
    out = {
        "version": getattr(trl, "__version__", None),
        "entry": _parsed.get("entry", f"{class_name(trainer.args)} built by the recipe's own code"),
        "config_files": _parsed.get("config_files", {}),
        "settings": settings,
        "training_arguments": "training_args.json",
        "effective": training_effective(trainer.args, given, trainer),
    }
    model_config = settings.get("ModelConfig")
    if model_config and "dtype" in model_config["values"]:
        out["effective"]["load_dtype"] = from_arguments(model_config, "dtype", "ModelConfig")
    return out


def transformers_record(trainer: Any) -> dict[str, Any]:
    """No framework above transformers: the TrainingArguments the recipe's own code built."""
    import transformers

    given = _given_training_fields(trainer.args)
    effective_values = training_effective(trainer.args, given, trainer)
    return {
        "version": getattr(transformers, "__version__", None),
        "entry": f"{class_name(trainer.args)} built by the recipe's own code",
        "config_files": {},
        "settings": {},
        "training_arguments": "training_args.json",
        "effective": effective_values,
    }
