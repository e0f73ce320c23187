"""Entry point of one leg under `accelerate launch -m parity.run.worker SPEC.json` (multi-GPU runs).

Exit 0: the leg finished; 3: it stopped before its last step (resume with --resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

from parity.run.train import LegSpec, execute_leg

INTERRUPTED_EXIT = 3


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m parity.run.worker LEG_SPEC.json", file=sys.stderr)
        return 2
    spec = LegSpec.from_json(Path(args[0]).read_text(encoding="utf-8"))
    result = execute_leg(spec)
    return 0 if result["completed"] else INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
