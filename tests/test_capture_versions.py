"""A capture ran its own library versions: its training arguments' defaults there, not the installed SFTConfig's,
and "not applicable" for the fields its class lacks (`parity.capture.recipe.environment_section`)."""

from __future__ import annotations

from types import SimpleNamespace

from parity.capture.frameworks.settings import sft_config_defaults
from parity.capture.recipe import environment_section
from parity.probes.env import running_version


def _captured(fields: dict, versions: dict) -> SimpleNamespace:
    training_args = SimpleNamespace(fields=fields, class_name="transformers.training_args.TrainingArguments")
    return SimpleNamespace(training_args=training_args, manifest={"versions": versions})


def _fields_of_an_old_trainer() -> dict:
    """Every installed SFTConfig field at its default, as a transformers 4.46 Trainer would hold them: no TRL fields
    (completion_only_loss, ...), transformers 4's defaults for four of them, and spellings that say the same."""
    fields = {name: value for name, value in sft_config_defaults().items() if name != "completion_only_loss"}
    fields |= {
        "gradient_checkpointing": False,
        "bf16": False,
        "optim": "adamw_torch",
        "average_tokens_across_devices": False,
        "include_num_input_tokens_seen": False,  # 'no' here: the same switch
        "fsdp": [],  # None or [] here: the same
        "local_rank": 0,  # the machine, not a default
    }
    return fields


def test_an_old_trainers_defaults_are_taken_and_missing_fields_are_not_applicable():
    captured = _captured(_fields_of_an_old_trainer(), {"transformers": "4.46.3"})
    taken, provenance = environment_section(captured, training={"learning_rate": 1e-4})
    assert taken == {
        "gradient_checkpointing": False,
        "bf16": False,
        "optim": "adamw_torch",
        "average_tokens_across_devices": False,
    }
    assert provenance["training.bf16"] == (
        "capture (the default under transformers 4.46.3; the installed SFTConfig's is True)"
    )
    assert provenance["training.completion_only_loss"] == (
        "not applicable: the captured TrainingArguments (transformers 4.46.3) has no such field"
    )
    assert "training.learning_rate" not in provenance  # the recipe set it: its own value stands


def test_a_capture_under_the_installed_versions_takes_nothing():
    versions = {"transformers": running_version("transformers"), "trl": running_version("trl")}
    assert environment_section(_captured(_fields_of_an_old_trainer(), versions), training={}) == ({}, {})
