"""Conversion of library objects (enums, sets, dataclasses) to plain JSON/YAML-ready values."""

from __future__ import annotations

import dataclasses
import enum
import math
from pathlib import PurePath
from typing import Any


def plain(value: Any) -> Any:
    """A JSON-ready version of value with a stable order (sets sorted, enums by value)."""
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, PurePath):
        return str(value)
    return repr(value)


MASKED_FIELDS = {"hub_token"}


def config_values(config: Any) -> dict[str, Any]:
    """Every dataclass field of a library config object (SFTConfig, LoraConfig) as plain values."""
    return {
        f.name: "<masked>" if f.name in MASKED_FIELDS else plain(getattr(config, f.name))
        for f in dataclasses.fields(config)
    }
