"""Validate a resolved recipe's value types and ranges once, before anything is built from it.

Field types come from the spec dataclasses and from the installed `trl.SFTConfig` / `peft.LoraConfig`
annotations; ranges are the few rules those types cannot say. A bad value is one ParityError line.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any

from parity.data.pipeline import TRL_FORMATS, placeholders
from parity.errors import ParityError
from parity.render import TemplateError, check_template
from parity.spec import PreprocessStep, Recipe

MAX_BATCH = 65_536
"""Largest per-device batch, accumulation or global batch accepted (far above any real GPU launch)."""
MAX_SEED = 2**32 - 1
"""Largest seed numpy's legacy seeding (used by transformers' set_seed) accepts."""
MAX_LENGTH = 10_000_000
MAX_EPOCHS = 100_000

Rule = tuple[Callable[[Any], bool], str]


def _int_between(low: int, high: int) -> Rule:
    return (lambda v: _is_int(v) and low <= v <= high, f"an integer from {low} to {high:,}")


def _positive_number(high: float = math.inf) -> Rule:
    bound = "" if high == math.inf else f" up to {high:,}"
    return (
        lambda v: _is_number(v) and 0 < v <= high and math.isfinite(v),
        f"a positive finite number{bound}",
    )


def _non_negative_number() -> Rule:
    return (lambda v: _is_number(v) and v >= 0 and math.isfinite(v), "a finite number >= 0")


def _optional(rule: Rule) -> Rule:
    check, text = rule
    return (lambda v: v is None or check(v), f"{text} or null")


def _fraction_open() -> Rule:
    return (lambda v: _is_number(v) and 0 < v < 1, "a number strictly between 0 and 1")


def _probability() -> Rule:
    return (lambda v: _is_number(v) and 0 <= v < 1, "a number from 0 to below 1")


def _one_of(*choices: Any) -> Rule:
    return (lambda v: v in choices, "one of " + ", ".join(repr(c) for c in choices))


def _non_empty_text() -> Rule:
    return (lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string")


BATCH = _int_between(1, MAX_BATCH)
TRAINING_RANGES: dict[str, Rule] = {
    "per_device_train_batch_size": BATCH,
    "per_device_eval_batch_size": BATCH,
    "gradient_accumulation_steps": BATCH,
    "learning_rate": _positive_number(),
    "num_train_epochs": _positive_number(MAX_EPOCHS),
    "max_steps": (
        lambda v: _is_int(v) and (v == -1 or 1 <= v <= 10**9),
        "-1 (use num_train_epochs) or a positive integer",
    ),
    "seed": _int_between(0, MAX_SEED),
    "data_seed": _optional(_int_between(0, MAX_SEED)),
    "warmup_steps": _non_negative_number(),
    "weight_decay": _non_negative_number(),
    "max_grad_norm": _non_negative_number(),
    "adam_beta1": _probability(),
    "adam_beta2": _probability(),
    "adam_epsilon": _positive_number(),
    "max_length": _optional(_int_between(1, MAX_LENGTH)),
    "logging_steps": _positive_number(),
    "save_steps": _positive_number(),
    "eval_steps": _optional(_positive_number()),
    "save_total_limit": _optional(_int_between(1, 10**6)),
    "dataloader_num_workers": _int_between(0, 1024),
    "gradient_checkpointing": (lambda v: isinstance(v, bool), "true or false"),
}
"""Ranges beyond the SFTConfig field's type, for the fields that decide what and how long is trained."""

LORA_RANGES: dict[str, Rule] = {
    "r": _int_between(1, MAX_BATCH),
    "lora_alpha": _int_between(1, 10**6),
    "lora_dropout": _probability(),
}

SPEC_RANGES: dict[str, Rule] = {
    "model.name_or_path": _non_empty_text(),
    "tokenizer.pad_token": _non_empty_text(),
    "data.hub_path": _optional(_non_empty_text()),
    "data.eval_from": _one_of("test", "train_holdout"),
    "data.eval_fraction": _fraction_open(),
    "data.split_seed": _int_between(0, MAX_SEED),
    "launch.num_processes": (
        lambda v: v == "world" or (_is_int(v) and 1 <= v <= 4096),
        "'world' or an integer from 1 to 4,096",
    ),
    "launch.global_batch": _optional(BATCH),
    "launch.deepspeed_stage": _optional(_one_of(0, 1, 2, 3)),
    "launch.deepspeed_min_gpus": _int_between(1, 4096),
    "launch.early_stopping_patience": _optional(_int_between(1, 10**6)),
    "launch.early_stopping_threshold": _optional(_non_negative_number()),
    "eval.num_fewshot": _int_between(0, 1000),
    "peft.method": _one_of("none", "full", "lora"),
}

SPEC_SECTIONS = ("model", "tokenizer", "template", "data", "prompt", "peft", "launch", "eval")


