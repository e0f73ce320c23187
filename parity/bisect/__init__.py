"""`parity bisect`: which differing axes explain the outcome gap between two recipes, measured on matched runs.

`bisect_pair("llmhalluc", "revise", design="adaptive")` is the library form of the command.
"""

from parity.bisect.pipeline import BisectResult, bisect_pair

__all__ = ["BisectResult", "bisect_pair"]
