"""Run-to-run noise from repeated baselines, intervals of effects, shares of the gap and the interaction term.

Every effect is the difference of two runs with the same data-order seed; its noise is estimated by the spread
of the baseline gap A - B over K seeds (sigma, K - 1 degrees of freedom): 95% interval effect +- t * sigma.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)
"""Two-sided 95% Student t quantiles for 1..10 degrees of freedom (1.96 beyond 30, interpolated between)."""


def t_quantile(dof: int) -> float:
    if dof < 1:
        raise ValueError("t quantile needs at least one degree of freedom")
    if dof <= len(T_975):
        return T_975[dof - 1]
    return 1.96 + (2.228 - 1.96) * max(0.0, (30 - dof) / 20)


@dataclass(frozen=True)
class Noise:
    """Standard deviation of a difference between two runs sharing a data-order seed (None with one seed)."""

    sigma: float | None
    dof: int
    seeds: int
    values: dict[str, list[float]]
    """Metric of each baseline leg ('a', 'b') per seed; their differences are the gaps sigma is taken from."""

    @property
    def t(self) -> float | None:
        return t_quantile(self.dof) if self.dof else None

    def halfwidth(self, runs_combined: float = 2.0) -> float:
        """95% half-width of a sum of runs whose squared coefficients add to `runs_combined` (2: a difference)."""
        if self.sigma is None or self.t is None:
            return 0.0
        return self.t * self.sigma * math.sqrt(runs_combined / 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seeds": self.seeds,
            "sigma": self.sigma,
            "dof": self.dof,
            "effect_halfwidth": self.halfwidth() if self.sigma is not None else None,
            "baseline": self.values,
        }


def paired_noise(values: dict[str, Sequence[float]]) -> Noise:
    """Noise of a same-seed difference from the baseline legs 'a' and 'b' repeated over the same seeds: the
    sample standard deviation of the per-seed gaps a[k] - b[k]."""
    plain = {leg: [float(x) for x in v] for leg, v in values.items()}
    gaps = [a - b for a, b in zip(plain["a"], plain["b"], strict=True)]
    if len(gaps) < 2:
        return Noise(None, 0, len(gaps), plain)
    return Noise(statistics.stdev(gaps), len(gaps) - 1, len(gaps), plain)


def interval(value: float, halfwidth: float) -> list[float]:
    return [value - halfwidth, value + halfwidth]


def within(value: float, halfwidth: float) -> bool:
    """Indistinguishable from zero: the interval contains 0 (exactly 0 with no noise estimate)."""
    return abs(value) <= halfwidth


def share(effect: float, total: float) -> float | None:
    return effect / total if total else None


def interaction(explained: float, effects: Sequence[float], noise: Noise) -> dict[str, Any]:
    """What the per-axis (or per-group) effects leave out of the gap that aligning everything removes.

    For one-at-a-time and leave-one-out with k effects the term combines k + 2 runs with squared coefficients
    summing to k^2 - k + 2 (treated as independent differences: a conservative width)."""
    k = len(effects)
    value = explained - sum(effects)
    halfwidth = noise.halfwidth(k * k - k + 2)
    return {
        "explained_by_all": explained,
        "sum_of_effects": sum(effects),
        "value": value,
        "interval": interval(value, halfwidth),
        "share": share(value, explained),
        "axes_interact": not within(value, halfwidth),
    }
