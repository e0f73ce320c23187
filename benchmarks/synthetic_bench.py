"""Time the synthetic GSM8K-format generator on 10,000 rows (best of 5).
Reports only: the exit code is always 0."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from parity.tasks.gsm8k.synthetic import generate_rows  # noqa: E402

ROWS = 10_000
REPEATS = 5
TARGET_S = 1.0


def best_time(rows: int = ROWS, repeats: int = REPEATS) -> float:
    """Best wall time in seconds over `repeats` calls of generate_rows(rows)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        generate_rows(rows)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    """Print the timing line."""
    seconds = best_time()
    print(
        f"synthetic: {ROWS} rows in {seconds:.3f} s (target < {TARGET_S} s, ratio {seconds / TARGET_S:.2f} of target)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
