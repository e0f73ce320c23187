"""Which alignment axis each trl.SFTConfig field belongs to, and how severe a difference in it is.

Shared by the probes (which field a probe reports) and by alignment (which keys `--align AXIS` copies).
"""

from __future__ import annotations

ALIGN_AXES = (
    "batch",
    "template",
    "prompt",
    "data",
    "loss_mask",
    "schedule",
    "optim",
    "peft",
    "precision",
    "seed",
    "eval",
    "tokens",
    "runtime",
)
"""Names `parity run --align` accepts (plus 'all')."""

FIELD_AXIS: dict[str, str] = {
    **dict.fromkeys(
        ["per_device_train_batch_size", "gradient_accumulation_steps", "auto_find_batch_size"], "batch"
    ),
    **dict.fromkeys(
        [
            "learning_rate",
            "lr_scheduler_type",
            "lr_scheduler_kwargs",
            "warmup_steps",
            "num_train_epochs",
            "max_steps",
        ],
        "schedule",
    ),
    **dict.fromkeys(
        [
            "optim",
            "optim_args",
            "optim_target_modules",
            "weight_decay",
            "adam_beta1",
            "adam_beta2",
            "adam_epsilon",
            "max_grad_norm",
            "label_smoothing_factor",
        ],
        "optim",
    ),
    **dict.fromkeys(["completion_only_loss", "assistant_only_loss", "loss_type"], "loss_mask"),
    **dict.fromkeys(
        [
            "max_length",
            "truncation_mode",
            "packing",
            "packing_strategy",
            "padding_free",
            "pad_to_multiple_of",
            "eos_token",
            "pad_token",
            "dataset_text_field",
            "shuffle_dataset",
            "eval_packing",
        ],
        "tokens",
    ),
    **dict.fromkeys(
        [
            "bf16",
            "fp16",
            "tf32",
            "gradient_checkpointing",
            "bf16_full_eval",
            "fp16_full_eval",
            "torch_compile",
        ],
        "precision",
    ),
    **dict.fromkeys(["seed", "data_seed", "full_determinism"], "seed"),
    **dict.fromkeys(
        [
            "eval_strategy",
            "eval_steps",
            "per_device_eval_batch_size",
            "save_strategy",
            "save_steps",
            "save_total_limit",
            "load_best_model_at_end",
            "metric_for_best_model",
            "greater_is_better",
            "eval_on_start",
            "eval_accumulation_steps",
        ],
        "eval",
    ),
}
"""SFTConfig fields that change training; every other field is run management (axis 'runtime')."""

AXIS_PROBE = {"batch": "batch", "schedule": "schedule", "loss_mask": "loss_mask", "precision": "precision"}
"""Align axes whose SFTConfig fields are reported by a dedicated probe; the rest by the config probe."""

FIELD_PROBE = {"max_length": "tokens"}
"""Single fields reported by a probe other than their axis's (tokens measures what max_length truncates)."""

AXIS_SEVERITY = {
    "batch": "high",
    "loss_mask": "high",
    "schedule": "medium",
    "optim": "medium",
    "tokens": "medium",
    "precision": "medium",
    "eval": "medium",
    "seed": "low",
    "runtime": "low",
}
FIELD_SEVERITY = {"learning_rate": "high", "num_train_epochs": "high", "max_steps": "high"}


def field_axis(name: str) -> str:
    """Align axis of an SFTConfig field ('runtime' for run management such as logging or hub pushes)."""
    return FIELD_AXIS.get(name, "runtime")


def field_probe(name: str) -> str:
    """The probe that reports a difference in this SFTConfig field."""
    return FIELD_PROBE.get(name) or AXIS_PROBE.get(field_axis(name), "config")


def field_severity(name: str) -> str:
    return FIELD_SEVERITY.get(name, AXIS_SEVERITY[field_axis(name)])
