"""Overhead of a `parity run` leg over a bare trl.SFTTrainer: same materialized SFTConfig, model, data and steps.
Runs on demand (not in tests); prints steps/s of both, the overhead ratio (target <= 5%) and peak RSS."""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = 0.05
OVERRIDES = ["training.per_device_train_batch_size=2", "launch.global_batch=4", "training.max_length=64"]


def bare_steps_per_second(m, opts, model_dir: Path, out: Path) -> float:
    """A plain SFTTrainer on the leg's own SFTConfig (same context overrides), timed over trainer.train()."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    from parity.run.config import leg_sft_config
    from parity.run.options import cuda_available

    config, _ = leg_sft_config(m, opts, out, cuda_available(), has_eval=False)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir),
        args=config,
        train_dataset=datasets.Dataset.from_list(m.train_rows[: opts.samples]),
        processing_class=m.tokenizer,
        peft_config=m.lora_config,
    )
    start = time.perf_counter()
    trainer.train()
    return trainer.state.global_step / (time.perf_counter() - start)


def parity_steps_per_second(m, opts, model_dir: Path, run_dir: Path) -> float:
    """The same leg through parity's execute_leg (step logger, determinism, evaluation excluded from the timing)."""
    from parity.run.train import execute_leg, leg_spec

    result = execute_leg(leg_spec("a", run_dir, run_dir / "a.recipe.yaml", opts, str(model_dir), True), m)
    return result["global_step"] / result["train_seconds"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recipe", default="revise")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is kept")
    parser.add_argument("--data", default="synthetic:200:40")
    args = parser.parse_args()

    from parity.materialize import materialize
    from parity.registry import resolve_recipe
    from parity.run.model import build_tiny
    from parity.run.options import RunOptions
    from parity.run.train import _quiet

    _quiet()
    m = materialize(resolve_recipe(args.recipe, OVERRIDES), args.data, 1, 8)
    opts = RunOptions(
        data=args.data, max_steps=args.steps, eval_samples=0, eval_rows=1, samples=128
    ).resolved()
    bare, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = build_tiny([m.tokenizer], 0, root / "init-model")
        for round_index in range(args.rounds):
            bare.append(bare_steps_per_second(m, opts, model_dir, root / f"bare-{round_index}"))
            ours.append(parity_steps_per_second(m, opts, model_dir, root / f"run-{round_index}"))
    best_bare, best_ours = max(bare), max(ours)
    overhead = best_bare / best_ours - 1
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"recipe {args.recipe}, {args.steps} steps, best of {args.rounds} rounds, tiny model")
    print(f"bare trl.SFTTrainer : {best_bare:.3f} steps/s  (rounds: {', '.join(f'{x:.3f}' for x in bare)})")
    print(f"parity run leg      : {best_ours:.3f} steps/s  (rounds: {', '.join(f'{x:.3f}' for x in ours)})")
    verdict = "within" if overhead <= TARGET else "over"
    print(f"overhead ratio      : {overhead:+.1%} ({verdict} the {TARGET:.0%} target)")
    print(f"peak RSS            : {peak_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
