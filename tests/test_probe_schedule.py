"""Tests for the schedule probe: LR curves from the real HF scheduler and the differences between them."""

from __future__ import annotations

import pytest
from conftest import by_key, make

from parity.probes import ProbeContext
from parity.probes.schedule import probe, sig

CTX = ProbeContext()


@pytest.fixture(scope="module")
def real_result(real_pair):
    return probe(*real_pair, CTX)


def test_real_curves(real_result):
    a, b = real_result.values["a"], real_result.values["b"]
    assert (a["scheduler_type"], b["scheduler_type"]) == ("cosine", "linear")
    assert (a["warmup_steps"], a["total_steps"], len(a["lr"])) == (18, 177, 177)
    assert (b["warmup_steps"], b["total_steps"], len(b["lr"])) == (64, 633, 633)
    for v in (a, b):
        assert v["lr"][0] == 0.0
        assert v["lr"][v["warmup_steps"]] == v["peak"] == 1e-4
        assert max(v["lr"][: v["warmup_steps"]]) < 1e-4
        assert v["final_lr"] == 0.0


def test_real_curve_values(real_result):
    a, b = real_result.values["a"]["lr"], real_result.values["b"]["lr"]
    assert a[1] == sig(1e-4 / 18)
    assert b[64 + 284] == sig(1e-4 * 285 / 569)
    assert a[18 + 159 // 2] < 1e-4 * 0.51


def test_real_findings(real_result):
    found = by_key(real_result)
    assert set(found) == {
        "training.lr_scheduler_type",
        "schedule.warmup_steps",
        "launch.early_stopping_patience",
        "schedule.shape",
    }
    kind = found["training.lr_scheduler_type"]
    assert (kind.a, kind.b, kind.severity, kind.align) == ("cosine", "linear", "medium", "schedule")
    warmup = found["schedule.warmup_steps"]
    assert (warmup.a, warmup.b, warmup.severity) == (18, 64, "medium")
    stop = found["launch.early_stopping_patience"]
    assert (stop.a, stop.b, stop.severity, stop.align) == (3, None, "medium", "schedule")
    assert stop.evidence["a_eval_at"] == [177]
    shape = found["schedule.shape"]
    assert (shape.severity, shape.align) == ("medium", "schedule")
    assert 0.09 < shape.evidence["max_normalised_diff"] < 0.12


def test_identical_pairs_have_no_findings(revise, real_pair):
    assert probe(revise, revise, CTX).findings == []
    llmhalluc = real_pair[0]
    assert probe(llmhalluc, llmhalluc, CTX).findings == []


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "training.lr_scheduler_type=cosine",
            {"training.lr_scheduler_type": "medium", "schedule.shape": "medium"},
        ),
        ("training.learning_rate=0.0002", {"training.learning_rate": "high"}),
        ("training.num_train_epochs=1", {"training.num_train_epochs": "high"}),
        ("training.max_steps=10", {"training.max_steps": "high"}),
        ("training.warmup_steps=0.2", {"training.warmup_steps": "medium", "schedule.shape": "medium"}),
        ("launch.early_stopping_patience=3", {"launch.early_stopping_patience": "medium"}),
    ],
)
def test_one_field_pairs(revise, override, expected):
    result = probe(revise, make("revise", [override], samples=16), CTX)
    assert {f.key: f.severity for f in result.findings} == expected


def test_peak_and_total_follow_the_config(revise):
    b = probe(
        revise, make("revise", ["training.learning_rate=0.0002", "training.max_steps=10"], samples=16), CTX
    ).values["b"]
    assert (b["peak"], b["total_steps"], b["warmup_steps"], len(b["lr"]), b["final_lr"]) == (
        2e-4,
        10,
        1,
        10,
        0.0,
    )
