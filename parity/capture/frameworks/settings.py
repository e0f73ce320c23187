"""A captured framework's settings as SFTConfig fields: values its own argument class holds where they differ
from SFTConfig's defaults, parity's effective values mapped from the framework's settings (`cutoff_len`,
`sequence_len`, `train_on_prompt`, ...), and every other SFTConfig field marked not applicable."""

from __future__ import annotations

from functools import cache
from typing import Any

from parity.spec import NOT_APPLICABLE

EFFECTIVE_TO_TRAINING = {
    "max_length": "max_length",
    "completion_only": "completion_only_loss",
    "assistant_only": "assistant_only_loss",
    "packing": "packing",
    "gradient_checkpointing": "gradient_checkpointing",
    "seed": "seed",
}
"""parity's effective values (framework.json `effective`) -> the SFTConfig field that means the same."""
DATA_DERIVED = frozenset({"max_steps"})
"""Training fields a framework computes from the rows it was served (Axolotl's total_num_steps): kept only when
the recipe's own configuration sets them; parity counts steps from the data."""


@cache
def sft_config_defaults() -> dict[str, Any]:
    """Every trl.SFTConfig field at its default in this environment, as plain values (built as parity builds
    every SFTConfig here: `use_cpu`, so bf16 defaults parse without a GPU)."""
    from trl import SFTConfig

    return _defaults(SFTConfig)


@cache
def trl_overrides() -> frozenset[str]:
    """SFTConfig fields whose default is TRL's own (absent from transformers.TrainingArguments or different
    there): a captured class that keeps transformers' default differs from SFTConfig on exactly these."""
    from transformers import TrainingArguments

    base = _defaults(TrainingArguments)
    return frozenset(
        name for name, value in sft_config_defaults().items() if base.get(name, object()) != value
    )


def _defaults(cls: type) -> dict[str, Any]:
    import warnings

    from parity.plain import config_values

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return config_values(cls(output_dir="parity-defaults", use_cpu=True))


def is_trl_arguments(class_name: str) -> bool:
    return class_name.startswith("trl.")


def _given(record: dict[str, Any]) -> set[str]:
    return {str(key) for config in record.get("config_files", {}).values() for key in (config or {})}


def framework_training(
    framework: dict[str, Any],
    class_name: str,
    fields: dict[str, Any],
    non_default: set[str],
    skip: frozenset[str],
) -> tuple[dict[str, Any], dict[str, str], dict[str, str]]:
    """({SFTConfig field: value}, {field: provenance beyond plain "capture"}, {left-out field: why}) for a
    captured non-TRL trainer.

    A field its own class shares with SFTConfig comes from the capture where it differs from SFTConfig's default
    and either the recipe's class changed it (`non_default`) or the default there is TRL's own (`trl_overrides`:
    learning_rate, logging_steps, gradient_checkpointing, ...); a difference only between library versions'
    spellings of a default (`fsdp` [] vs None) is not taken. The effective values the framework's adapter mapped
    come next; every other SFTConfig field is not applicable."""
    defaults = sft_config_defaults()
    overridden = trl_overrides()
    name = framework.get("framework", "the framework")
    short = class_name.rsplit(".", 1)[-1]
    training: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    left_out: dict[str, str] = {}
    given = _given(framework)
    for field, value in sorted(fields.items()):
        if field in skip or field not in defaults:
            continue
        if field in DATA_DERIVED and field not in given and value != defaults[field]:
            left_out[field] = (
                f"{value!r} computed by {name} from the rows the capture served (not set by the recipe); "
                "parity counts steps from the data"
            )
            continue
        if value is None and isinstance(defaults[field], bool):
            provenance[f"training.{field}"] = (
                f"{NOT_APPLICABLE}: {short} holds None, which SFTConfig's true/false field does not take"
            )
            continue
        if value != defaults[field] and field in non_default:
            training[field] = value
        elif value != defaults[field] and field in overridden:
            training[field] = value
            provenance[f"training.{field}"] = f"capture ({short}'s default; SFTConfig's differs)"
    for key, entry in sorted(framework.get("effective", {}).items()):
        field = EFFECTIVE_TO_TRAINING.get(key)
        if field is None or field not in defaults or field in skip:
            continue
        training[field] = entry.get("value")
        provenance[f"training.{field}"] = f"capture: {name} {entry.get('from')} ({entry.get('provenance')})"
    for field in defaults:
        key = f"training.{field}"
        if field not in training and field not in fields and field not in skip and key not in provenance:
            provenance[key] = f"{NOT_APPLICABLE}: {short} has no such field and {name} maps none to it"
    return training, provenance, left_out
