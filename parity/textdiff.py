"""Diff helpers shared by the probes: character diffs with whitespace made visible, token alignments.
Both use difflib.SequenceMatcher with autojunk off, so long sequences align exactly."""

from __future__ import annotations

from collections.abc import Sequence
from difflib import SequenceMatcher
from typing import Any

VISIBLE = {"\n": "⏎", " ": "·", "\t": "→", "\r": "␍"}
"""How whitespace is shown in evidence."""
MAX_OPS = 40


def visible(text: str) -> str:
    """Text with newlines, spaces, tabs and carriage returns replaced by visible marks."""
    return "".join(VISIBLE.get(ch, ch) for ch in text)


def char_diff(a: str, b: str, limit: int = MAX_OPS) -> list[dict[str, Any]]:
    """The non-equal operations that turn `a` into `b`, with character positions and visible text."""
    ops = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        ops.append(
            {"op": tag, "a_pos": [i1, i2], "b_pos": [j1, j2], "a": visible(a[i1:i2]), "b": visible(b[j1:j2])}
        )
    return ops[:limit]


def _common_prefix(a: Sequence, b: Sequence) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def edge_notes(a: str, b: str, name_a: str, name_b: str) -> list[str]:
    """Plain-language notes on leading/trailing whitespace that differs, e.g. "A ends with an extra '\\n'"."""
    notes = []
    edges_a, edges_b = whitespace_edges(a), whitespace_edges(b)
    for side, verb in (("leading", "starts"), ("trailing", "ends")):
        wa, wb = edges_a[side], edges_b[side]
        if wa == wb:
            continue
        if side == "leading" and wa.endswith(wb) or side == "trailing" and wa.startswith(wb):
            extra = wa[: len(wa) - len(wb)] if side == "leading" else wa[len(wb) :]
            notes.append(f"{name_a} {verb} with an extra {extra!r}")
        elif side == "leading" and wb.endswith(wa) or side == "trailing" and wb.startswith(wa):
            extra = wb[: len(wb) - len(wa)] if side == "leading" else wb[len(wa) :]
            notes.append(f"{name_b} {verb} with an extra {extra!r}")
        else:
            notes.append(f"{name_a} {verb} with {wa!r}, {name_b} with {wb!r}")
    return notes


def whitespace_edges(text: str) -> dict[str, str]:
    """The leading and trailing whitespace of a text."""
    return {"leading": text[: len(text) - len(text.lstrip())], "trailing": text[len(text.rstrip()) :]}


def first_difference(a: Sequence, b: Sequence) -> int | None:
    """Index of the first position where two sequences differ (None when equal)."""
    n = _common_prefix(a, b)
    return None if n == len(a) == len(b) else n


def token_alignment(
    ids_a: Sequence[int],
    ids_b: Sequence[int],
    tokens_a: Sequence[str],
    tokens_b: Sequence[str],
    limit: int = MAX_OPS,
) -> list[dict[str, Any]]:
    """The non-equal operations aligning two token id sequences, each with ids and token strings."""
    ops = []
    matcher = SequenceMatcher(None, list(ids_a), list(ids_b), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        ops.append(
            {
                "op": tag,
                "a_pos": [i1, i2],
                "b_pos": [j1, j2],
                "a_ids": list(ids_a[i1:i2]),
                "b_ids": list(ids_b[j1:j2]),
                "a_tokens": list(tokens_a[i1:i2]),
                "b_tokens": list(tokens_b[j1:j2]),
            }
        )
    return ops[:limit]


def pair_names(name_a: str, name_b: str) -> tuple[str, str]:
    """Names that tell the two recipes apart in summaries ('A (x)'/'B (x)' when both are called x)."""
    return (name_a, name_b) if name_a != name_b else (f"A ({name_a})", f"B ({name_b})")
