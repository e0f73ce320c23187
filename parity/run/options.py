"""What bounds a matched run (steps, rows, micro-batch, model), with defaults that depend on the device.

One RunOptions drives both legs, so everything here applies equally to A and B.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.errors import ParityError

CPU_DEFAULTS = {"micro_batch": 2, "samples": 256, "eval_samples": 8, "eval_rows": 32, "max_new_tokens": 64}
GPU_DEFAULTS = {
    "micro_batch": None,
    "samples": None,
    "eval_samples": 64,
    "eval_rows": 256,
    "max_new_tokens": 256,
}
"""None: the recipe's own per-device batch / every row."""


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass
class RunOptions:
    """Options of `parity run`; None means the device default (CPU_DEFAULTS / GPU_DEFAULTS) or the recipe's."""

    align: list[str] = field(default_factory=list)
    to: str = "b"
    data: str = "synthetic"
    world_size: int = 1
    model: str | None = None
    """'tiny' (random Llama-architecture model, CPU default), 'proxy' (the tiny model with the compact vocabulary
    of the legs' token ids, parity.run.proxy) or a hub id / path loaded with from_pretrained."""
    max_steps: int | None = None
    epochs: float | None = None
    eval_every: int | None = None
    samples: int | None = None
    """Train rows per leg (None: the device default; 0: every row)."""
    eval_samples: int | None = None
    """Held-out questions answered by greedy generation."""
    eval_rows: int | None = None
    """Rows of each eval-loss set (own eval split, shared held-out)."""
    max_new_tokens: int | None = None
    micro_batch: int | None = None
    seed: int = 0
    """Seed of the tiny model's initial weights (the training seed is the recipe's `training.seed`)."""
    save_every: int | None = None
    resume: bool = False
    force: bool = False
    parallel: bool = False
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None
    preflight_samples: int = 32
    deterministic: bool | None = None
    """torch.use_deterministic_algorithms(True, warn_only=True) while training (None: on GPU only; the CPU
    kernels used here are deterministic already and their deterministic variants cost ~30% in speed)."""
    set_a: list[str] = field(default_factory=list)
    set_b: list[str] = field(default_factory=list)
    out: Path | None = None
    save_aligned: Path | None = None

    def resolved(self) -> RunOptions:
        """A copy with device defaults filled in and values checked."""
        defaults = GPU_DEFAULTS if cuda_available() else CPU_DEFAULTS
        out = dataclasses.replace(self)
        for name, value in defaults.items():
            if getattr(out, name) is None:
                setattr(out, name, value)
        if out.samples == 0:
            out.samples = None
        if out.model is None:
            out.model = "tiny"
        if out.deterministic is None:
            out.deterministic = defaults is GPU_DEFAULTS
        for name in (
            "max_steps",
            "eval_every",
            "eval_samples",
            "eval_rows",
            "max_new_tokens",
            "micro_batch",
            "save_every",
        ):
            value = getattr(out, name)
            if value is not None and value < (0 if name in ("eval_samples",) else 1):
                raise ParityError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        if out.epochs is not None and out.epochs <= 0:
            raise ParityError(f"--epochs must be positive, got {out.epochs}")
        if out.samples is not None and out.samples < 1:
            raise ParityError(f"--samples must be positive (0: every row), got {out.samples}")
        if out.world_size < 1:
            raise ParityError(f"--world-size must be at least 1, got {out.world_size}")
        if out.to not in ("a", "b"):
            raise ParityError(f"--to must be 'a' or 'b', got '{out.to}'")
        if not 0 <= out.machine_rank < max(1, out.num_machines):
            raise ParityError(
                f"--machine-rank {out.machine_rank} is out of range for --num-machines {out.num_machines}"
            )
        return out

    def fingerprint(self) -> dict[str, Any]:
        """What must match for --resume to continue a run (everything that changes the training)."""
        keys = (
            "align",
            "to",
            "data",
            "world_size",
            "model",
            "max_steps",
            "epochs",
            "samples",
            "micro_batch",
            "seed",
            "set_a",
            "set_b",
        )
        return {k: getattr(self, k) for k in keys}
