"""`python -m parity.capture ... -- COMMAND`: the capture command without the rest of the CLI."""

from parity.capture.command import app

app()(prog_name="parity capture")
