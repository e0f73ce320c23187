"""Tests for the data probe's identity checks: the dataset each recipe names (hub path, config, splits) even
when the rows at hand are shared, raw content digests and train/test question overlap."""

from __future__ import annotations

import pytest
from conftest import REAL_GSM8K, by_key, make, needs_real_gsm8k

from parity.align import align
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.data import measure, probe
from parity.registry import resolve_recipe

CTX = ProbeContext()


@pytest.fixture(scope="module")
def llmhalluc(synthetic_pair):
    return synthetic_pair[0]


def test_builtin_pair_names_different_datasets_even_on_synthetic_rows(llmhalluc, revise):
    """llmhalluc trains on mtybilly/GSM8K, revise on openai/gsm8k (main): a data finding although both read the
    same synthetic rows here."""
    finding = by_key(probe(llmhalluc, revise, CTX))["data.source"]
    assert (finding.axis, finding.severity, finding.align) == ("data", "medium", "data")
    assert (finding.a, finding.b) == ("mtybilly/GSM8K [train/test]", "openai/gsm8k (main) [train/test]")
    assert finding.evidence["same_rows_here"] is True
    assert finding.evidence["raw_rows"]["a"] == {"train": 400, "test": 80}
    assert "not measured" in finding.summary


def test_one_hub_field_differs(revise):
    other = make("revise", ["data.hub_config=socratic"])
    findings = by_key(probe(revise, other, CTX))
    assert sorted(findings) == ["data.source"]
    assert findings["data.source"].b == "openai/gsm8k (socratic) [train/test]"


def test_identical_pairs_have_no_identity_findings(revise, llmhalluc):
    assert probe(revise, revise, CTX).findings == []
    assert [f.key for f in probe(llmhalluc, llmhalluc, CTX).findings] == []


def test_aligning_data_removes_the_source_finding():
    result = align(resolve_recipe("llmhalluc"), resolve_recipe("revise"), "data")
    aligned = [materialize(r, "synthetic:200:40", 1, 8) for r in (result.aligned_a, result.aligned_b)]
    assert "data.source" not in by_key(probe(*aligned, CTX))


@needs_real_gsm8k
def test_real_gsm8k_digests_and_no_train_test_overlap():
    m = make("revise", data=str(REAL_GSM8K), samples=8)
    identity = measure(m)["identity"]
    assert identity["raw_rows"] == {"train": 7473, "test": 1319}
    assert identity["train_questions_in_test"] == 0
    assert identity["rows_source"] == "local:gsm8k"


def test_train_rows_that_are_test_questions(tmp_path):
    """Contamination: 20 of the 100 train rows repeat test questions. llmhalluc trains on all of them, revise
    holds 10% of train out for eval, so the overlap each recipe trains on differs."""
    import json

    from parity.tasks.gsm8k.synthetic import generate_splits

    train, test = generate_splits(100, 40, 3)
    train[:20] = test[:20]
    for name, rows in (("train", train), ("test", test)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b = (make(name, data=str(tmp_path), samples=8) for name in ("llmhalluc", "revise"))
    finding = by_key(probe(a, b, CTX))["data.train_test_overlap"]
    assert finding.severity == "high" and finding.a == 20
    assert finding.b == measure(b)["identity"]["train_questions_in_test"] < 20
