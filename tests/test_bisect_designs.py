"""Bisect designs and statistics on synthetic metric functions (pure, instant): which sets each design measures,
the effects it reports, the adaptive search's run count, noise pooling, intervals and the interaction term."""

from __future__ import annotations

import math
import statistics

import pytest

from parity.bisect.designs import NONE, adaptive, leave_one_out, one_at_a_time, run_design
from parity.bisect.stats import interaction, paired_noise, t_quantile

AXES8 = ("batch", "template", "prompt", "data", "loss_mask", "schedule", "optim", "peft")


def planted(weights: dict[str, float], base: float = 10.0, pairs: dict[frozenset, float] | None = None):
    """metric(aligned) = base - sum of the aligned axes' weights (- an interaction bonus for aligned pairs)."""
    calls: list[frozenset[str]] = []

    def measure(aligned: frozenset[str]) -> float:
        calls.append(aligned)
        value = base - sum(weights.get(axis, 0.0) for axis in aligned)
        for pair, bonus in (pairs or {}).items():
            if pair <= aligned:
                value -= bonus
        return value

    return measure, calls


@pytest.mark.parametrize("planted_axis", AXES8)
def test_adaptive_finds_one_planted_axis_among_eight_in_at_most_eight_runs(planted_axis):
    measure, calls = planted({planted_axis: 1.5})
    result = adaptive(AXES8, measure, threshold=0.1)
    assert len(calls) == len(set(calls)) == len(result.measured) <= 2 * math.log2(8) + 2
    assert len(result.measured) == 8
    found = [e for e in result.effects.values() if e.resolved and abs(e.effect) > 0.1]
    assert [(e.name, e.effect) for e in found] == [(planted_axis, 1.5)]
    others = [e for e in result.effects.values() if e.name != planted_axis]
    assert all(abs(e.effect) <= 0.1 for e in others)


def test_adaptive_splits_down_to_each_dominant_axis_and_groups_the_rest():
    measure, _ = planted({"template": 2.0, "optim": -1.0, "peft": 0.01})
    result = adaptive(AXES8, measure, threshold=0.1)
    assert result.effects["template"].effect == 2.0 and result.effects["template"].group == ("template",)
    assert result.effects["optim"].effect == -1.0 and result.effects["optim"].group == ("optim",)
    assert result.effects["peft"].group == ("peft",) and result.effects["peft"].effect == pytest.approx(0.01)
    assert result.effects["batch"].group == ("batch",) and result.effects["batch"].effect == 0.0
    assert result.effects["data"].group == ("prompt", "data")
    assert result.effects["schedule"].group == ("loss_mask", "schedule")
    assert len(result.measured) == 12


def test_adaptive_with_nothing_above_the_threshold_measures_two_sets():
    measure, _ = planted({"batch": 0.01})
    result = adaptive(AXES8, measure, threshold=0.1)
    assert list(result.measured) == [NONE, frozenset(AXES8)]
    assert {e.group for e in result.effects.values()} == {AXES8}


def test_one_at_a_time_effects_and_measured_sets():
    measure, _ = planted({"batch": 1.0, "schedule": 0.25})
    result = one_at_a_time(["batch", "schedule", "runtime"], measure)
    assert {a: e.effect for a, e in result.effects.items()} == {
        "batch": 1.0,
        "schedule": 0.25,
        "runtime": 0.0,
    }
    assert list(result.measured) == [
        NONE,
        frozenset({"batch"}),
        frozenset({"schedule"}),
        frozenset({"runtime"}),
        frozenset({"batch", "schedule", "runtime"}),
    ]


def test_leave_one_out_effects_equal_one_at_a_time_without_interaction():
    weights = {"batch": 1.0, "schedule": 0.25, "runtime": 0.0}
    loo = leave_one_out(list(weights), planted(weights)[0])
    assert {a: e.effect for a, e in loo.effects.items()} == weights
    assert frozenset({"schedule", "runtime"}) in loo.measured


def test_interaction_is_the_part_of_the_gap_the_single_effects_miss():
    both = frozenset({"batch", "schedule"})
    measure, _ = planted({"batch": 1.0, "schedule": 1.0}, pairs={both: 2.0})
    result = run_design("one-at-a-time", ["batch", "schedule"], measure)
    explained = result.measured[NONE] - result.measured[both]
    noise = paired_noise({"a": [1.0, 1.1, 0.9], "b": [2.0, 2.0, 2.0]})
    term = interaction(explained, [e.effect for e in result.effects.values()], noise)
    assert explained == 4.0 and term["sum_of_effects"] == 2.0 and term["value"] == 2.0
    assert term["axes_interact"] is True
    assert term["interval"] == pytest.approx([2.0 - 4.303 * 0.1 * 2**0.5, 2.0 + 4.303 * 0.1 * 2**0.5])


def test_noise_is_the_spread_of_same_seed_gaps():
    noise = paired_noise({"a": [1.0, 1.2, 1.4, 1.0], "b": [5.0, 5.1, 5.2, 5.0]})
    assert noise.dof == 3 and noise.seeds == 4
    assert (
        noise.sigma == pytest.approx(statistics.stdev([-4.0, -3.9, -3.8, -4.0])) == pytest.approx(0.0957427)
    )
    assert noise.halfwidth() == pytest.approx(3.182 * 0.0957427)
    assert paired_noise({"a": [2.0, 3.0], "b": [2.0, 3.0]}).halfwidth() == 0.0
    single = paired_noise({"a": [1.0], "b": [2.0]})
    assert single.sigma is None and single.halfwidth() == 0.0
    assert t_quantile(1) == 12.706 and t_quantile(4) == 2.776 and t_quantile(60) == 1.96
