"""parity: a differential reproduction harness for LLM fine-tuning recipes."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`parity.load` is imported on first use (it pulls in pandas)."""
    if name == "load":
        from parity.results import load

        globals()["load"] = load
        return load
    raise AttributeError(f"module 'parity' has no attribute {name!r}")
