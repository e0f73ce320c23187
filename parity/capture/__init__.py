"""`parity capture`: measure a recipe by running its own code up to the construction of its trainer.

Capturing EXECUTES the recipe's code (in a subprocess, in a temporary copy of the checkout, offline), in
parity's interpreter, a given one, or the checkout's pinned environment (parity.capture.environment)."""

from parity.capture.options import CaptureOptions
from parity.capture.pipeline import CaptureError, CaptureResult, capture
from parity.capture.reader import CapturedRecipe, load_capture

__all__ = ["CaptureError", "CaptureOptions", "CaptureResult", "CapturedRecipe", "capture", "load_capture"]
