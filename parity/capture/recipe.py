"""A captured recipe as a parity `Recipe` spec: the training arguments that differ from the class defaults
(those the installed `trl.SFTConfig` knows; another framework's settings mapped, see
`parity.capture.frameworks.settings`), the LoRA settings, the model request, launch rules that reproduce
the captured batch table, and the captured tokenizer. What a capture cannot know (the eval protocol) is
marked "not captured" in the provenance, never guessed."""

from __future__ import annotations

import dataclasses
from typing import Any

from parity.capture.frameworks.settings import framework_training, is_trl_arguments
from parity.capture.reader import CapturedRecipe, LaunchRow
from parity.installed import running_version
from parity.plan import CAPTURED_WORLD_SIZES
from parity.spec import EVAL_NOT_CAPTURED, NOT_APPLICABLE, LaunchSpec, PeftSpec, Recipe

NOT_TRAINING = frozenset({"output_dir", "logging_dir", "run_name", "hub_token", "push_to_hub_token"})
"""Training-argument fields that locate a run rather than shape what it trains on."""
RENAMED_FIELDS = {"warmup_ratio": "warmup_steps"}
"""Fields transformers 5 folded into another: a warmup ratio (0 < r < 1) is given as a float warmup_steps."""
RUNTIME_LORA_FIELDS = frozenset({"base_model_name_or_path", "revision", "inference_mode"})
"""LoraConfig fields peft fills when it wraps a model, not settings of the recipe."""
NOT_CAPTURED = (
    f"{EVAL_NOT_CAPTURED} (lives outside the training script; give it with eval.* keys under set: in a recipe YAML "
    "that declares the capture)"
)


def _sft_config_fields() -> set[str]:
    from trl import SFTConfig

    return {field.name for field in dataclasses.fields(SFTConfig)}


TRUNCATION_ALIAS = "max_seq_length"
"""trl <= 0.15 truncates at SFTConfig.max_seq_length; from 0.16 at max_length, which max_seq_length (a deprecated
alias until 0.20) reaches only through SFTConfig.__post_init__."""


def truncation_length(fields: dict[str, Any], value: Any) -> tuple[Any, str]:
    """(training.max_length here, or None; why) for a captured max_seq_length: the length the capture's own
    SFTTrainer truncated at where its SFTConfig has no max_length, else nothing (its trainer reads max_length)."""
    if "max_length" not in fields:
        return (
            value,
            f"{value!r}: the capture's SFTTrainer truncates at max_seq_length; here training.max_length",
        )
    return None, (
        f"{value!r} in the capture, where SFTTrainer truncates at max_length ({fields['max_length']!r}): "
        "max_seq_length reaches it only through SFTConfig.__post_init__"
    )


def training_section(captured: CapturedRecipe) -> tuple[dict[str, Any], dict[str, str]]:
    """({field: value} the recipe set and SFTConfig here accepts, {field: why it was left out})."""
    known = _sft_config_fields()
    training: dict[str, Any] = {}
    left_out: dict[str, str] = {}
    for name, change in sorted(captured.training_args.non_default.items()):
        if name in NOT_TRAINING or name == "gradient_accumulation_steps":
            continue
        value = change["value"]
        if name == TRUNCATION_ALIAS and name not in known:
            training_value, left_out[name] = truncation_length(captured.training_args.fields, value)
            if training_value is not None:
                training["max_length"] = training_value
            continue
        renamed = RENAMED_FIELDS.get(name)
        if name not in known and renamed in known and isinstance(value, float) and 0 < value < 1:
            training[renamed] = value
            left_out[name] = f"{value!r} in the capture's environment; here training.{renamed} = {value!r}"
            continue
        if name not in known:
            left_out[name] = f"not a trl.SFTConfig field here (set to {value!r} in the capture)"
            continue
        training[name] = change["value"]
    return training, left_out


ENVIRONMENT_FIELDS = NOT_TRAINING | {
    "use_cpu",
    "local_rank",
    "hub_token",
    "hub_private_repo",
    "fsdp_config",
    "accelerator_config",
    "deepspeed",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "dataloader_pin_memory",
}
"""Fields that describe the machine, the hub or launch rules (taken apart), never a library's training default."""


def _same_default(captured: Any, here: Any) -> bool:
    """Whether two libraries' defaults say the same thing: equal, both empty (None, [], {}, ""), or False and "no"
    (transformers 5 spells some switches as strings)."""
    empty = (None, [], {}, "")
    return (
        captured == here
        or (captured in empty and here in empty)
        or {repr(captured), repr(here)} == {"False", "'no'"}
    )


