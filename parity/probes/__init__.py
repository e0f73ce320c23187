"""Probe registry and protocol: a probe measures each recipe, then compares the two measurements.

A probe module has `measure(m, ...) -> dict` (decorated with `@measurement("name")`: computed once per
materialized recipe), `compare(a, b, va, vb, ctx) -> ProbeResult` whose findings come from a
`FindingMaker` for its axis, and `probe(a, b, ctx)` registered with `@PROBES.register("name")`.
Adding a probe is one such module here; it touches no other probe.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from parity.axes import default_align
from parity.findings import Finding
from parity.materialize import Materialized
from parity.plan import TABLE_WORLD_SIZES
from parity.registries import Registry


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


def measurement(probe: str) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Decorator for a probe's `measure(m, *args)`: what it measures on one recipe, computed once per
    materialized recipe and arguments (cached on `m.measurements`). Callers must not mutate the result."""

    def decorator(measure: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        @functools.wraps(measure)
        def cached(m: Materialized, *args: Any) -> dict[str, Any]:
            key = (probe, *(_hashable(arg) for arg in args))
            if key not in m.measurements:
                m.measurements[key] = measure(m, *args)
            return m.measurements[key]

        return cached

    return decorator


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    return value


_TABLE_DEFAULT: Any = object()


@dataclass(frozen=True)
class FindingMaker:
    """Builds the findings of one probe axis; the align axis comes from the axis table unless a finding names
    another one (or None: nothing aligns it)."""

    axis: str

    def __call__(
        self,
        key: str,
        severity: str,
        a: Any,
        b: Any,
        summary: str,
        evidence: dict[str, Any] | None = None,
        *,
        align: str | None = _TABLE_DEFAULT,
    ) -> Finding:
        chosen = default_align(self.axis) if align is _TABLE_DEFAULT else align
        return Finding(self.axis, key, severity, a, b, summary, evidence or {}, chosen)


def side_values(va: dict[str, Any], vb: dict[str, Any], keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Evidence of a finding: the named measured values of each side, {'a': {key: value}, 'b': {...}}."""
    keys = tuple(keys)
    return {side: {k: v[k] for k in keys} for side, v in (("a", va), ("b", vb))}


def recipes_lacking_the_row(va: dict[str, Any], vb: dict[str, Any], name_a: str, name_b: str) -> list[str]:
    """Names of the recipes whose measured example is not the shared raw row (a capture that lacks it)."""
    return [name for name, v in ((name_a, va), (name_b, vb)) if not v["example_same_row"]]


def compare_on_example(
    a: Materialized,
    b: Materialized,
    ctx: ProbeContext,
    measure: Callable[[Materialized, dict[str, str]], dict[str, Any]],
    compare: Callable[[Materialized, Materialized, dict, dict, ProbeContext], ProbeResult],
) -> ProbeResult:
    """Measure both recipes on raw train row `ctx.show_example` and compare, with the template clock frozen."""
    from parity.rendering import CLOCKS, frozen_clock

    row = a.raw.train[ctx.show_example]
    with frozen_clock(CLOCKS[0]):
        return compare(a, b, measure(a, row), measure(b, row), ctx)


def failed_probe(axis: str, error: BaseException) -> ProbeResult:
    """What a probe that raised reports: one high `<axis>.probe_failed` finding with the error line and where it
    was raised (nothing else of that axis is measured; the other probes are unaffected)."""
    line = error_line(error)
    where = raised_at(error)
    finding = FindingMaker(axis)(
        f"{axis}.probe_failed",
        "high",
        None,
        None,
        f"the {axis} probe failed, so nothing on this axis was measured: {line}",
        {"error": line, "raised_at": where},
        align=None,
    )
    return ProbeResult(findings=[finding], values={"probe_failed": {"error": line, "raised_at": where}})


def error_line(error: BaseException) -> str:
    """`Type: first line of the message` (the type alone for an empty message)."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def raised_at(error: BaseException) -> str:
    """`module path:line in function` of the innermost frame of the traceback, relative to its package root
    (no absolute paths: reports stay byte-identical across machines)."""
    import traceback

    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "unknown"
    frame = frames[-1]
    parts = frame.filename.replace("\\", "/").split("/")
    for root in ("site-packages", "parity"):
        if root in parts[:-1]:
            index = len(parts) - 1 - parts[::-1].index(root)
            parts = parts[index + (1 if root == "site-packages" else 0) :]
            break
    else:
        parts = parts[-1:]
    return f"{'/'.join(parts)}:{frame.lineno} in {frame.name}"


Probe = Callable[[Materialized, Materialized, ProbeContext], ProbeResult]
PROBES: Registry[Probe] = Registry("probe")


def load_probes() -> Registry[Probe]:
    """Import every module in parity/probes so each registers itself."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return PROBES
