"""`python -m parity.cli`: the same as the `parity` console script."""

from parity.cli.app import entry

entry()
