"""Optimizer-step arithmetic of a recipe, computed by the HF Trainer's own code paths (no weights, no data).

Shared by the batch and schedule probes so both see the same total and warmup step counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from parity.launch import LaunchPlan, plan_launch
from parity.materialize import Materialized, sft_defaults


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


def plan_steps(m: Materialized, world_size: int | None = None) -> StepPlan:
    """The step plan of a materialized recipe at its own world size, or re-planned for another one."""
    launch: LaunchPlan = (
        m.launch if world_size in (None, m.world_size) else plan_launch(m.recipe, world_size, sft_defaults())
    )
    config = m.sft_config
    rows = len(m.data.train)
    length, per_epoch, total, epochs = trainer_step_counts(
        config,
        rows,
        launch.per_device_train_batch_size,
        launch.num_processes,
        launch.gradient_accumulation_steps,
    )
    steps, eval_at, save_at = event_steps(config, total, per_epoch)
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
        warmup_steps=config.get_warmup_steps(total),
        logging_steps=steps["logging"],
        eval_steps=steps["eval"],
        save_steps=steps["save"],
        eval_at=eval_at,
        save_at=save_at,
    )


def step_count_cause(a: Materialized, b: Materialized) -> str:
    """The align axis that explains a difference in optimizer-step counts: the first of batch, data, schedule
    that differs (aligning it either removes the difference or hands it on to the next cause)."""
    if a.launch.global_batch != b.launch.global_batch:
        return "batch"
    if len(a.data.train) != len(b.data.train):
        return "data"
    return "schedule"
