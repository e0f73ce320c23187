"""The `parity` command line: one module per command; they parse arguments, call the library and print.

Bad input is one line on stderr and exit code 2, never a traceback. The console script is `parity.cli:entry`.
"""

from parity.cli.app import app, entry, main

__all__ = ["app", "entry", "main"]
