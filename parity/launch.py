"""World-size rules: how many processes a recipe launches and what global batch that gives."""

from __future__ import annotations

from dataclasses import dataclass

from parity.errors import ParityError
from parity.spec import Recipe


@dataclass(frozen=True)
class LaunchPlan:
    """The effective launch for a number of visible GPUs."""

    visible_gpus: int
    num_processes: int
    per_device_train_batch_size: int
    gradient_accumulation_steps: int
    global_batch: int
    """per_device x accumulation x processes: examples per optimizer step."""
    deepspeed_config: str | None
    deepspeed_stage: int | None
    rule: str


def plan_launch(recipe: Recipe, visible_gpus: int, sft_defaults: dict) -> LaunchPlan:
    """Apply the recipe's launch rules; sft_defaults supplies SFTConfig's values for unset batch fields."""
    if visible_gpus < 1:
        raise ParityError(f"--world-size must be at least 1, got {visible_gpus}")
    spec = recipe.launch
    if spec.num_processes == "world":
        processes = visible_gpus
    elif isinstance(spec.num_processes, int) and spec.num_processes >= 1:
        processes = min(spec.num_processes, visible_gpus) if spec.num_processes > 1 else 1
    else:
        raise ParityError(
            f"launch.num_processes must be 'world' or a positive integer, got {spec.num_processes!r}"
        )
    per_device = int(
        recipe.training.get("per_device_train_batch_size", sft_defaults["per_device_train_batch_size"])
    )
    if spec.global_batch is not None:
        accumulation = max(1, spec.global_batch // (per_device * processes))
        rule = f"accumulation = max(1, {spec.global_batch} // ({per_device} x {processes}))"
    else:
        accumulation = int(
            recipe.training.get("gradient_accumulation_steps", sft_defaults["gradient_accumulation_steps"])
        )
        rule = f"fixed accumulation {accumulation}, {processes} process(es)"
    use_deepspeed = spec.deepspeed_config is not None and visible_gpus >= spec.deepspeed_min_gpus
    return LaunchPlan(
        visible_gpus=visible_gpus,
        num_processes=processes,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
        global_batch=per_device * accumulation * processes,
        deepspeed_config=spec.deepspeed_config if use_deepspeed else None,
        deepspeed_stage=spec.deepspeed_stage if use_deepspeed else None,
        rule=rule,
    )
