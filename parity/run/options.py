"""What bounds a matched run (steps, rows, micro-batch, model), with defaults that depend on the device.

One RunOptions drives both legs, so everything here applies equally to A and B. Each field is declared once:
its metadata (`option(...)`) generates the `parity run` flag, and a leg spec serializes it by field name.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any

from parity.axes import ALIGN_AXES
from parity.errors import ParityError
from parity.plan import MAX_WORLD_SIZE

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


FIELD_DEFAULT: Any = object()
"""Flag.cli_default when the flag's default is the field's."""


@dataclass(frozen=True)
class Flag:
    """How one RunOptions field appears on the `parity run` command line."""

    help: str
    decls: tuple[str, ...] = ()
    """Flag spellings (default: --field-name)."""
    cli_type: Any = None
    """Type the flag parses when it differs from the field's (e.g. a comma list parsed later)."""
    cli_default: Any = FIELD_DEFAULT
    """Default shown and passed when it differs from the field's."""
    min: int | None = None


def option(default: Any = MISSING, *, factory: Any = MISSING, **flag: Any) -> Any:
    """A RunOptions field with its command-line flag; without `help` the field has no flag."""
    metadata = {"flag": Flag(**flag)} if flag else {}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


ALIGN_HELP = f"Axes to align, comma-separated ({', '.join(ALIGN_AXES)}), 'all' or 'none'."
DATA_HELP = "'synthetic[:TRAIN[:TEST[:SEED]]]' (default), a dir with train/test.jsonl, or 'hub'."
LOCAL_FIELDS = ("out", "save_aligned")
"""Fields that stay with the command and are not sent to a leg."""


@dataclass
class RunOptions:
    """Options of `parity run`; None means the device default (CPU_DEFAULTS / GPU_DEFAULTS) or the recipe's."""

    align: list[str] = option(factory=list, help=ALIGN_HELP, cli_type=str, cli_default="none")
    to: str = option("b", help="Reference recipe that stays as is: 'b' (default) or 'a'.")
    data: str = option("synthetic", help=DATA_HELP)
    world_size: int = option(
        1,
        min=1,
        help="Visible GPUs per leg (the recipes' launch rules apply); > 1 launches each leg through accelerate.",
    )
    model: str | None = option(
        None,
        help="'tiny' (random small Llama, CPU default), 'proxy' (tiny with the legs' compact vocabulary), "
        "'random-llama-3.2-1b' (the real architecture, random weights) or a hub id / path for from_pretrained.",
    )
    """'tiny' (random Llama-architecture model, CPU default), 'proxy' (the tiny model with the compact vocabulary
    of the legs' token ids, parity.run.proxy), 'random-llama-3.2-1b' (Llama-3.2-1B's architecture with random
    weights from `seed`, in the recipe's dtype and attention kernel) or a hub id / path loaded with from_pretrained."""
    max_steps: int | None = option(None, help="Optimizer steps per leg (default: the recipe's epochs).")
    epochs: float | None = option(None, help="Epochs per leg (overrides the recipe's num_train_epochs).")
    eval_every: int | None = option(None, help="Eval loss every N steps (default: at the end only).")
    samples: int | None = option(None, help="Train rows per leg (CPU default 256; 0: all).")
    """Train rows per leg (None: the device default; 0: every row)."""
    eval_samples: int | None = option(None, help="Held-out questions answered greedily (CPU default 8).")
    """Held-out questions answered by greedy generation."""
    eval_rows: int | None = option(None, help="Rows per eval-loss set (CPU default 32).")
    """Rows of each eval-loss set (own eval split, shared held-out)."""
    max_new_tokens: int | None = option(None, help="Generation length (CPU default 64).")
    micro_batch: int | None = option(
        None, help="Per-device micro-batch (CPU default 2); accumulation keeps the global batch."
    )
    seed: int = option(0, help="Seed of the tiny model's initial weights (training seeds are the recipes').")
    """Seed of the tiny model's initial weights (the training seed is the recipe's `training.seed`)."""
    save_every: int | None = option(None, help="Checkpoint every N steps (needed for --resume).")
    deterministic: bool | None = option(
        None,
        decls=("--deterministic/--no-deterministic",),
        help="torch.use_deterministic_algorithms while training (default: on GPU only).",
    )
    """torch.use_deterministic_algorithms(True, warn_only=True) while training (None: on GPU only; the CPU
    kernels used here are deterministic already and their deterministic variants cost ~30% in speed)."""
    resume: bool = option(False, help="Continue an interrupted run from its last checkpoints.")
    force: bool = option(False, help="Train even when the pre-flight finds differences on aligned axes.")
    parallel: bool = option(False, help="Run A and B at once on disjoint GPU sets.")
    num_machines: int = option(1, min=1, help="Passed to accelerate.")
    machine_rank: int = option(0, min=0, help="Passed to accelerate.")
    main_process_ip: str | None = option(None, help="Passed to accelerate.")
    main_process_port: int | None = option(None, help="Passed to accelerate.")
    set_a: list[str] = option(
        factory=list, help="Override on recipe A, KEY=VALUE (repeatable).", cli_type=list[str] | None
    )
    set_b: list[str] = option(
        factory=list, help="Override on recipe B, KEY=VALUE (repeatable).", cli_type=list[str] | None
    )
    out: Path | None = option(None, help="Run directory (default reports/run-<a>-vs-<b>-<axes>/).")
    save_aligned: Path | None = option(None, help="Write <name>.aligned.yaml for both recipes here.")
    preflight_samples: int = 32

    def to_leg(self) -> dict[str, Any]:
        """The fields a leg needs, as plain JSON values (the inverse of `from_leg`)."""
        from parity.plain import plain

        return {f.name: plain(getattr(self, f.name)) for f in leg_fields()}

    @classmethod
    def from_leg(cls, values: dict[str, Any]) -> RunOptions:
        """Options rebuilt from `to_leg()` output (unknown keys of older specs are ignored)."""
        return cls(**{f.name: values[f.name] for f in leg_fields() if f.name in values})

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
        if not 1 <= out.world_size <= MAX_WORLD_SIZE:
            raise ParityError(f"--world-size must be between 1 and {MAX_WORLD_SIZE}, got {out.world_size}")
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


def leg_fields() -> list[dataclasses.Field]:
    """RunOptions fields sent to a leg (all but LOCAL_FIELDS)."""
    return [f for f in dataclasses.fields(RunOptions) if f.name not in LOCAL_FIELDS]
