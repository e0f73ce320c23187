"""How pinned and found values compare: shell words read as YAML scalars, numbers by value, bools strictly."""

from __future__ import annotations

import math
import re
from typing import Any

_INT_WORD = re.compile(r"[-+]?\d+")
_FLOAT_WORD = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def scalar(word: str) -> Any:
    """A shell word or untyped string as YAML 1.2 would read it: int, float (1e-4 too), true/false, else str."""
    if _INT_WORD.fullmatch(word):
        return int(word)
    if _FLOAT_WORD.fullmatch(word):
        return float(word)
    if word.lower() in ("true", "false"):
        return word.lower() == "true"
    return word


def _coerce_towards(value: Any, other: Any) -> Any:
    if isinstance(value, str) and isinstance(other, bool | int | float):
        return scalar(value)
    return value


def values_equal(expected: Any, found: Any) -> bool:
    """Pinned vs found: numbers by value (1e-4 == 0.0001), bools only equal bools, containers recursively."""
    expected, found = _coerce_towards(expected, found), _coerce_towards(found, expected)
    if isinstance(expected, bool) or isinstance(found, bool):
        return isinstance(expected, bool) and isinstance(found, bool) and expected == found
    if isinstance(expected, int | float) and isinstance(found, int | float):
        return math.isclose(expected, found, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(expected, dict) and isinstance(found, dict):
        return expected.keys() == found.keys() and all(values_equal(expected[k], found[k]) for k in expected)
    if isinstance(expected, list | tuple) and isinstance(found, list | tuple):
        return len(expected) == len(found) and all(map(values_equal, expected, found))
    return expected == found
