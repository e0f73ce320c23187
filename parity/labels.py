"""The label value the loss ignores, shared by TRL's preparation and its fast path.

transformers' and TRL's convention: positions labelled IGNORE_INDEX carry no loss.
"""

IGNORE_INDEX = -100
