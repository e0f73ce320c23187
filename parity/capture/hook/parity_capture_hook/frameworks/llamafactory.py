"""LLaMA-Factory: the model/data/training/finetuning/generating arguments `get_train_args` parsed, the chat
template it resolved, its launcher's torchrun decision answered for the simulated GPU count, and torchaudio
stubbed where it does not load (`llamafactory/data/mm_plugin.py` imports it unconditionally)."""

from __future__ import annotations

import functools
import sys
from typing import Any

from parity_capture_hook import imports, launchers, state
from parity_capture_hook.frameworks.common import (
    DERIVED,
    MEASURED,
    RECIPE,
    arguments_record,
    class_name,
    effective,
    from_arguments,
    model_gradient_checkpointing,
    stub_unless_importable,
)

_parsed: dict[str, Any] = {}
_ARGUMENT_NAMES = ("model_args", "data_args", "training_args", "finetuning_args", "generating_args")
TEMPLATE_FIELDS = (
    "format_user",
    "format_assistant",
    "format_system",
    "format_function",
    "format_observation",
    "format_tools",
    "format_prefix",
    "default_system",
    "stop_words",
    "thought_words",
    "efficient_eos",
    "replace_eos",
    "replace_jinja_template",
    "enable_thinking",
)
LAUNCH_DECISIONS = {
    "llamafactory.extras.misc": ("llamafactory.launcher", "launch"),
    "llamafactory.v1.accelerator.helper": ("llamafactory.v1.launcher", "launch"),
}
"""Where LLaMA-Factory counts devices -> the launcher function whose torchrun decision reads that count."""


def _patch_parser(module: Any) -> None:
    read_args, get_train_args = module.read_args, module.get_train_args

    @functools.wraps(read_args)
    def recording_read_args(args: Any = None) -> Any:
        result = read_args(args)
        if isinstance(result, dict):
            _parsed["config"] = result
            _parsed["given"] = set(result)
            if len(sys.argv) > 1 and sys.argv[1].endswith((".yaml", ".yml", ".json")):
                _parsed["config_file"] = state.portable(sys.argv[1])
        elif isinstance(result, list):
            _parsed["given"] = {arg[2:].split("=", 1)[0] for arg in result if arg.startswith("--")}
        return result

    @functools.wraps(get_train_args)
    def recording_get_train_args(args: Any = None) -> Any:
        parsed = get_train_args(args)
        _parsed["entry"] = f"{module.__name__}.get_train_args"
        _parsed["arguments"] = dict(zip(_ARGUMENT_NAMES, parsed, strict=False))
        return parsed

    module.read_args = recording_read_args
    module.get_train_args = recording_get_train_args


def _patch_template(module: Any) -> None:
    original = module.get_template_and_fix_tokenizer

    @functools.wraps(original)
    def get_template_and_fix_tokenizer(tokenizer: Any, data_args: Any) -> Any:
        template = original(tokenizer, data_args)
        _parsed["template"] = template
        _parsed["template_name"] = getattr(data_args, "template", None)
        return template

    module.get_template_and_fix_tokenizer = get_template_and_fix_tokenizer


def _answer_launch_decision(module: Any) -> None:
    """`get_device_count()` answers the simulated GPU count to the launcher's torchrun decision only; every
    other caller (and torch itself) keeps the CPU's answer, so nothing moves to a CUDA device."""
    launcher_module, launcher_function = LAUNCH_DECISIONS[module.__name__]
    launchers.answer_gpu_count_to(module, "get_device_count", launcher_module, launcher_function)


def _stub_torchaudio(module: Any) -> None:
    stub_unless_importable(
        "torchaudio",
        "llamafactory/data/mm_plugin.py imports torchaudio unconditionally; a text recipe never uses audio",
        "llamafactory",
    )


def install() -> None:
    imports.after_import("llamafactory", _stub_torchaudio)
    imports.after_import("llamafactory.hparams.parser", _patch_parser)
    imports.after_import("llamafactory.data.template", _patch_template)
    for module_name in LAUNCH_DECISIONS:
        imports.after_import(module_name, _answer_launch_decision)


def active() -> bool:
    return "arguments" in _parsed


def _template_record(template: Any) -> dict[str, Any]:
    fields = {name: state.jsonable(getattr(template, name, None)) for name in TEMPLATE_FIELDS}
    return {"name": _parsed.get("template_name"), "class": class_name(template), **fields}


def _system_prompt(data: dict[str, Any], template: Any) -> dict[str, Any] | None:
    if data["values"].get("default_system") is not None:
        return from_arguments(data, "default_system", "DataArguments")
    if template is None:
        return None
    name = _parsed.get("template_name")
    return effective(template.default_system or None, f"template {name!r} default_system", MEASURED)


def _effective(records: dict[str, dict[str, Any]], trainer: Any) -> dict[str, Any]:
    data, training = records["data_args"], records["training_args"]
    model, finetuning = records["model_args"], records["finetuning_args"]
    config = _parsed.get("config", {})
    values = data["values"]
    out: dict[str, Any] = {}
    out["max_length"] = effective(
        values["cutoff_len"],
        "DataArguments.cutoff_len",
        data["provenance"]["cutoff_len"],
        config.get("cutoff_len"),
    )
    out["completion_only"] = from_arguments(
        data, "train_on_prompt", "DataArguments", value=not values["train_on_prompt"]
    )
    out["history_trained"] = from_arguments(
        data, "mask_history", "DataArguments", value=not values["mask_history"]
    )
    out["packing"] = from_arguments(data, "packing", "DataArguments", value=bool(values.get("packing")))
    out["neat_packing"] = from_arguments(data, "neat_packing", "DataArguments")
    out["template"] = from_arguments(data, "template", "DataArguments")
    out["seed"] = from_arguments(training, "seed", "TrainingArguments")
    out["stage"] = from_arguments(finetuning, "stage", "FinetuningArguments")
    template = _parsed.get("template")
    if template is not None:
        out["efficient_eos"] = effective(
            template.efficient_eos, f"template {_parsed.get('template_name')!r} efficient_eos", MEASURED
        )
    system = _system_prompt(data, template)
    if system is not None:
        out["system_prompt"] = system
    on_model = model_gradient_checkpointing(trainer.model)
    disabled = model["values"].get("disable_gradient_checkpointing")
    if on_model is not None:
        how = RECIPE if "disable_gradient_checkpointing" in _parsed.get("given", ()) else MEASURED
        out["gradient_checkpointing"] = effective(on_model, "the model (is_gradient_checkpointing)", how)
        out["gradient_checkpointing"]["switch"] = {
            "ModelArguments.disable_gradient_checkpointing": disabled,
            "TrainingArguments.gradient_checkpointing": training["values"].get("gradient_checkpointing"),
        }
    return out


def record(trainer: Any) -> dict[str, Any]:
    import importlib.metadata

    given = _parsed.get("given", set())
    records = {name: arguments_record(value, given) for name, value in _parsed["arguments"].items()}
    settings = {name: value for name, value in records.items() if name != "training_args"}
    template = _parsed.get("template")
    try:
        version = importlib.metadata.version("llamafactory")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {
        "version": version,
        "entry": _parsed["entry"],
        "config_files": {_parsed["config_file"]: _parsed["config"]} if "config_file" in _parsed else {},
        "settings": settings,
        "training_arguments": "training_args.json",
        "template": None if template is None else _template_record(template),
        "effective": _effective(records, trainer),
        "derived_fields": {
            name: sorted(field for field, how in record["provenance"].items() if how == DERIVED)
            for name, record in records.items()
        },
    }
