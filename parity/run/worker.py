"""Entry point of one leg under `accelerate launch -m parity.run.worker SPEC.json` (multi-GPU runs).

Exit 0: the leg finished; 2: bad input (one `parity: error:` line, which the launching command repeats); 3: it
stopped before its last step (resume with --resume).
"""

from __future__ import annotations

import sys
from pathlib import Path

from parity.errors import ParityError
from parity.run.train import LegSpec, execute_leg

INTERRUPTED_EXIT = 3
ERROR_PREFIX = "parity: error: "


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m parity.run.worker LEG_SPEC.json", file=sys.stderr)
        return 2
    spec = LegSpec.from_json(Path(args[0]).read_text(encoding="utf-8"))
    try:
        result = execute_leg(spec)
    except ParityError as err:
        print(f"{ERROR_PREFIX}{err}", file=sys.stderr, flush=True)
        return 2
    return 0 if result["completed"] else INTERRUPTED_EXIT


if __name__ == "__main__":
    sys.exit(main())
