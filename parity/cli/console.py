"""Console helpers shared by the commands: one rich Console factory and one way to shorten a string.

Commands print through these; library modules return typed results and never print."""

from __future__ import annotations

from typing import Any


def console(soft_wrap: bool = False) -> Any:
    """A rich Console without syntax highlighting (long lines fold unless `soft_wrap`)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=soft_wrap)


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in '...' when it was longer."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
