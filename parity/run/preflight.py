"""Pre-flight: diff the aligned pair with every registered probe before any training.

A finding whose `align` axis was aligned means alignment failed; the rest is "what still differs".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parity.diff import DiffReport, diff_materialized
from parity.findings import Finding
from parity.materialize import Materialized
from parity.plan import table_world_sizes
from parity.probes import ProbeContext


@dataclass
class Preflight:
    """The diff of the aligned pair, split into failures (aligned axes) and what still differs."""

    report: DiffReport
    aligned: list[str]
    failed: list[Finding]
    remaining: list[Finding]

    def to_dict(self) -> dict[str, Any]:
        return {
            "aligned": self.aligned,
            "failed": [f.to_dict() for f in self.failed],
            "remaining": [f.to_dict() for f in self.remaining],
            "diff": self.report.to_dict(),
        }


class PreflightFailed(Exception):
    """Alignment left differences on an aligned axis (exit 1 unless --force)."""

    def __init__(self, preflight: Preflight, run_dir: Any) -> None:
        super().__init__(f"alignment failed: {len(preflight.failed)} finding(s) remain on aligned axes")
        self.preflight = preflight
        self.run_dir = run_dir


def preflight(a: Materialized, b: Materialized, aligned: list[str], world_size: int) -> Preflight:
    """Run every registered probe on the materialized aligned pair."""
    context = ProbeContext(world_sizes=table_world_sizes(world_size))
    report = diff_materialized(a, b, context=context)
    failed = [f for f in report.findings if f.align in aligned]
    remaining = [f for f in report.findings if f.align not in aligned]
    return Preflight(report, list(aligned), failed, remaining)
