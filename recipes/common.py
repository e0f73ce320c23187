"""Small helpers shared by the built-in adapters: SFTConfig field mapping and provenance."""

from __future__ import annotations

from typing import Any

from parity.overrides import RENAMED_TRAINING_KEYS, sft_config_fields
from parity.spec import SECTIONS, Recipe
from parity.vendor import FactSheet

FACT_ALIASES = {
    "prompt.user_message": "prompt.user_template",
    "data.train_hub_path": "data.hub_path",
    "data.eval_hub_split": "data.hub_eval_split",
    "data.strip_pattern": "data.preprocess",
    "data.final_marker_old": "data.preprocess",
    "data.final_marker_new": "data.preprocess",
    "data.eval_test_size": "data.eval_fraction",
    "tokenizer.pad_token_policy": "tokenizer.pad_token",
    "model.peft": "peft.method",
    "eval.extract_regex": "eval.flexible_regex",
    "launch.batch_size": "launch.global_batch",
    "launch.per_device_train_batch_size": "training.per_device_train_batch_size",
    "launch.per_device_eval_batch_size": "training.per_device_eval_batch_size",
}
LORA_FACTS = {
    "lora_rank": "r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "lora_target": "target_modules",
}


def training_args(raw: dict[str, Any], skip: dict[str, str], only_sft_fields: bool = False) -> dict[str, Any]:
    """Upstream arguments that are trl.SFTConfig fields, renamed where the library renamed them."""
    fields = sft_config_fields()
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = RENAMED_TRAINING_KEYS.get(key, key)
        if key in skip and key not in RENAMED_TRAINING_KEYS:
            continue
        if name in fields:
            out[name] = value
        elif not only_sft_fields:
            raise KeyError(f"adapter maps '{key}' to training, but it is not a trl.SFTConfig field")
    return out


def provenance_of(recipe: Recipe, facts: FactSheet) -> dict[str, str]:
    """Dotted recipe key -> 'upstream:<file>' for every value that comes from a pinned fact."""
    provenance: dict[str, str] = {}
    for name, fact in facts.facts.items():
        origin = f"upstream:{fact.file}"
        prefix, _, rest = name.partition(".")
        if prefix in ("args", "defaults"):
            key = RENAMED_TRAINING_KEYS.get(rest, rest)
            if key in recipe.training:
                provenance[f"training.{key}"] = origin
            elif rest == "model_name_or_path":
                provenance["model.name_or_path"] = origin
            elif rest in LORA_FACTS and recipe.peft.method == "lora":
                provenance[f"peft.lora.{LORA_FACTS[rest]}"] = origin
        elif name == "experiment_config":
            for key in fact.value:
                if key in recipe.training:
                    provenance[f"training.{key}"] = origin
            provenance["peft.method"] = origin
            provenance["model.name_or_path"] = origin
        elif name == "launch.command":
            # the launch command decides the process count (accelerate: one per visible GPU)
            provenance["launch.launcher"] = provenance["launch.num_processes"] = origin
        elif name in FACT_ALIASES:
            provenance[FACT_ALIASES[name]] = origin
        elif prefix in SECTIONS and prefix not in ("training", "upstream"):
            provenance[name] = origin
    return provenance
