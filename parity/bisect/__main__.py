"""`python -m parity.bisect ...`: the bisect command on parity's CLI (its error handling and exit codes)."""

from __future__ import annotations

import sys

from parity.bisect.command import bisect_command
from parity.cli import app, main

app.command("bisect", help=bisect_command.__doc__)(bisect_command)

if __name__ == "__main__":
    sys.exit(main(["bisect", *sys.argv[1:]]))
