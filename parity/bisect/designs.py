"""Which aligned axis sets a bisect design measures, and each axis's effect from the measured metric values.

Pure: `measure(aligned_set) -> metric of leg A with that set aligned to B`; the caller caches and trains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

DESIGNS = ("one-at-a-time", "leave-one-out", "adaptive")
Measure = Callable[[frozenset[str]], float]
NONE: frozenset[str] = frozenset()


@dataclass
class AxisEffect:
    """How much of the gap aligning an axis removes; `group` > 1 axis when only the group was measured."""

    name: str
    effect: float
    group: tuple[str, ...]
    with_set: frozenset[str]
    """Aligned set whose run gives the effect (compared against `against`)."""
    against: frozenset[str]

    @property
    def resolved(self) -> bool:
        return len(self.group) == 1


@dataclass
class DesignResult:
    """Every set measured (in order) with its metric, and the per-axis effects."""

    design: str
    measured: dict[frozenset[str], float] = field(default_factory=dict)
    effects: dict[str, AxisEffect] = field(default_factory=dict)


def _measured(measure: Measure, result: DesignResult) -> Measure:
    def get(aligned: frozenset[str]) -> float:
        if aligned not in result.measured:
            result.measured[aligned] = measure(aligned)
        return result.measured[aligned]

    return get


def one_at_a_time(axes: Sequence[str], measure: Measure) -> DesignResult:
    """effect(axis) = metric(nothing aligned) - metric(only axis aligned); all-aligned measures the residual."""
    result = DesignResult("one-at-a-time")
    get = _measured(measure, result)
    base = get(NONE)
    for axis in axes:
        one = frozenset([axis])
        result.effects[axis] = AxisEffect(axis, base - get(one), (axis,), one, NONE)
    get(frozenset(axes))
    return result


def leave_one_out(axes: Sequence[str], measure: Measure) -> DesignResult:
    """effect(axis) = metric(all but axis aligned) - metric(all aligned): the gap left by that axis alone."""
    result = DesignResult("leave-one-out")
    get = _measured(measure, result)
    get(NONE)
    every = frozenset(axes)
    full = get(every)
    for axis in axes:
        rest = every - {axis}
        result.effects[axis] = AxisEffect(axis, get(rest) - full, (axis,), rest, every)
    return result


def adaptive(axes: Sequence[str], measure: Measure, threshold: float) -> DesignResult:
    """Binary splitting like `git bisect`: a group whose alignment moves the metric by more than `threshold`
    is split in halves and each half measured; a group within the threshold is reported as a group.

    A single dominant axis among n costs 2 + 2*log2(n) runs (nothing aligned, all aligned, two per level)."""
    result = DesignResult("adaptive")
    get = _measured(measure, result)
    base = get(NONE)

    def visit(group: tuple[str, ...]) -> None:
        aligned = frozenset(group)
        effect = base - get(aligned)
        if abs(effect) <= threshold or len(group) == 1:
            for axis in group:
                result.effects[axis] = AxisEffect(axis, effect, group, aligned, NONE)
            return
        half = (len(group) + 1) // 2
        visit(group[:half])
        visit(group[half:])

    if axes:
        visit(tuple(axes))
    return result


def run_design(design: str, axes: Sequence[str], measure: Measure, threshold: float = 0.0) -> DesignResult:
    if design == "one-at-a-time":
        return one_at_a_time(axes, measure)
    if design == "leave-one-out":
        return leave_one_out(axes, measure)
    if design == "adaptive":
        return adaptive(axes, measure, threshold)
    raise ValueError(f"unknown design {design!r}")