def environment_section(
    captured: CapturedRecipe, training: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """({field: value}, {training.field: provenance}) for a TRL or transformers trainer captured under other
    library versions than the installed ones: defaults of its own classes that differ from the installed SFTConfig's
    (the run used them: gradient checkpointing, bf16, the optimizer, ...), and the SFTConfig fields its class lacks
    (not applicable, never the installed default)."""
    from parity.capture.frameworks.settings import sft_config_defaults

    fields = captured.training_args.fields
    versions = captured.manifest.get("versions", {})
    if not fields or all(versions.get(lib) == running_version(lib) for lib in ("transformers", "trl")):
        return {}, {}
    where = ", ".join(f"{lib} {versions[lib]}" for lib in ("transformers", "trl") if versions.get(lib))
    short = (captured.training_args.class_name or "its arguments").rsplit(".", 1)[-1]
    taken: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    for name, default in sft_config_defaults().items():
        if name in training or name in ENVIRONMENT_FIELDS:
            continue
        if name not in fields:
            provenance[f"training.{name}"] = (
                f"{NOT_APPLICABLE}: the captured {short} ({where}) has no such field"
            )
        elif not _same_default(fields[name], default):
            taken[name] = fields[name]
            provenance[f"training.{name}"] = (
                f"capture (the default under {where}; the installed SFTConfig's is {default!r})"
            )
    return taken, provenance


def lora_section(captured: CapturedRecipe) -> PeftSpec:
    """LoRA fields of the captured adapter that differ from peft.LoraConfig's defaults."""
    peft = captured.peft
    if not peft or peft["config"].get("peft_type") not in ("LORA", "PeftType.LORA"):
        return PeftSpec()
    from peft import LoraConfig

    defaults = LoraConfig()
    lora = {}
    for field in dataclasses.fields(LoraConfig):
        if not field.init or field.name not in peft["config"] or field.name in RUNTIME_LORA_FIELDS:
            continue
        value = peft["config"][field.name]
        default = getattr(defaults, field.name)
        default = sorted(default) if isinstance(default, set) else default
        if value != default:
            lora[field.name] = (
                sorted(value) if field.name == "target_modules" and isinstance(value, list) else value
            )
    return PeftSpec(method="lora", lora=lora)


def launch_section(rows: list[LaunchRow]) -> LaunchSpec:
    """Launch rules (processes per GPU count, a global batch or a fixed accumulation) matching every row."""
    first = rows[0]
    per_gpu = all(row.processes == row.world_size for row in rows)
    fixed = {row.processes for row in rows}
    num_processes: str | int = (
        "world" if per_gpu and len(rows) > 1 else (fixed.pop() if len(fixed) == 1 else "world")
    )
    accumulations = {row.gradient_accumulation_steps for row in rows}
    global_batch = None
    if len(accumulations) > 1 and first.global_batch:
        global_batch = first.global_batch
    launcher = (first.launcher or {}).get("launcher") or "python"
    return LaunchSpec(num_processes=num_processes, global_batch=global_batch, launcher=launcher)


def recipe_from_capture(captured: CapturedRecipe, name: str | None = None) -> Recipe:
    """The parity Recipe a captured recipe directory stands for."""
    manifest = captured.manifest
    request = captured.model.request or {}
    training, left_out = training_section(captured)
    framework_provenance: dict[str, str] = {}
    framework = captured.framework
    if (
        framework
        and framework.get("framework") != "trl"
        and not is_trl_arguments(captured.training_args.class_name)
    ):
        mapped, framework_provenance, framework_left_out = framework_training(
            framework,
            captured.training_args.class_name,
            captured.training_args.fields,
            set(captured.training_args.non_default),
            NOT_TRAINING | {"gradient_accumulation_steps", "per_device_train_batch_size", "use_cpu"},
        )
        training = {key: value for key, value in training.items() if key not in framework_left_out} | mapped
        left_out.update(framework_left_out)
    else:
        defaults_there, framework_provenance = environment_section(captured, training)
        training |= defaults_there
    first = captured.launch[0]
    training["per_device_train_batch_size"] = first.per_device_train_batch_size
    launch = launch_section(captured.launch)
    if launch.global_batch is None:
        training["gradient_accumulation_steps"] = first.gradient_accumulation_steps
    recipe = Recipe(name=name or f"capture:{captured.path.name}")
    recipe.origin = f"capture ({captured.path})"
    recipe.description = "captured by running: " + " ".join(manifest.get("command", []))
    recipe.model.name_or_path = request.get("name") or captured.model.architecture_config.get(
        "_name_or_path", ""
    )
    recipe.model.torch_dtype = request.get("dtype")
    recipe.model.attn_implementation = request.get("attn_implementation")
    recipe.tokenizer.source = str(captured.tokenizer_path)
    recipe.training = training
    recipe.peft = lora_section(captured)
    recipe.launch = launch
    versions = manifest.get("versions", {})
    recipe.env = {
        lib: f"=={versions[lib]}"
        for lib in ("transformers", "trl", "peft", "torch", "datasets")
        if versions.get(lib)
    }
    recipe.upstream.repo = manifest.get("checkout", {}).get("path", "")
    recipe.upstream.commit = manifest.get("checkout", {}).get("git_commit") or ""
    recipe.upstream.config = {
        key: change["value"]
        for key, change in captured.training_args.non_default.items()
        if key not in NOT_TRAINING
    }
    recipe.upstream.consumed = {key: f"training.{key}" for key in training} | left_out
    recipe.provenance = {f"training.{key}": "capture" for key in training} | framework_provenance
    recipe.provenance.update({"model.name_or_path": "capture", "peft.lora": "capture", "launch": "capture"})
    recipe.provenance[CAPTURED_WORLD_SIZES] = ",".join(str(row.world_size) for row in captured.launch)
    recipe.provenance["eval"] = NOT_CAPTURED
    return recipe
