"""Tests for the data_order probe: the first batches each recipe's HF Trainer draws (its own
`_get_train_sampler`, prepared by accelerate's seedable sampler) over the same tokenized rows."""

from __future__ import annotations

from conftest import by_key, make

from parity.align import align
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.data_order import measure, probe
from parity.registry import resolve_recipe

CTX = ProbeContext()
REVISE_FIRST_BATCH = [6, 13, 18, 24, 22, 7, 28, 31]
"""revise (seed 42, per-device 8) on the 32-row synthetic sample: the first rows its Trainer draws."""


def test_revise_draws_through_the_seedable_random_sampler(revise):
    values = measure(revise)
    assert (values["sampler"], values["prepared_sampler"]) == ("RandomSampler", "SeedableRandomSampler")
    assert values["rows"] == 32 and len(values["batches"]) == 4
    assert values["batches"][0] == REVISE_FIRST_BATCH
    assert sorted(i for batch in values["batches"] for i in batch) == list(range(32))


def test_seed_difference_reorders_the_first_batches(revise):
    other = make("revise", ["training.seed=7"])
    [finding] = probe(revise, other, CTX).findings
    assert (finding.axis, finding.key, finding.severity, finding.align) == (
        "data_order",
        "data_order.first_batches",
        "low",
        "seed",
    )
    assert finding.a == REVISE_FIRST_BATCH
    assert finding.b == [15, 11, 3, 6, 19, 20, 21, 1]
    assert finding.evidence["seed_fields_differing"] == ["seed"]


def test_group_by_length_changes_the_sampler(revise):
    other = make("revise", ["training.train_sampling_strategy=group_by_length"])
    findings = by_key(probe(revise, other, CTX))
    strategy = findings["training.train_sampling_strategy"]
    assert (strategy.severity, strategy.align, strategy.a, strategy.b) == (
        "medium",
        "data_order",
        "random",
        "group_by_length",
    )
    order = findings["data_order.first_batches"]
    assert (order.severity, order.align) == ("medium", "data_order")
    assert order.evidence["sampler"] == ["RandomSampler", "LengthGroupedSampler"]
    lengths = [len(ids) for ids in other.prepared.input_ids]
    assert lengths[order.b[0]] == max(lengths)


def test_identical_pairs_have_no_findings(revise, synthetic_pair):
    assert probe(revise, revise, CTX).findings == []
    assert probe(synthetic_pair[0], synthetic_pair[0], CTX).findings == []


def test_data_seed_decides_the_order_when_set(revise):
    """transformers 31818 asked whether data_seed is used at all: with accelerate's seedable sampler it seeds
    the shuffle, so two recipes with different seeds but the same data_seed draw the same rows."""
    a = make("revise", ["training.seed=7", "training.data_seed=11"])
    b = make("revise", ["training.data_seed=11"])
    assert probe(a, b, CTX).findings == []
    assert measure(a)["batches"][0] == [25, 19, 2, 21, 3, 23, 11, 27]
    assert measure(a)["batches"][0] != REVISE_FIRST_BATCH


def test_aligning_seed_and_data_order_removes_the_findings():
    a = resolve_recipe("revise", ["training.seed=7", "training.train_sampling_strategy=group_by_length"])
    b = resolve_recipe("revise")
    result = align(a, b, "seed,data_order")
    aligned = [materialize(r, "synthetic:200:40", 1, 32) for r in (result.aligned_a, result.aligned_b)]
    assert probe(*aligned, CTX).findings == []
