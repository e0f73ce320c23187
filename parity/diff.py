"""`parity diff`: materialize two recipes and run every registered probe over the pair.

The report is deterministic: identical inputs give a byte-identical JSON (no timestamps, no absolute paths).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from parity.axes import AXES, parse_axes
from parity.errors import ParityError
from parity.findings import Finding, sort_findings
from parity.materialize import DEFAULT_SAMPLES, Materialized, materialize_pair
from parity.plain import plain
from parity.plan import held_world_sizes, table_world_sizes
from parity.probes import Probe, ProbeContext, ProbeResult, failed_probe, load_probes
from parity.process import cyclic_gc_paused
from parity.registry import resolve_recipe

SCHEMA_VERSION = 1


@dataclass
class DiffReport:
    """Findings and measured values of one diff."""

    a: str
    b: str
    context: dict[str, Any]
    findings: list[Finding] = field(default_factory=list)
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "a": self.a,
            "b": self.b,
            "context": plain(self.context),
            "findings": [f.to_dict() for f in self.findings],
            "probes": plain(self.probes),
        }


def diff_materialized(
    a: Materialized,
    b: Materialized,
    only: list[str] | None = None,
    context: ProbeContext | None = None,
    on_probe: Callable[[str], None] | None = None,
) -> DiffReport:
    """Run the selected probes (all by default) on an already materialized pair."""
    with cyclic_gc_paused():
        probes = load_probes()
        selected = only or [name for name in AXES if name in probes]
        context = context or ProbeContext()
        sizes = held_world_sizes(context.world_sizes, (a.recipe, b.recipe))
        if sizes != context.world_sizes:  # a captured recipe's table holds only its captured world sizes
            context = dataclasses.replace(context, world_sizes=sizes)
        report = DiffReport(
            a=a.recipe.name,
            b=b.recipe.name,
            context={
                **a.context,
                "world_sizes": list(context.world_sizes),
                "probes": selected,
                "a_origin": a.recipe.origin,
                "b_origin": b.recipe.origin,
                **_rows_limited(a, b),
            },
        )
        for name in selected:
            if on_probe:
                on_probe(name)
            result = run_probe(name, probes.get(name), a, b, context)
            report.findings.extend(result.findings)
            report.probes[name] = result.values
        report.findings = sort_findings(report.findings)
        return report


def run_probe(
    name: str, probe: Probe, a: Materialized, b: Materialized, context: ProbeContext
) -> ProbeResult:
    """One probe over the pair; a probe that raises becomes its axis's `probe_failed` finding, so the other
    probes still run (`PARITY_DEBUG=1` lets the exception through, with its traceback)."""
    try:
        return probe(a, b, context)
    except Exception as err:  # noqa: BLE001 - any failure of one probe is reported, never fatal to the diff
        if os.environ.get("PARITY_DEBUG") == "1":
            raise
        return failed_probe(name, err)


def run_diff(
    a_ref: str,
    b_ref: str,
    data: str | None = None,
    world_size: int = 1,
    samples: int | None = DEFAULT_SAMPLES,
    only: str | list[str] | None = None,
    set_a: Iterable[str] = (),
    set_b: Iterable[str] = (),
    show_example: int = 0,
    on_probe: Callable[[str], None] | None = None,
) -> DiffReport:
    """Resolve, materialize and diff two recipes: the library form of `parity diff` (data None: two captured
    recipes are compared on their own rows, paired by identity; other pairs on their task's synthetic rows)."""
    with cyclic_gc_paused():
        axes = parse_axes(only, load_probes().names())
        if samples is not None and samples < 1:
            raise ParityError(f"--samples must be a positive number or 'all', got {samples}")
        recipe_a = resolve_recipe(a_ref, list(set_a))
        recipe_b = resolve_recipe(b_ref, list(set_b))
        ma, mb = materialize_pair(recipe_a, recipe_b, data, world_size, samples)
        if show_example < 0 or show_example >= min(len(ma.data.train), len(mb.data.train)):
            raise ParityError(f"--show-example {show_example} is out of range")
        context = ProbeContext(world_sizes=table_world_sizes(world_size), show_example=show_example)
        return diff_materialized(ma, mb, axes, context, on_probe)


def _rows_limited(a: Materialized, b: Materialized) -> dict[str, list[str]]:
    """{'rows_limited': [...]} naming each captured recipe whose capture served fewer rows (`--rows`); else {}."""
    notes = [m.context["rows_limited"] for m in (a, b) if m.context.get("rows_limited")]
    return {"rows_limited": notes} if notes else {}
