"""Findings: one measured difference between two recipes, with severity, evidence and the align axis.

Severity rules (documented in README): a difference in what tokens carry loss, the effective batch, the
data content, the answer format or the trained parameters is `high`; one that changes optimisation or
selection but not the data (schedule shape, eval cadence, precision) is `medium`; cosmetic or
run-management differences are `low`; measured facts that do not change training are `info`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from parity.axes import AXES
from parity.plain import plain

__all__ = ["AXES", "SEVERITIES", "Finding", "at_or_above", "sort_findings"]

SEVERITIES = ("high", "medium", "low", "info")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


@dataclass(frozen=True)
class Finding:
    """One difference between recipe A and recipe B."""

    axis: str
    key: str
    severity: str
    a: Any
    b: Any
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    align: str | None = None
    """The `parity run --align` axis that removes this difference, or None if none does."""

    def __post_init__(self) -> None:
        if self.axis not in AXES:
            raise ValueError(f"unknown axis {self.axis!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "key": self.key,
            "severity": self.severity,
            "a": plain(self.a),
            "b": plain(self.b),
            "summary": self.summary,
            "evidence": plain(self.evidence),
            "align": self.align,
        }


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Highest severity first, then by axis order and key (stable, for byte-identical reports)."""
    return sorted(findings, key=lambda f: (SEVERITY_RANK[f.severity], AXES.index(f.axis), f.key))


def at_or_above(findings: list[Finding], severity: str) -> list[Finding]:
    """Findings whose severity is `severity` or higher."""
    limit = SEVERITY_RANK[severity]
    return [f for f in findings if SEVERITY_RANK[f.severity] <= limit]
