"""Examples per optimizer step as the model receives them from the data loader, summed over processes.

Written by the main process to `<leg>.batches.jsonl`: {"step", "examples", "per_process", "micro_batches"}.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.run.files import append_jsonl


def batch_rows(kwargs: dict[str, Any]) -> int:
    """Sequences in one forward batch (padding-free batches are one row of concatenated sequences)."""
    ids = kwargs.get("input_ids")
    if ids is None:
        return 0
    positions = kwargs.get("position_ids")
    if ids.shape[0] == 1 and positions is not None:
        return int((positions == 0).sum())
    return int(ids.shape[0])


def gather_counts(count: int) -> list[int]:
    """This process's count from every process (itself only when not distributed)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [count]
    parts = [torch.zeros(2, dtype=torch.long) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, torch.tensor([count, 0], dtype=torch.long))
    return [int(p[0]) for p in parts]


def example_counter(path: Path):
    """A TrainerCallback counting training rows per optimizer step through a forward pre-hook on the model."""
    from transformers import TrainerCallback

    class ExampleCounter(TrainerCallback):
        def __init__(self) -> None:
            self.rows = 0
            self.micro_batches = 0
            self.handle = None

        def _count(self, module, args, kwargs) -> None:
            if module.training:
                self.rows += batch_rows(kwargs)
                self.micro_batches += 1

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if model is not None and self.handle is None:
                self.handle = model.register_forward_pre_hook(self._count, with_kwargs=True)

        def on_step_end(self, args, state, control, **kwargs):
            per_process = gather_counts(self.rows)
            if state.is_world_process_zero:
                append_jsonl(
                    path,
                    {
                        "step": state.global_step,
                        "examples": sum(per_process),
                        "per_process": per_process,
                        "micro_batches": self.micro_batches,
                    },
                )
            self.rows = self.micro_batches = 0

        def on_train_end(self, args, state, control, **kwargs):
            if self.handle is not None:
                self.handle.remove()
                self.handle = None

    return ExampleCounter()
