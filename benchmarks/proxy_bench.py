"""Per-step cost of a matched-run leg: `--model proxy` (compact vocabulary) vs `--model tiny` (128,256 rows).
Runs on demand (not in tests): both legs of the built-in pair, same data, batches and steps; prints the ratio.
Cost is CPU seconds of the training loop (all threads), so other load on the machine does not skew the ratio."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu_clock():
    """A TrainerCallback reading the process CPU time at the start and end of trainer.train()."""
    from transformers import TrainerCallback

    class CpuClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.process_time()

        def on_train_end(self, args, state, control, **kwargs):
            self.seconds = time.process_time() - self.start

    return CpuClock()


def seconds_per_step(m, opts, model_dir: Path, run_dir: Path, leg: str) -> tuple[float, float, float | None]:
    """CPU and wall seconds per optimizer step of one leg through execute_leg, and its final shared eval loss."""
    from parity.run.train import execute_leg, leg_spec

    spec = leg_spec(leg, run_dir, run_dir / f"{leg}.recipe.yaml", opts, str(model_dir), True)
    clock = cpu_clock()
    result = execute_leg(spec, m, [clock])
    steps = result["global_step"]
    return clock.seconds / steps, result["train_seconds"] / steps, result["final_eval_loss"].get("shared")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--a", default="llmhalluc")
    parser.add_argument("--b", default="revise")
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument(
        "--micro-batch", type=int, default=None, help="per-device micro-batch (CPU default 2)"
    )
    parser.add_argument("--models", default="tiny,proxy", help="which models to time, comma-separated")
    args = parser.parse_args()

    from parity.materialize import materialize
    from parity.registry import resolve_recipe
    from parity.run.model import build_tiny
    from parity.run.options import RunOptions
    from parity.run.proxy import build_proxy
    from parity.run.proxy_vocab import proxy_vocab
    from parity.run.train import _quiet

    _quiet()
    ms = {
        leg: materialize(resolve_recipe(ref), args.data, 1, 8) for leg, ref in (("a", args.a), ("b", args.b))
    }
    opts = RunOptions(
        data=args.data, max_steps=args.steps, eval_samples=0, eval_rows=8, micro_batch=args.micro_batch
    ).resolved()
    wanted = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        vocab = proxy_vocab(ms.values(), opts)
        models = {}
        if "tiny" in wanted:
            models["tiny"] = build_tiny([m.tokenizer for m in ms.values()], 0, root / "tiny")
        if "proxy" in wanted:
            models["proxy"] = build_proxy(ms["a"].tokenizer, vocab, 0, root / "proxy")
        print(
            f"{args.a} vs {args.b}, {args.steps} steps per leg, data {args.data}, micro-batch {opts.micro_batch}"
        )
        print(
            f"proxy vocabulary: {len(vocab.ids)} ids + {vocab.spare} spare rows (tiny: {len(ms['a'].tokenizer)})"
        )
        for leg, m in ms.items():
            cost = {}
            for name, model_dir in models.items():
                cost[name] = seconds_per_step(m, opts, model_dir, root / f"{name}-{leg}", leg)
            for name, (cpu_s, wall_s, loss) in cost.items():
                print(
                    f"leg {leg.upper()} {m.recipe.name:<10} {name:<5} {cpu_s:7.2f} CPU-s/step "
                    f"({wall_s:.2f} s wall), final shared eval loss {loss:.3f}"
                )
            if len(cost) < 2:
                continue
            print(
                f"leg {leg.upper()} {m.recipe.name:<10} tiny / proxy: {cost['tiny'][0] / cost['proxy'][0]:.1f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
