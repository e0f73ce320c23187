"""Locators for facts derived from code rather than written as one value: a snippet present, or absent."""

from __future__ import annotations

import re
from typing import Any

from parity.refs.locators import locator
from parity.refs.source import Located, SourceFile


def _snippets(spec: dict[str, Any]) -> list[str]:
    return [spec["text"]] if isinstance(spec["text"], str) else list(spec["text"])


def _find_snippet(source: SourceFile, snippet: str) -> re.Match | None:
    """Find a snippet, any run of whitespace in it matching any run in the file."""
    return re.search(r"\s+".join(map(re.escape, snippet.split())), source.text)


@locator("source_contains", "text", "means")
def source_contains(source: SourceFile, spec: dict[str, Any]) -> Located:
    """`means` while every snippet in `text` is present; a snippet gone is drift (found: None)."""
    first_line = None
    for snippet in _snippets(spec):
        match = _find_snippet(source, snippet)
        if match is None:
            return Located(None, None, f"snippet gone: {snippet!r}")
        first_line = first_line or source.line_of(match.start())
    return Located(spec["means"], first_line)


@locator("source_absent", "text", "means")
def source_absent(source: SourceFile, spec: dict[str, Any]) -> Located:
    """`means` while no snippet in `text` appears; one that appears is drift (found: its line)."""
    for snippet in _snippets(spec):
        match = _find_snippet(source, snippet)
        if match is not None:
            line = source.line_of(match.start())
            return Located(
                source.text.splitlines()[line - 1].strip(), line, f"unexpected snippet: {snippet!r}"
            )
    return Located(spec["means"], None)