def validate_recipe(recipe: Recipe) -> Recipe:
    """Check every value of the recipe against its type and range; raise ParityError naming the first bad one.

    Returns the recipe unchanged, so callers can write `recipe = validate_recipe(resolve_recipe(...))`."""
    if recipe.model.name_or_path is None:
        raise ParityError(f"recipe '{recipe.name}' names no model: set model.name_or_path")
    for key, value, annotation in _spec_values(recipe):
        _check(recipe, key, value, annotation)
    for key, rule in SPEC_RANGES.items():
        section, _, name = key.partition(".")
        _check_rule(recipe, key, getattr(getattr(recipe, section), name), rule)
    _check_mapping(recipe, "training", recipe.training, sft_config_types(), TRAINING_RANGES)
    _check_mapping(recipe, "peft.lora", recipe.peft.lora, lora_config_types(), LORA_RANGES)
    for name, value in recipe.env.items():
        _expect(recipe, f"env.{name}", value, isinstance(value, str), "a version specifier string")
    _check_template(recipe)
    _check_user_template(recipe)
    _check_literal_text(recipe, "prompt.instruction", recipe.prompt.instruction)
    _expect(recipe, "eval.prompt", recipe.eval.prompt, isinstance(recipe.eval.prompt, str), "a string")
    _check_data_names(recipe)
    _check_regexes(recipe)
    _check_preprocess(recipe)
    return recipe


def problem(recipe: Recipe, key: str, value: Any, expected: str) -> ParityError:
    """The one-line error for a bad value: recipe, dotted key, the value as written, what is expected."""
    shown = YAML_WORDS[value] if _is_singleton(value) else repr(value)
    if len(shown) > 80:
        shown = shown[:60] + f"... ({len(shown)} characters)"
    return ParityError(f"recipe '{recipe.name}': {key} = {shown}: expected {expected}")


YAML_WORDS = {None: "null", True: "true", False: "false"}


def _is_singleton(value: Any) -> bool:
    return value is None or isinstance(value, bool)


def _expect(recipe: Recipe, key: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        raise problem(recipe, key, value, expected)


def _check_rule(recipe: Recipe, key: str, value: Any, rule: Rule) -> None:
    check, expected = rule
    _expect(recipe, key, value, _safe(check, value), expected)


def _safe(check: Callable[[Any], bool], value: Any) -> bool:
    try:
        return bool(check(value))
    except (TypeError, ValueError):
        return False


@cache
def sft_config_types() -> dict[str, Any]:
    """Field name -> type annotation of the installed trl.SFTConfig."""
    from trl import SFTConfig

    return _dataclass_types(SFTConfig)


@cache
def lora_config_types() -> dict[str, Any]:
    """Field name -> type annotation of the installed peft.LoraConfig."""
    from peft import LoraConfig

    return _dataclass_types(LoraConfig)


def _dataclass_types(cls: type) -> dict[str, Any]:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation the running Python cannot evaluate: fall back to the raw strings
        hints = {}
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}


def _spec_values(recipe: Recipe) -> list[tuple[str, Any, Any]]:
    out = []
    for section in SPEC_SECTIONS:
        target = getattr(recipe, section)
        hints = typing.get_type_hints(type(target))
        for f in dataclasses.fields(target):
            if f.name in ("lora", "preprocess"):
                continue
            out.append((f"{section}.{f.name}", getattr(target, f.name), hints[f.name]))
    return out


def _check_mapping(
    recipe: Recipe, prefix: str, values: dict[str, Any], types_: dict[str, Any], ranges: dict[str, Rule]
) -> None:
    if not isinstance(values, dict):
        raise problem(recipe, prefix, values, "a mapping of field names to values")
    for name, value in values.items():
        key = f"{prefix}.{name}"
        if name not in types_:
            continue  # unknown keys are rejected with a suggestion when they are set (overrides.py)
        if name in ranges:
            _check_rule(recipe, key, value, ranges[name])
        elif prefix != "peft.lora" or not _lora_accepts(name, value):
            _check(recipe, key, value, types_[name])


def _lora_accepts(name: str, value: Any) -> bool:
    """None for a LoraConfig field that peft.LoraConfig itself accepts as None (Axolotl passes
    fan_in_fan_out=None): the value peft accepts is accepted."""
    if value is not None:
        return False
    from peft import LoraConfig

    try:
        LoraConfig(**{name: value})
    except Exception:  # peft refuses it: the annotation's check names what is expected
        return False
    return True


def _check(recipe: Recipe, key: str, value: Any, annotation: Any) -> None:
    accepted, expected = _matches(value, annotation)
    _expect(recipe, key, value, accepted, expected)


def _matches(value: Any, annotation: Any) -> tuple[bool, str]:
    """(does value fit the annotation, a readable name of the annotation)."""
    options = _flatten(annotation)
    enums = [t for t in options if isinstance(t, type) and issubclass(t, enum.Enum)]
    if enums and isinstance(value, str):
        allowed = sorted({m.value for e in enums for m in e if isinstance(m.value, str)})
        return value in allowed, "one of " + ", ".join(allowed)
    names = []
    for option in options:
        if _fits(value, option):
            return True, ""
        names.append(_type_name(option))
    # typing caches unions regardless of order, so the annotation's order is not stable: sort, null last
    return False, " or ".join(sorted(set(names), key=lambda name: (name == "null", name)))


