"""Dotted-key overrides (`training.seed=7`): the one way to change a recipe, from YAML and the CLI alike.

Keys are validated against the spec sections, `trl.SFTConfig` (training.*) and `peft.LoraConfig`
(peft.lora.*); an unknown key is a ParityError naming the closest valid one.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from functools import cache
from typing import Any

import yaml

from parity.errors import ParityError, unknown_key_error
from parity.spec import SECTIONS, PreprocessStep, Recipe, section_fields

RENAMED_TRAINING_KEYS = {"warmup_ratio": "warmup_steps", "max_seq_length": "max_length"}
"""Upstream SFTConfig/TrainingArguments names the installed libraries renamed (old -> new)."""

RESET = "<default>"
"""Override value that removes a training/peft key so the library default applies again."""


@cache
def sft_config_fields() -> frozenset[str]:
    """Every field of the installed trl.SFTConfig."""
    from trl import SFTConfig

    return frozenset(f.name for f in dataclasses.fields(SFTConfig))


@cache
def lora_config_fields() -> frozenset[str]:
    """Every field of the installed peft.LoraConfig."""
    from peft import LoraConfig

    return frozenset(f.name for f in dataclasses.fields(LoraConfig))


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse 'key=value' from the CLI; the value is read as a YAML scalar (1e-4, true, null, [a, b])."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ParityError(f"override '{text}' is not KEY=VALUE")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def all_valid_keys() -> list[str]:
    """Every dotted key an override may name (for suggestions)."""
    keys = [f"{s}.{f}" for s in SECTIONS for f in section_fields(s)]
    keys += [f"training.{f}" for f in sft_config_fields()]
    keys += [f"peft.lora.{f}" for f in lora_config_fields()]
    return keys + ["name", "description"]


_EXPONENT_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def _numbers(value: Any) -> Any:
    """YAML 1.1 reads '2e-4' as a string; treat exponent notation as the float it means."""
    if isinstance(value, str) and _EXPONENT_FLOAT.match(value.strip()):
        return float(value)
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _numbers(v) for k, v in value.items()}
    return value


def apply_override(recipe: Recipe, key: str, value: Any, where: str = "override") -> None:
    """Set one dotted key on the recipe in place, validating the key and the value's type."""
    section, _, rest = key.partition(".")
    if key in ("name", "description"):
        setattr(recipe, key, str(value))
        return
    if section not in SECTIONS:
        raise unknown_key_error("recipe key", key, all_valid_keys())
    if not rest:
        raise ParityError(f"override '{key}' names a section, not a key (e.g. '{section}.<field>')")
    if section == "upstream":
        raise ParityError(f"'{key}': the upstream section is read-only (it records what upstream wrote)")
    if section == "training":
        _set_mapping(recipe.training, rest, _numbers(value), sft_config_fields(), "training key", "training.")
    elif section == "env":
        recipe.env[rest] = str(value)
    elif section == "peft" and rest.startswith("lora."):
        _set_mapping(
            recipe.peft.lora, rest[5:], _numbers(value), lora_config_fields(), "LoRA key", "peft.lora."
        )
    else:
        target = getattr(recipe, section)
        names = section_fields(section)
        if rest not in names:
            raise unknown_key_error(f"{section} key", key, [f"{section}.{n}" for n in names])
        setattr(target, rest, _coerce(target, rest, value, key))
    recipe.provenance[key] = where
    if section == "eval":  # a given eval key replaces a capture's "not captured" protocol
        recipe.provenance.pop("eval", None)
    if key == "template.chat_template" and recipe.provenance.get("template.source") != where:
        # the template now comes from this override, not from the upstream file the base recipe named
        recipe.template.source = where
        recipe.provenance["template.source"] = where


def _set_mapping(
    mapping: dict[str, Any], name: str, value: Any, valid: frozenset[str], kind: str, prefix: str
) -> None:
    if name in RENAMED_TRAINING_KEYS and prefix == "training.":
        new = RENAMED_TRAINING_KEYS[name]
        raise ParityError(
            f"'training.{name}' is called 'training.{new}' in the installed libraries; set that instead"
        )
    if name not in valid:
        raise unknown_key_error(kind, prefix + name, [prefix + v for v in valid])
    if value == RESET:
        mapping.pop(name, None)
    else:
        mapping[name] = value


def _coerce(target: Any, name: str, value: Any, key: str) -> Any:
    """Check a value against the dataclass field's annotation; ints are accepted for floats."""
    hints = typing.get_type_hints(type(target))
    annotation = hints[name]
    if name == "preprocess":
        return _preprocess_steps(value, key)
    allowed = _allowed_types(annotation)
    if float in allowed:
        value = _numbers(value)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return float(value) if int not in allowed else value
    if not any(_isinstance(value, t) for t in allowed):
        names = " or ".join(
            sorted("null" if t is type(None) else getattr(t, "__name__", str(t)) for t in allowed)
        )
        raise ParityError(f"'{key}' expects {names}, got {value!r}")
    return value


def _allowed_types(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return {t for a in typing.get_args(annotation) for t in _allowed_types(a)}
    return {origin or annotation}


def _isinstance(value: Any, expected: Any) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected in (int, float) and isinstance(value, bool):
        return False
    return isinstance(value, expected) if isinstance(expected, type) else True


def _preprocess_steps(value: Any, key: str) -> list[PreprocessStep]:
    if not isinstance(value, list):
        raise ParityError(
            f"'{key}' expects a list of steps like {{op: replace, pattern: '####', replacement: 'A:'}}"
        )
    steps = []
    valid = [f.name for f in dataclasses.fields(PreprocessStep)]
    for item in value:
        if isinstance(item, PreprocessStep):
            steps.append(item)
            continue
        if not isinstance(item, dict) or "op" not in item:
            raise ParityError(f"'{key}': each step needs an 'op' (regex_sub or replace), got {item!r}")
        for step_key in item:
            if step_key not in valid:
                raise unknown_key_error(f"{key} step key", step_key, valid)
        if item["op"] not in ("regex_sub", "replace"):
            raise ParityError(f"'{key}': unknown op '{item['op']}' (regex_sub or replace)")
        steps.append(PreprocessStep(**{k: str(v) for k, v in item.items()}))
    return steps
