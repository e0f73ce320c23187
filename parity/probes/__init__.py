"""Probe registry: a probe is a pure function of two materialized recipes returning findings and values.

Adding a probe is one module here with `@register_probe("name")`; it touches no other probe.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parity.findings import Finding
from parity.materialize import Materialized
from parity.plan import TABLE_WORLD_SIZES


@dataclass(frozen=True)
class ProbeContext:
    """Options shared by all probes of one diff."""

    world_sizes: tuple[int, ...] = TABLE_WORLD_SIZES
    show_example: int = 0
    """Index of the example rendered token by token (tokens, loss_mask)."""


@dataclass
class ProbeResult:
    """What one probe measured: findings plus values for the report (probes.<name> in JSON)."""

    findings: list[Finding] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


Probe = Callable[[Materialized, Materialized, ProbeContext], ProbeResult]
PROBES: dict[str, Probe] = {}


def register_probe(name: str) -> Callable[[Probe], Probe]:
    """Register a probe under its axis name."""

    def decorator(fn: Probe) -> Probe:
        if name in PROBES:
            raise ValueError(f"probe {name!r} registered twice")
        PROBES[name] = fn
        return fn

    return decorator


def load_probes() -> dict[str, Probe]:
    """Import every module in parity/probes so each registers itself."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return PROBES
