"""Planning: a recipe resolved through the real libraries, and its launch and optimizer-step plans per world size.

`resolve(recipe, world_size)` gives the SFTConfig, LoraConfig and launch plan; `Resolved.launch_plan(n)` and
`step_plan(...)` answer "what happens at n GPUs" with the HF Trainer's own arithmetic (no weights, no data).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from functools import cache
from types import SimpleNamespace
from typing import Any

from parity.errors import ParityError
from parity.spec import Recipe

OUTPUT_DIR = "parity-output"
"""output_dir given to SFTConfig; nothing is written there by planning or materialization."""
TABLE_WORLD_SIZES = (1, 2, 4, 8)
"""World sizes every batch table shows (the report's, the lock's)."""
MAX_WORLD_SIZE = 4096
"""The most GPUs a world size may name (a larger one is a typo, not a cluster)."""
CAPTURED_WORLD_SIZES = "launch.captured_world_sizes"
"""Recipe.provenance key of a captured recipe: the world sizes its capture ran at ('1,2,4,8'). Its batch at
any other world size is unknown, never computed from the launch rules fitted to the captured ones."""


def captured_world_sizes(recipe: Recipe) -> tuple[int, ...] | None:
    """The world sizes a captured recipe's capture holds (None: any world size follows the launch rules, as for
    every other recipe, and for a capture whose launch rules were set explicitly with launch.* keys)."""
    text = recipe.provenance.get(CAPTURED_WORLD_SIZES)
    if not text:
        return None
    if any(key.startswith("launch.") and key != CAPTURED_WORLD_SIZES for key in recipe.provenance):
        return None
    return tuple(int(size) for size in text.split(","))


def check_world_size(recipe: Recipe, world_size: int) -> None:
    """A ParityError for a world size out of range, or one the recipe's capture does not hold."""
    if world_size < 1 or world_size > MAX_WORLD_SIZE:
        raise ParityError(f"--world-size must be between 1 and {MAX_WORLD_SIZE}, got {world_size}")
    captured = captured_world_sizes(recipe)
    if captured is not None and world_size not in captured:
        held = ", ".join(map(str, captured))
        raise ParityError(
            f"recipe '{recipe.name}' was captured at world size {held} only; its batch at world size "
            f"{world_size} is unknown (never extrapolated): capture it again with --world-size {world_size}"
        )


def table_world_sizes(world_size: int, base: tuple[int, ...] = TABLE_WORLD_SIZES) -> tuple[int, ...]:
    """The table's world sizes (TABLE_WORLD_SIZES by default) plus the selected one, ascending."""
    return tuple(sorted({*base, world_size}))


def held_world_sizes(sizes: tuple[int, ...], recipes: tuple[Recipe, ...]) -> tuple[int, ...]:
    """The world sizes among `sizes` that every captured recipe among `recipes` was captured at (a table never
    shows a captured recipe at a world size its capture lacks)."""
    held = [captured_world_sizes(recipe) for recipe in recipes]
    return tuple(n for n in sizes if all(captured is None or n in captured for captured in held))


@cache
def sft_defaults() -> dict[str, Any]:
    """Every trl.SFTConfig field at its default, as the installed library defines it."""
    from trl import SFTConfig

    return {f.name: f.default for f in dataclasses.fields(SFTConfig) if f.default is not dataclasses.MISSING}


