"""Axolotl: the normalised config `load_cfg` returns (validated, defaults filled, then completed by its own
training setup), the prompters its dataset types built, and its dataset shuffle, mapped to parity's
effective values."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from parity_capture_hook import imports, state
from parity_capture_hook.frameworks.common import DEFAULT, DERIVED, MEASURED, RECIPE, effective

_parsed: dict[str, Any] = {}
_prompters: list[Any] = []
PROMPTER_FIELDS = (
    "prompt_style",
    "system_prompt",
    "system_no_input_prompt",
    "system_format",
    "turn_format",
    "turn_no_input_format",
)
CHAT_TEMPLATE_TYPES = ("chat_template",)
SECRET_KEYS = frozenset({"hub_token", "hf_token", "hf_api_token"})


def _secret(key: str, value: Any) -> bool:
    return isinstance(value, str) and bool(value) and (key in SECRET_KEYS or "api_key" in key)


def _patch_load_cfg(module: Any) -> None:
    original = module.load_cfg

    @functools.wraps(original)
    def load_cfg(config: Any = Path("examples/"), **kwargs: Any) -> Any:
        cfg = original(config, **kwargs)
        path = cfg.get("axolotl_config_path") if hasattr(cfg, "get") else None
        given: dict[str, Any] = {}
        if path and Path(str(path)).is_file():
            import yaml

            with open(path, encoding="utf-8") as handle:
                loaded = yaml.safe_load(handle)
            given = loaded if isinstance(loaded, dict) else {}
        _parsed.update(
            entry=f"{module.__name__}.load_cfg",
            cfg=cfg,
            config_file=state.portable(str(path)) if path else None,
            given=given,
            overrides=sorted(kwargs),
        )
        return cfg

    module.load_cfg = load_cfg


def _patch_prompters(module: Any) -> None:
    base = getattr(module, "AlpacaPrompter", None)
    original = getattr(base, "__init__", None)
    if original is None:
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        _prompters.append(self)

    base.__init__ = __init__


TELEMETRY_OPT_OUT = "AXOLOTL_DO_NOT_TRACK"


def _record_telemetry_opt_out(module: Any) -> None:
    state.record(
        "tracker",
        tracker="axolotl telemetry",
        neutralized=f"{TELEMETRY_OPT_OUT}={os.environ.get(TELEMETRY_OPT_OUT)} (no network in a capture)",
    )


def install() -> None:
    os.environ.setdefault(TELEMETRY_OPT_OUT, "1")
    imports.after_import("axolotl", _record_telemetry_opt_out)
    imports.after_import("axolotl.cli.config", _patch_load_cfg)
    imports.after_import("axolotl.prompters", _patch_prompters)


def active() -> bool:
    return "cfg" in _parsed


def _schema_defaults() -> dict[str, Any]:
    """Field defaults of Axolotl's config schema (pydantic), where this version has it."""
    try:
        from axolotl.utils.schemas.config import AxolotlInputConfig
    except ImportError:
        return {}
    defaults = {}
    for name, field in AxolotlInputConfig.model_fields.items():
        if not field.is_required() and field.default_factory is None:
            defaults[name] = field.default
    return defaults


def _config_record(cfg: dict[str, Any]) -> dict[str, Any]:
    given = set(_parsed.get("given", {})) | set(_parsed.get("overrides", []))
    defaults = _schema_defaults()
    values = {
        str(key): "<redacted>" if _secret(str(key), value) else state.jsonable(value)
        for key, value in dict(cfg).items()
    }
    how = {}
    for key, value in values.items():
        if key in given:
            how[key] = RECIPE
        elif key in defaults and state.jsonable(defaults[key]) == value:
            how[key] = DEFAULT
        else:
            how[key] = DERIVED
    return {"class": f"{type(cfg).__module__}.{type(cfg).__qualname__}", "values": values, "provenance": how}


def _setting(config: dict[str, Any], key: str, value: Any = None) -> dict[str, Any]:
    raw = config["values"].get(key)
    return effective(raw if value is None else value, f"cfg.{key}", config["provenance"].get(key, DEFAULT))


def _prompter_record(prompter: Any) -> dict[str, Any]:
    return {
        "class": f"{type(prompter).__module__}.{type(prompter).__qualname__}",
        **{name: state.jsonable(getattr(prompter, name, None)) for name in PROMPTER_FIELDS},
    }


def _dataset_types(config: dict[str, Any]) -> list[Any]:
    return [entry.get("type") for entry in config["values"].get("datasets") or [] if isinstance(entry, dict)]


def _effective(config: dict[str, Any], trainer: Any) -> dict[str, Any]:
    values = config["values"]
    types = _dataset_types(config)
    out = {
        "max_length": _setting(config, "sequence_len"),
        "completion_only": _setting(config, "train_on_inputs", value=not values.get("train_on_inputs")),
        "packing": _setting(config, "sample_packing", value=bool(values.get("sample_packing"))),
        "seed": _setting(config, "seed"),
        "gradient_checkpointing": _setting(
            config, "gradient_checkpointing", value=bool(values.get("gradient_checkpointing"))
        ),
        "dataset_types": effective(
            types, "cfg.datasets[].type", RECIPE if "datasets" in _parsed.get("given", {}) else DERIVED
        ),
        "pre_shuffle": _setting(
            config,
            "shuffle_merged_datasets",
            value=bool(values.get("shuffle_merged_datasets")) and not values.get("curriculum_sampling"),
        ),
    }
    if any(kind in CHAT_TEMPLATE_TYPES for kind in types):
        out["template"] = _setting(config, "chat_template")
        out["roles_trained"] = _setting(config, "roles_to_train")
        out["train_on_eos"] = _setting(config, "train_on_eos")
    elif types:
        out["template"] = effective(
            types[0] if len(set(types)) == 1 else types,
            "cfg.datasets[].type",
            out["dataset_types"]["provenance"],
        )
    if _prompters:
        first = _prompter_record(_prompters[0])
        out["system_prompt"] = effective(
            {"with_input": first["system_prompt"], "without_input": first["system_no_input_prompt"]},
            f"{first['class']} (system_prompt, system_no_input_prompt)",
            MEASURED,
        )
    return out


def record(trainer: Any) -> dict[str, Any]:
    import importlib.metadata

    config = _config_record(_parsed["cfg"])
    try:
        version = importlib.metadata.version("axolotl")
    except importlib.metadata.PackageNotFoundError:
        version = None
    files = {_parsed["config_file"]: _parsed["given"]} if _parsed.get("config_file") else {}
    return {
        "version": version,
        "entry": _parsed["entry"],
        "config_files": files,
        "settings": {"cfg": config},
        "training_arguments": "training_args.json",
        "prompters": [_prompter_record(prompter) for prompter in _prompters],
        "effective": _effective(config, trainer),
        "derived_fields": {"cfg": sorted(key for key, how in config["provenance"].items() if how == DERIVED)},
    }
