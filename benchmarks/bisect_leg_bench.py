"""CPU seconds per leg of the default bisect (llmhalluc vs revise, proxy, 8 steps, micro-batch 16), with TRL's
dataset preparation shared across legs (as `parity bisect` runs) and without; the losses of the two must be equal.
Runs on demand (not in tests): `python benchmarks/bisect_leg_bench.py [--legs b:0,b:1,a:0,a:1]`."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def legs_cpu(out: Path, legs: list[str], shared: bool) -> tuple[list[dict], float]:
    """Train the unaligned legs (side:seed) in order in this process; CPU and wall seconds and losses of each, and
    the CPU seconds of TRL's preparation the shared memo saved."""
    from parity.bisect.designs import NONE
    from parity.bisect.pipeline import PROXY_MICRO_BATCH
    from parity.bisect.runs import RunCache
    from parity.run.options import RunOptions

    opts = RunOptions(model="proxy", max_steps=8, micro_batch=PROXY_MICRO_BATCH, eval_samples=0).resolved()
    cache = RunCache("llmhalluc", "revise", opts, out, [], [])
    if not shared:
        cache._prepared = lambda: None
    cache.prepare_model([NONE])
    rows = []
    for leg in legs:
        side, seed = leg.split(":")
        shutil.rmtree(out / "runs" / cache.key(side, NONE, int(seed)), ignore_errors=True)
        cpu, wall = time.process_time(), time.perf_counter()
        run = cache.leg(side, NONE, int(seed))
        rows.append(
            {
                "leg": leg,
                "cpu_s": round(time.process_time() - cpu, 2),
                "wall_s": round(time.perf_counter() - wall, 2),
                "losses": [r["loss"] for r in run.curve],
                "eval_loss": run.metrics["eval_loss"],
            }
        )
    return rows, cache.prepared.saved_cpu_s if cache.prepared else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--legs", default="b:0,b:1,b:2,a:0,a:1")
    args = parser.parse_args()
    from parity.run.train import _quiet

    _quiet()
    legs = args.legs.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        before, _ = legs_cpu(Path(tmp) / "plain", legs, shared=False)
        after, saved = legs_cpu(Path(tmp) / "shared", legs, shared=True)
    print(
        f"{'leg':6} {'CPU-s (TRL prepares every leg)':>32} {'CPU-s (shared preparation)':>28}  losses equal"
    )
    for one, two in zip(before, after, strict=True):
        same = one["losses"] == two["losses"] and one["eval_loss"] == two["eval_loss"]
        print(f"{one['leg']:6} {one['cpu_s']:>32} {two['cpu_s']:>28}  {same}")
    print(f"TRL preparation CPU-s saved by the shared memo over these legs: {saved:.2f}")
    print(json.dumps({"plain": before, "shared": after}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