def _flatten(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(annotation) for t in _flatten(arg)]
    return [annotation]


def _fits(value: Any, option: Any) -> bool:
    origin = typing.get_origin(option)
    if option is Any or option is typing.Any:
        return True
    if option is type(None) or option is None:
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(option)
    if option is bool:
        return isinstance(value, bool)
    if option is int:
        return _is_int(value)
    if option is float:
        return _is_number(value) and not math.isnan(value)
    if option is str:
        return isinstance(value, str)
    if origin in (list, tuple, set, frozenset):
        return isinstance(value, list | tuple)
    if origin is dict or option is dict:
        return isinstance(value, dict)
    if option in (list, tuple):
        return isinstance(value, list | tuple)
    if isinstance(option, type):
        if issubclass(option, enum.Enum):
            return isinstance(value, option)
        return isinstance(value, option | dict)
    return True


def _type_name(option: Any) -> str:
    origin = typing.get_origin(option)
    if option is type(None) or option is None:
        return "null"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(option))
    if origin in (list, tuple):
        return "a list"
    if origin is dict or option is dict:
        return "a mapping"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        option, getattr(option, "__name__", str(option))
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_template(recipe: Recipe) -> None:
    template = recipe.template.chat_template
    if template is None:
        return
    try:
        check_template(template)
    except TemplateError as err:
        raise ParityError(f"recipe '{recipe.name}': template.chat_template: {err}") from None


def _check_user_template(recipe: Recipe) -> None:
    """A user template is None (the row's own user turn) or text with at least one `{column}` placeholder (else
    every row's content would be dropped); which columns exist is checked against the rows when they are read."""
    text = recipe.prompt.user_template
    if text is None:
        return
    _expect(recipe, "prompt.user_template", text, isinstance(text, str), "a string or null")
    if not placeholders(text):
        raise problem(
            recipe,
            "prompt.user_template",
            text,
            "a template with at least one {column} placeholder (else every row's content is dropped)",
        )


def _check_literal_text(recipe: Recipe, key: str, text: Any) -> None:
    """Text inserted literally (the instruction): a `{name}` in it would stay in the prompt as written."""
    _expect(recipe, key, text, isinstance(text, str), "a string")
    found = placeholders(text)
    if found:
        names = ", ".join("{" + n + "}" for n in found)
        raise problem(recipe, key, text, f"literal text without placeholders ({names} would stay literal)")


def _check_data_names(recipe: Recipe) -> None:
    """Registered names: the row format, the TRL format and the task; the column map is text to text."""
    from parity.data.formats import ROW_FORMATS
    from parity.tasks import load_tasks

    spec = recipe.data
    for key, value, names in (
        ("data.format", spec.format, ROW_FORMATS.names()),
        ("data.trl_format", spec.trl_format, list(TRL_FORMATS)),
        ("data.task", spec.task, sorted(load_tasks().names())),
    ):
        if value is not None and value not in names:
            raise problem(recipe, key, value, "one of " + ", ".join(names) + " or null")
    columns = spec.columns
    ok = isinstance(columns, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in columns.items()
    )
    _expect(recipe, "data.columns", columns, ok, "a mapping of format column names to dataset column names")


def _check_regexes(recipe: Recipe) -> None:
    spec = recipe.eval
    patterns = [("eval.strict_regex", spec.strict_regex), ("eval.flexible_regex", spec.flexible_regex)]
    patterns.append(("eval.gold_regex", spec.gold_regex))  # None: the task's gold rule
    _expect(
        recipe, "eval.ignore_patterns", spec.ignore_patterns, isinstance(spec.ignore_patterns, list), "a list"
    )
    patterns += [(f"eval.ignore_patterns[{i}]", p) for i, p in enumerate(spec.ignore_patterns)]
    for key, pattern in patterns:
        if pattern is not None:
            _compile(recipe, key, pattern)


def _compile(recipe: Recipe, key: str, pattern: Any) -> None:
    _expect(recipe, key, pattern, isinstance(pattern, str), "a regular expression string")
    try:
        re.compile(pattern)
    except re.error as err:
        raise problem(recipe, key, pattern, f"a valid regular expression ({err})") from None


def _check_preprocess(recipe: Recipe) -> None:
    steps = recipe.data.preprocess
    _expect(recipe, "data.preprocess", steps, isinstance(steps, list), "a list of steps")
    for i, step in enumerate(steps):
        key = f"data.preprocess[{i}]"
        _expect(recipe, key, step, isinstance(step, PreprocessStep), "a step with op, pattern, replacement")
        _check_rule(recipe, f"{key}.op", step.op, _one_of("regex_sub", "replace"))
        _check_rule(recipe, f"{key}.field", step.field, _non_empty_text())
        if step.op == "regex_sub":
            _compile(recipe, f"{key}.pattern", step.pattern)
