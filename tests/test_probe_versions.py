"""Tests for the versions probe: fields a recipe's declared library pins and the running libraries treat
differently, from the cited table in vendor_refs/libraries/version_facts.yaml and the installed SFTConfig."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from conftest import by_key, make

from parity.probes import ProbeContext
from parity.probes.env import running_version
from parity.probes.versions import admits_before, measure, probe, version_facts

CTX = ProbeContext()


@pytest.fixture(scope="module")
def llmhalluc(synthetic_pair):
    return synthetic_pair[0]


@pytest.mark.parametrize(
    ("pin", "boundary", "expected"),
    [
        ("==0.17.0", "0.20.0", True),
        (">=0.9.0", "0.20.0", True),
        (">=0.20.0", "0.20.0", False),
        ("<5", "5.0.0", True),
        ("==5.2.0", "5.0.0", False),
        ("not a pin", "5.0.0", None),
    ],
)
def test_admits_before(pin, boundary, expected):
    assert admits_before(pin, boundary) is expected


def test_every_fact_cites_a_case():
    facts = version_facts()
    assert {f.key for f in facts} >= {"versions.transformers.warmup_ratio", "versions.trl.max_seq_length"}
    assert all(f.cases for f in facts)


def test_builtin_pair(llmhalluc, revise):
    findings = by_key(probe(llmhalluc, revise, CTX))
    # llmhalluc's cutoff_len is read by nothing, so it sets no max_length: TRL's max_seq_length rename
    # cannot touch it.
    assert sorted(findings) == ["versions.transformers.warmup_ratio"]
    warmup = findings["versions.transformers.warmup_ratio"]
    assert (warmup.axis, warmup.severity, warmup.align) == ("versions", "low", None)
    assert (warmup.a, warmup.b) == ("transformers>=4.45.0", "transformers==4.54.1")
    assert warmup.evidence["b"]["reasons"] == [
        "upstream config writes warmup_ratio=0.1",
        "recipe sets warmup_steps=0.1",
    ]
    semantics = warmup.evidence["b"]["running_semantics"]
    assert semantics["old_field_exists"] is False and semantics["new_field_value"] == 0.1
    assert running_version("transformers") in warmup.summary


def test_identical_pairs_have_no_findings(llmhalluc, revise):
    assert probe(revise, revise, CTX).findings == []
    assert probe(llmhalluc, llmhalluc, CTX).findings == []


def test_a_pin_on_the_running_side_of_the_change_is_not_affected(revise):
    current = make("revise", [f"env.transformers=>={running_version('transformers')}"], samples=8)
    [finding] = probe(revise, current, CTX).findings
    assert (finding.key, finding.a, finding.b) == (
        "versions.transformers.warmup_ratio",
        "transformers==4.54.1",
        None,
    )
    assert measure(current) == {}


def test_max_seq_length_written_upstream_is_lost_under_trl_0_20():
    """trl 3910: a config written for trl 0.19.1 with max_seq_length trains differently on >=0.20, where only
    max_length truncates. A recipe whose upstream writes max_seq_length and a pin before 0.20 is reported; the
    measured running SFTConfig has no max_seq_length field."""
    pinned_old = make("revise", ["env.trl===0.19.1", "training.max_length=2048"], samples=8)
    pinned_new = make("revise", ["env.trl=>=0.20.0", "training.max_length=2048"], samples=8)
    [finding] = probe(pinned_old, pinned_new, CTX).findings
    assert (finding.key, finding.a, finding.b) == ("versions.trl.max_seq_length", "trl==0.19.1", None)
    entry = finding.evidence["a"]
    assert entry["running_semantics"] == {
        "old_field_exists": False,
        "new_field_exists": True,
        "new_field_value": 2048,
    }
    assert entry["reasons"] == ["recipe sets max_length=2048"]
    assert "huggingface/trl#3910" in " ".join(finding.evidence["cases"])


def test_a_pin_before_the_shuffling_change_gets_a_data_order_finding(revise):
    """transformers 11772: the same script and seed train differently under 4.5 and 4.6, because 4.6 changed how
    the Trainer shuffles the training data."""
    old = make("revise", ["env.transformers===4.5.1"], samples=8)
    findings = by_key(probe(old, revise, CTX))
    order = findings["versions.transformers.data_order"]
    assert (order.severity, order.a, order.b) == ("low", "transformers==4.5.1", None)
    assert order.evidence["a"]["reasons"] == ["every transformers training run"]
    assert "huggingface/transformers#11772" in order.evidence["cases"][0]


def test_an_upstream_key_the_running_version_dropped_is_not_carried(revise):
    """An upstream config that writes group_by_length under transformers 4.x: 5.x has no such field, and the recipe
    sets no train_sampling_strategy, so the value is lost (medium)."""
    from conftest import with_recipe

    recipe = revise.recipe.copy()
    recipe.upstream.config["group_by_length"] = True
    grouped = with_recipe(revise, recipe)
    [finding] = [f for f in probe(grouped, revise, CTX).findings if f.key.endswith("group_by_length")]
    assert (finding.severity, finding.a, finding.b) == ("medium", "transformers==4.54.1", None)
    assert finding.evidence["a"]["value_carried"] is False
    assert finding.evidence["a"]["running_semantics"]["old_field_exists"] is False


def test_a_capture_ran_its_own_trl_so_no_rename_is_cited():
    """unsloth#2669's recipe as a capture: trl 0.15.2 ran max_seq_length itself, so nothing is cited from the trl
    installed beside parity (a newer one, without max_seq_length); the same pins on a recipe materialized here are."""
    recipe = SimpleNamespace(
        name="unsloth-trl-0.15.2",
        env={"trl": "==0.15.2"},
        upstream=SimpleNamespace(config={"max_seq_length": 2048}),
        training={"max_length": 2048},
    )
    manifest = {"versions": {"trl": "0.15.2"}}
    as_captured = SimpleNamespace(
        recipe=recipe, captured=SimpleNamespace(captured=SimpleNamespace(manifest=manifest)), measurements={}
    )
    assert measure(as_captured) == {}
    here = SimpleNamespace(
        recipe=recipe, captured=None, measurements={}, sft_config=SimpleNamespace(max_length=2048)
    )
    entry = measure(here)["versions.trl.max_seq_length"]
    assert (entry["declared"], entry["running"]) == ("==0.15.2", running_version("trl"))