def build_sft_config(recipe: Recipe, launch: LaunchPlan, extra: dict[str, Any] | None = None):
    """The real trl.SFTConfig for the recipe, with launch rules applied."""
    import torch
    from trl import SFTConfig

    kwargs = dict(recipe.training)
    kwargs["gradient_accumulation_steps"] = launch.gradient_accumulation_steps
    kwargs.setdefault("output_dir", OUTPUT_DIR)
    if not torch.cuda.is_available():
        kwargs["use_cpu"] = (
            True  # lets bf16/fp16 recipes materialize here; the precision probe reads the flags
        )
    kwargs.update(extra or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return SFTConfig(**kwargs)
        except (ValueError, TypeError) as err:
            raise ParityError(
                f"recipe '{recipe.name}': trl.SFTConfig rejects its training section: {_first_line(err)}"
            ) from None


def build_lora_config(recipe: Recipe):
    """The real peft.LoraConfig, or None for full fine-tuning."""
    method = recipe.peft.method
    if method in ("none", "full", None):
        return None
    if method != "lora":
        raise ParityError(f"recipe '{recipe.name}': peft.method must be 'none' or 'lora', got '{method}'")
    from peft import LoraConfig

    try:
        return LoraConfig(**recipe.peft.lora)
    except (ValueError, TypeError) as err:
        raise ParityError(
            f"recipe '{recipe.name}': peft.LoraConfig rejects peft.lora: {_first_line(err)}"
        ) from None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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


def plan_launch(recipe: Recipe, visible_gpus: int) -> LaunchPlan:
    """Apply the recipe's launch rules; SFTConfig's defaults supply unset batch fields."""
    check_world_size(recipe, visible_gpus)
    spec = recipe.launch
    defaults = sft_defaults()
    if spec.num_processes == "world":
        processes = visible_gpus
    elif isinstance(spec.num_processes, int) and spec.num_processes >= 1:
        processes = min(spec.num_processes, visible_gpus) if spec.num_processes > 1 else 1
    else:
        raise ParityError(
            f"launch.num_processes must be 'world' or a positive integer, got {spec.num_processes!r}"
        )
    per_device = int(
        recipe.training.get("per_device_train_batch_size", defaults["per_device_train_batch_size"])
    )
    if spec.global_batch is not None:
        accumulation = max(1, spec.global_batch // (per_device * processes))
        rule = f"accumulation = max(1, {spec.global_batch} // ({per_device} x {processes}))"
    else:
        accumulation = int(
            recipe.training.get("gradient_accumulation_steps", defaults["gradient_accumulation_steps"])
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


@dataclass(frozen=True)
class Resolved:
    """A recipe's configs resolved through the real libraries for one world size; launch plans for any other
    world size are computed once and cached."""

    recipe: Recipe
    launch: LaunchPlan
    sft_config: Any
    lora_config: Any
    _plans: dict[int, LaunchPlan] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def world_size(self) -> int:
        return self.launch.visible_gpus

    def launch_plan(self, world_size: int) -> LaunchPlan:
        """The launch plan at `world_size` visible GPUs (the resolved one at its own world size)."""
        if world_size == self.world_size:
            return self.launch
        if world_size not in self._plans:
            self._plans[world_size] = plan_launch(self.recipe, world_size)
        return self._plans[world_size]


def resolve(recipe: Recipe, world_size: int = 1) -> Resolved:
    """Launch plan, SFTConfig and LoraConfig of `recipe` at `world_size` visible GPUs."""
    launch = plan_launch(recipe, world_size)
    return Resolved(recipe, launch, build_sft_config(recipe, launch), build_lora_config(recipe))


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps a recipe takes at one world size, and when it warms up, evaluates and saves."""

    world_size: int
    processes: int
    per_device: int
    accumulation: int
    global_batch: int
    rows: int
    """Train examples before packing (the train split's rows)."""
    batches_per_epoch: int
    """Per-process dataloader length (see train_dataloader)."""
    steps_per_epoch: int
    total_steps: int
    epochs: int
    warmup_steps: int
    logging_steps: int | None
    eval_steps: int | None
    save_steps: int | None
    eval_at: tuple[int, ...]
    """Optimizer steps after which the Trainer evaluates (DefaultFlowCallback)."""
    save_at: tuple[int, ...]


def train_dataloader(rows: int, per_device: int, processes: int, drop_last: bool) -> Any:
    """One process's train dataloader over `rows` examples, batched as the Trainer's accelerator shards it
    (accelerate's BatchSamplerShard, even_batches=True, split_batches=False)."""
    from accelerate.data_loader import BatchSamplerShard
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

    sampler = BatchSampler(SequentialSampler(range(rows)), per_device, drop_last=drop_last)
    if processes > 1:
        sampler = BatchSamplerShard(
            sampler, num_processes=processes, process_index=0, split_batches=False, even_batches=True
        )
    return DataLoader(range(rows), batch_sampler=sampler)


def trainer_step_counts(
    sft_config: Any, rows: int, per_device: int, processes: int, accumulation: int
) -> tuple[int, int, int, int]:
    """(batches per epoch, update steps per epoch, total steps, epochs) from `Trainer.set_initial_training_values`.

    transformers 5.x: num_update_steps_per_epoch = max(len_dataloader // accumulation +
    int(len_dataloader % accumulation > 0), 1); max_steps = ceil(num_train_epochs * num_update_steps_per_epoch)
    unless args.max_steps > 0. len_dataloader is the per-process length (drop_last=dataloader_drop_last).
    """
    from transformers import Trainer

    loader = train_dataloader(rows, per_device, processes, sft_config.dataloader_drop_last)
    trainer = Trainer.__new__(Trainer)
    trainer.model = None
    trainer.accelerator = None
    trainer.is_deepspeed_enabled = False
    trainer._train_batch_size = per_device
    args = SimpleNamespace(
        max_steps=sft_config.max_steps,
        num_train_epochs=sft_config.num_train_epochs,
        gradient_accumulation_steps=accumulation,
        per_device_train_batch_size=per_device,
        world_size=processes,
    )
    trainer.args = args
    epochs, per_epoch, _, _, _, _, total = trainer.set_initial_training_values(args, loader)
    return len(loader), per_epoch, total, epochs


def event_steps(
    sft_config: Any, total: int, per_epoch: int
) -> tuple[dict[str, int | None], tuple[int, ...], tuple[int, ...]]:
    """Absolute logging/eval/save steps (TrainerState.compute_steps) and the steps the Trainer evaluates and saves
    at, from DefaultFlowCallback's on_step_end/on_epoch_end run over every optimizer step."""
    from transformers.trainer_callback import DefaultFlowCallback, TrainerControl, TrainerState

    state = TrainerState()
    state.max_steps = total
    state.compute_steps(sft_config, total)
    steps = {kind: getattr(state, f"{kind}_steps", None) for kind in ("logging", "eval", "save")}
    flow = DefaultFlowCallback()
    eval_at: list[int] = []
    save_at: list[int] = []
    for step in range(1, total + 1):
        state.global_step = step
        state.epoch = step / per_epoch
        control = TrainerControl()
        flow.on_step_end(sft_config, state, control)
        if step % per_epoch == 0 or step == total:
            flow.on_epoch_end(sft_config, state, control)
        if control.should_evaluate:
            eval_at.append(step)
        if control.should_save:
            save_at.append(step)
    return steps, tuple(eval_at), tuple(save_at)


def step_plan(launch: LaunchPlan, sft_config: Any, rows: int) -> StepPlan:
    """The step plan of a launch over `rows` train examples."""
    length, per_epoch, total, epochs = trainer_step_counts(
        sft_config,
        rows,
        launch.per_device_train_batch_size,
        launch.num_processes,
        launch.gradient_accumulation_steps,
    )
    steps, eval_at, save_at = event_steps(sft_config, total, per_epoch)
    return StepPlan(
        world_size=launch.visible_gpus,
        processes=launch.num_processes,
        per_device=launch.per_device_train_batch_size,
        accumulation=launch.gradient_accumulation_steps,
        global_batch=launch.global_batch,
        rows=rows,
        batches_per_epoch=length,
        steps_per_epoch=per_epoch,
        total_steps=total,
        epochs=epochs,
        warmup_steps=sft_config.get_warmup_steps(total),
        logging_steps=steps["logging"],
        eval_steps=steps["eval"],
        save_steps=steps["save"],
        eval_at=eval_at,
        save_at=save_at,
    )


def step_count_cause(a: StepPlan, b: StepPlan) -> str:
    """The align axis that explains a difference in optimizer-step counts: the first of batch, data, schedule
    that differs (aligning it either removes the difference or hands it on to the next cause)."""
    if a.global_batch != b.global_batch:
        return "batch"
    if a.rows != b.rows:
        return "data"
    return "schedule"
