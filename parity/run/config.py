"""Run-context overrides of a leg's SFTConfig: the same for A and B, each one recorded in the summary.

Micro-batching keeps the recipe's global batch: per-device x accumulation x processes is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.errors import ParityError
from parity.plan import LaunchPlan, build_sft_config
from parity.run.options import RunOptions


@dataclass(frozen=True)
class MicroBatch:
    """How a leg reaches its recipe's global batch."""

    per_device: int
    accumulation: int
    processes: int

    @property
    def global_batch(self) -> int:
        return self.per_device * self.accumulation * self.processes


def micro_batching(plan: LaunchPlan, micro: int | None) -> MicroBatch:
    """Largest per-device batch <= micro that divides per-device x accumulation (None: keep the recipe's)."""
    per_process = plan.per_device_train_batch_size * plan.gradient_accumulation_steps
    if micro is None or micro >= plan.per_device_train_batch_size:
        return MicroBatch(
            plan.per_device_train_batch_size, plan.gradient_accumulation_steps, plan.num_processes
        )
    size = max(d for d in range(1, micro + 1) if per_process % d == 0)
    return MicroBatch(size, per_process // size, plan.num_processes)


def context_overrides(
    plan: LaunchPlan, opts: RunOptions, output_dir: Path, on_gpu: bool, has_eval: bool
) -> dict[str, Any]:
    """SFTConfig fields the run context sets (output, logging, bounds, micro-batching, CPU precision)."""
    micro = micro_batching(plan, opts.micro_batch)
    saving = opts.save_every is not None
    out: dict[str, Any] = {
        "output_dir": str(output_dir),
        "report_to": "none",
        "push_to_hub": False,
        "logging_steps": 1,
        "disable_tqdm": True,
        "save_strategy": "steps" if saving else "no",
        "load_best_model_at_end": False,
        "metric_for_best_model": None,
        "per_device_train_batch_size": micro.per_device,
        "gradient_accumulation_steps": micro.accumulation,
        "eval_strategy": "steps" if opts.eval_every and has_eval else "no",
    }
    if saving:
        out["save_steps"] = opts.save_every
        out["save_total_limit"] = 1
    if opts.eval_every and has_eval:
        out["eval_steps"] = opts.eval_every
    if opts.max_steps is not None:
        out["max_steps"] = opts.max_steps
    if opts.epochs is not None:
        out["num_train_epochs"] = opts.epochs
    if opts.micro_batch is not None:
        out["per_device_eval_batch_size"] = opts.micro_batch
    if not on_gpu:
        out.update(bf16=False, fp16=False, use_cpu=True)
    return out


def leg_sft_config(m: Any, opts: RunOptions, output_dir: Path, on_gpu: bool, has_eval: bool = True):
    """The leg's SFTConfig (recipe + launch rules + run context) and the context overrides it applied."""
    overrides = context_overrides(m.launch, opts, output_dir, on_gpu, has_eval)
    config = build_sft_config(m.recipe, m.launch, overrides)
    if config.max_steps is None or (config.max_steps <= 0 and not config.num_train_epochs):
        raise ParityError("the run has no length: pass --max-steps or --epochs")
    return config, overrides
