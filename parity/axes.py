"""The axis table: every axis parity measures or aligns, in one record each; every other axis list derives from it.

Two name sets share the table: probe axes (each has a probe; findings carry one) and align axes (`parity run
--align`; each names the recipe keys and trl.SFTConfig fields it copies). Most axes are both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from parity.errors import ParityError, unknown_key_error
from parity.spec import section_fields


@dataclass(frozen=True)
class Axis:
    """One axis: its probe, what aligning it copies, how severe a difference in its fields is, what the lock records."""

    name: str
    probe: str | None = None
    """The probe measuring this axis (its name), or None when no probe does."""
    report_rank: int | None = None
    """Position among probe axes in reports (findings sort by it)."""
    alignable: bool = True
    """Accepted by `parity run --align`."""
    fields: tuple[str, ...] = ()
    """trl.SFTConfig fields this axis aligns (fields of no axis belong to 'runtime')."""
    field_probe: str = "config"
    """The probe that reports a difference in one of `fields`."""
    probe_overrides: tuple[tuple[str, str], ...] = ()
    """(field, probe) for single fields reported by another probe than `field_probe`."""
    severity: str | None = None
    """Default severity of a difference in one of `fields`."""
    severity_overrides: tuple[tuple[str, str], ...] = ()
    spec_keys: tuple[str, ...] = ()
    """Recipe keys outside `training` that aligning this axis copies."""
    descriptive_keys: tuple[str, ...] = ()
    """Those of `spec_keys` that describe the recipe without changing its training."""
    lock_keys: tuple[str, ...] = ()
    """Recipe keys outside `training` the lock records for this axis (its training fields are recorded too)."""


AXIS_TABLE: tuple[Axis, ...] = (
    Axis(
        "batch",
        probe="batch",
        report_rank=1,
        fields=("per_device_train_batch_size", "gradient_accumulation_steps", "auto_find_batch_size"),
        field_probe="batch",
        severity="high",
        spec_keys=("launch.num_processes", "launch.global_batch"),
    ),
    Axis(
        "template",
        probe="template",
        report_rank=4,
        spec_keys=("template.chat_template", "template.force", "template.source", "tokenizer.pad_token"),
        descriptive_keys=("template.source",),
        lock_keys=("template.chat_template", "template.force", "tokenizer.pad_token"),
    ),
    # Dropped content comes from the chat template: 'template' aligns its findings.
    Axis("content", probe="content", report_rank=4, alignable=False),
    Axis(
        "prompt",
        probe="prompt",
        report_rank=3,
        spec_keys=("prompt.user_template", "prompt.instruction", "prompt.system"),
        lock_keys=("prompt.user_template", "prompt.instruction"),
    ),
    Axis(
        "data",
        probe="data",
        report_rank=2,
        spec_keys=tuple(f"data.{name}" for name in section_fields("data")),
        lock_keys=("data.preprocess", "data.split_rule"),
    ),
    Axis(
        "loss_mask",
        probe="loss_mask",
        report_rank=6,
        fields=("completion_only_loss", "assistant_only_loss", "loss_type"),
        field_probe="loss_mask",
        severity="high",
    ),
    Axis(
        "schedule",
        probe="schedule",
        report_rank=7,
        fields=(
            "learning_rate",
            "lr_scheduler_type",
            "lr_scheduler_kwargs",
            "warmup_steps",
            "num_train_epochs",
            "max_steps",
        ),
        field_probe="schedule",
        severity="medium",
        severity_overrides=(("learning_rate", "high"), ("num_train_epochs", "high"), ("max_steps", "high")),
        spec_keys=("launch.early_stopping_patience", "launch.early_stopping_threshold"),
    ),
    Axis(
        "optim",
        probe="optim",
        report_rank=20,
        fields=(
            "optim",
            "optim_args",
            "optim_target_modules",
            "weight_decay",
            "adam_beta1",
            "adam_beta2",
            "adam_epsilon",
            "max_grad_norm",
            "label_smoothing_factor",
            "neftune_noise_alpha",
        ),
        field_probe="optim",
        severity="medium",
    ),
    Axis(
        "peft",
        probe="peft",
        report_rank=8,
        spec_keys=("peft.method", "peft.lora"),
        lock_keys=(
            "peft.method",
            *(
                f"peft.lora.{name}"
                for name in (
                    "bias",
                    "lora_alpha",
                    "lora_dropout",
                    "r",
                    "target_modules",
                    "task_type",
                    "use_dora",
                    "use_rslora",
                )
            ),
        ),
    ),
    Axis(
        "precision",
        probe="precision",
        report_rank=9,
        fields=(
            "bf16",
            "fp16",
            "tf32",
            "gradient_checkpointing",
            "bf16_full_eval",
            "fp16_full_eval",
            "torch_compile",
        ),
        field_probe="precision",
        severity="medium",
        spec_keys=(
            "model.torch_dtype",
            "model.attn_implementation",
            "launch.deepspeed_config",
            "launch.deepspeed_stage",
            "launch.deepspeed_min_gpus",
        ),
    ),
    Axis("seed", fields=("seed", "data_seed", "full_determinism"), severity="low"),
    Axis(
        "eval",
        fields=(
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
        ),
        severity="medium",
        spec_keys=tuple(f"eval.{name}" for name in section_fields("eval")),
    ),
    Axis(
        "tokens",
        probe="tokens",
        report_rank=5,
        fields=("max_length", "dataset_text_field", "shuffle_dataset"),
        probe_overrides=(("max_length", "tokens"),),
        severity="medium",
    ),
    Axis(
        "loss_norm",
        probe="loss_norm",
        report_rank=12,
        fields=("average_tokens_across_devices",),
        field_probe="loss_norm",
        severity="medium",
    ),
    Axis(
        "packing",
        probe="packing",
        report_rank=13,
        fields=("packing", "packing_strategy", "padding_free", "eval_packing"),
        field_probe="packing",
        severity="medium",
        severity_overrides=(("packing", "high"),),
    ),
    Axis(
        "padding",
        probe="padding",
        report_rank=14,
        fields=("truncation_mode", "pad_to_multiple_of"),
        field_probe="padding",
        severity="medium",
    ),
    Axis(
        "eos",
        probe="eos",
        report_rank=15,
        fields=("eos_token", "pad_token"),
        field_probe="eos",
        severity="high",
    ),
    # BOS comes from the chat template and the tokenizer's special tokens: 'template' aligns its findings.
    Axis("bos", probe="bos", report_rank=16, alignable=False),
    Axis(
        "runtime",
        severity="low",
        spec_keys=("launch.launcher",),
        descriptive_keys=("launch.launcher",),
    ),
    Axis(
        "data_order",
        probe="data_order",
        report_rank=21,
        fields=("train_sampling_strategy", "dataloader_drop_last", "length_column_name"),
        field_probe="data_order",
        severity="medium",
        severity_overrides=(("length_column_name", "low"),),
    ),
    # The base model and the tokenizer that comes with it (its ids index the model's embedding): reported first.
    Axis(
        "model",
        probe="model",
        report_rank=0,
        spec_keys=("model.name_or_path", "model.revision", "tokenizer.source"),
    ),
    Axis("special_tokens", probe="special_tokens", report_rank=22, alignable=False),
    Axis("versions", probe="versions", report_rank=23, alignable=False),
    Axis("consistency", probe="consistency", report_rank=24, alignable=False),
    Axis("config", probe="config", report_rank=0, alignable=False),
    Axis("answer", probe="answer", report_rank=10, alignable=False),
    Axis("env", probe="env", report_rank=11, alignable=False),
)
"""Align axes in `--align` order (batch first), then the probe-only axes."""

BY_NAME: dict[str, Axis] = {axis.name: axis for axis in AXIS_TABLE}

AXES: tuple[str, ...] = tuple(
    axis.name for axis in sorted((a for a in AXIS_TABLE if a.probe), key=lambda a: a.report_rank or 0)
)
"""Probe axes in report order: the axis of every finding."""

ALIGN_AXES: tuple[str, ...] = tuple(axis.name for axis in AXIS_TABLE if axis.alignable)
"""Names `parity run --align` accepts (plus 'all')."""

FIELD_AXIS: dict[str, str] = {name: axis.name for axis in AXIS_TABLE for name in axis.fields}
"""SFTConfig fields that change training; every other field is run management (axis 'runtime')."""

SECTION_KEYS: dict[str, tuple[str, ...]] = {
    axis.name: axis.spec_keys for axis in AXIS_TABLE if axis.spec_keys
}
"""Recipe keys outside `training` that each axis copies; `training.*` keys follow field_axis."""

DESCRIPTIVE_KEYS: tuple[str, ...] = tuple(key for axis in AXIS_TABLE for key in axis.descriptive_keys)
"""Effective keys that describe a recipe without changing its training (ignored by the same-recipe check)."""

LOCK_KEYS: tuple[str, ...] = tuple(
    key for name in ("peft", "template", "prompt", "data") for key in BY_NAME[name].lock_keys
)
"""Recipe keys the lock records after the training fields, in file order."""

_FIELD_PROBE = {name: probe for axis in AXIS_TABLE for name, probe in axis.probe_overrides}
_FIELD_SEVERITY = {name: severity for axis in AXIS_TABLE for name, severity in axis.severity_overrides}


def field_axis(name: str) -> str:
    """Align axis of an SFTConfig field ('runtime' for run management such as logging or hub pushes)."""
    return FIELD_AXIS.get(name, "runtime")


def field_probe(name: str) -> str:
    """The probe that reports a difference in this SFTConfig field."""
    return _FIELD_PROBE.get(name) or BY_NAME[field_axis(name)].field_probe


def field_severity(name: str) -> str:
    return _FIELD_SEVERITY.get(name) or BY_NAME[field_axis(name)].severity or "low"


def probe_fields(probe: str) -> tuple[str, ...]:
    """SFTConfig fields whose differences `probe` reports, in table order."""
    return tuple(name for name in FIELD_AXIS if field_probe(name) == probe)


def default_align(axis: str) -> str | None:
    """The align axis that removes a finding of this probe axis unless the finding says otherwise."""
    return axis if BY_NAME[axis].alignable else None


def split_names(text: str | Iterable[str]) -> list[str]:
    """'batch, template' or ['batch', ' template'] -> ['batch', 'template'] (blank names dropped)."""
    return [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n and n.strip()]


def parse_axes(
    text: str | Iterable[str] | None, valid: Iterable[str] = AXES, kind: str = "axis"
) -> list[str] | None:
    """'batch,template' -> ['batch', 'template'] (None stays None); a name outside `valid` is a ParityError."""
    if text is None:
        return None
    names = split_names(text)
    valid = list(valid)
    for name in names:
        if name not in valid:
            raise unknown_key_error(kind, name, valid)
    return names


def parse_align_axes(text: str | Iterable[str] | None) -> list[str]:
    """'batch,template', 'all' or 'none' -> canonical align axis names (ALIGN_AXES order)."""
    names = split_names(text) if text is not None else []
    if "all" in names or "none" in names:
        if len(names) > 1:
            raise ParityError(
                f"--align: 'all' and 'none' cannot be combined with other axes, got {','.join(names)}"
            )
        return list(ALIGN_AXES) if names == ["all"] else []
    chosen = parse_axes(names, [*ALIGN_AXES, "all"], "align axis") or []
    return [axis for axis in ALIGN_AXES if axis in chosen]
