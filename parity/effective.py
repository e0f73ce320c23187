"""The effective recipe: every resolved value, marked with where it came from."""

from __future__ import annotations

import dataclasses
from typing import Any

from parity.plain import config_values, plain
from parity.plan import Resolved
from parity.spec import NOT_APPLICABLE, Recipe

CONTEXT_FIELDS = {"output_dir", "use_cpu", "logging_dir", "disable_tqdm"}
"""SFTConfig fields set by where materialization runs, not by the recipe."""


def _source(recipe: Recipe, key: str, default_label: str) -> str:
    if key in recipe.provenance:
        return recipe.provenance[key]
    return default_label


def effective_values(resolved: Resolved) -> dict[str, dict[str, Any]]:
    """Dotted key -> {value, source}; source is 'upstream:<file>', 'recipe', a 'yaml:'/'cli' override,
    'launch rule', 'context' or 'default:<library object>'."""
    recipe = resolved.recipe
    out: dict[str, dict[str, Any]] = {}
    blank = Recipe(name="_")
    for section in ("model", "tokenizer", "template", "data", "prompt", "launch", "eval"):
        spec_default = getattr(blank, section)
        for f in dataclasses.fields(getattr(recipe, section)):
            key = f"{section}.{f.name}"
            value = getattr(getattr(recipe, section), f.name)
            is_default = value == getattr(spec_default, f.name)
            out[key] = {
                "value": plain(value),
                "source": _source(recipe, key, "spec default" if is_default else "recipe"),
            }
    for key, value in sorted(recipe.env.items()):
        out[f"env.{key}"] = {"value": value, "source": _source(recipe, f"env.{key}", "recipe")}
    out["peft.method"] = {"value": recipe.peft.method, "source": _source(recipe, "peft.method", "recipe")}
    if resolved.lora_config is not None:
        for name, value in config_values(resolved.lora_config).items():
            key = f"peft.lora.{name}"
            default = "recipe" if name in recipe.peft.lora else "default:peft.LoraConfig"
            out[key] = {"value": value, "source": _source(recipe, key, default)}
    for name, value in config_values(resolved.sft_config).items():
        key = f"training.{name}"
        if name in CONTEXT_FIELDS:
            label = "context"
        elif name == "gradient_accumulation_steps" and recipe.launch.global_batch is not None:
            label = "launch rule"
        elif name in recipe.training:
            label = "recipe"
        else:
            label = "default:trl.SFTConfig"
        if recipe.provenance.get(key, "").startswith(NOT_APPLICABLE):
            value, label = None, recipe.provenance[key]
        out[key] = {"value": value, "source": _source(recipe, key, label) if label == "recipe" else label}
    plan = dataclasses.asdict(resolved.launch)
    for name, value in plan.items():
        out[f"effective.{name}"] = {"value": plain(value), "source": "launch rule"}
    return out
