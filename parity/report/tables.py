"""Shared report helpers: short value rendering and side-by-side scalar tables from probe values."""

from __future__ import annotations

import json
from typing import Any

from parity.findings import SEVERITIES

LIST_HEAD, LIST_TAIL = 6, 2
"""Items kept at the start and the end of an elided list."""


def short(value: Any, limit: int = 80) -> str:
    """A one-line rendering of a value, shortened in the middle if long; a long list keeps its first and last
    items and says how many it leaves out."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, list) and len(text) > limit and len(value) > LIST_HEAD + LIST_TAIL:
        text = elided_list(value)
    text = text.replace("\n", "⏎")
    if len(text) <= limit:
        return text
    half = (limit - 1) // 2
    return text[:half] + "…" + text[-half:]


def elided_list(values: list[Any]) -> str:
    """`[a, b, c, d, e, f, … 90 more …, y, z]`: a long list with the count of the items left out."""
    dump = [json.dumps(v, ensure_ascii=False) for v in values]
    hidden = len(values) - LIST_HEAD - LIST_TAIL
    return "[" + ", ".join(dump[:LIST_HEAD] + [f"… {hidden} more …"] + dump[-LIST_TAIL:]) + "]"


def severity_counts(findings: list[dict]) -> dict[str, int]:
    return {s: sum(1 for f in findings if f["severity"] == s) for s in SEVERITIES}


def scalar_rows(values: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, a, b) for every scalar measured on both sides of a probe's values (nested keys dotted)."""
    a, b = values.get("a"), values.get("b")
    if not isinstance(a, dict) or not isinstance(b, dict):
        return []
    rows = []
    for key in a:
        if key in b and _is_scalar(a[key]) and _is_scalar(b[key]):
            rows.append((key, a[key], b[key]))
        elif isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            rows += [(f"{key}.{k}", va, vb) for k, va, vb in scalar_rows({"a": a[key], "b": b[key]})]
    return rows


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def align_suggestion(findings: list[dict]) -> list[str]:
    """The align axes that would remove the findings, most severe first, unique."""
    seen: list[str] = []
    for finding in findings:
        axis = finding.get("align")
        if axis and axis not in seen:
            seen.append(axis)
    return seen
