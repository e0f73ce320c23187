"""`parity run`: matched training runs of two recipes, with chosen axes aligned, a pre-flight diff and a report.

`run_pair("llmhalluc", "revise", align="batch,template", max_steps=30)` is the library form of the command.
"""

from parity.run.options import RunOptions
from parity.run.pipeline import Hooks, RunInterrupted, RunSummary, run_pair
from parity.run.preflight import Preflight, PreflightFailed

__all__ = ["Hooks", "Preflight", "PreflightFailed", "RunInterrupted", "RunOptions", "RunSummary", "run_pair"]
