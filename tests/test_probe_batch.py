"""Tests for the batch probe and parity.plan: global batch per world size, optimizer steps, eval/save cadence."""

from __future__ import annotations

import math

import pytest
from conftest import by_key, make

from parity.plan import train_dataloader
from parity.probes import ProbeContext
from parity.probes.batch import probe

CTX = ProbeContext()


@pytest.fixture(scope="module")
def real_result(real_pair):
    return probe(*real_pair, CTX)


def test_global_batch_by_world_size(real_result):
    rows = real_result.values["by_world_size"]
    assert [r["world_size"] for r in rows] == [1, 2, 4, 8]
    assert [r["a_global_batch"] for r in rows] == [128, 256, 512, 1024]
    assert [r["b_global_batch"] for r in rows] == [32, 32, 32, 64]
    assert [r["a_accumulation"] for r in rows] == [8, 8, 8, 8]
    assert [r["b_accumulation"] for r in rows] == [4, 2, 1, 1]
    assert [r["a_processes"] for r in rows] == [1, 2, 4, 8]
    assert [r["a_total_steps"] for r in rows] == [177, 90, 45, 24]
    assert [r["b_total_steps"] for r in rows] == [633, 633, 633, 318]


def test_global_batch_finding(real_result):
    finding = by_key(real_result)["batch.global_batch"]
    assert (finding.a, finding.b, finding.severity, finding.align) == (128, 32, "high", "batch")
    assert finding.evidence["per_device_train_batch_size"] == [16, 8]
    assert finding.evidence["gradient_accumulation_steps"] == [8, 4]
    assert "16 x 8 x 1" in finding.summary and "8 x 4 x 1" in finding.summary


def test_real_step_plans(real_result):
    a, b = real_result.values["a"], real_result.values["b"]
    keys = ("rows", "batches_per_epoch", "steps_per_epoch", "total_steps", "warmup_steps")
    assert [a[k] for k in keys] == [7473, 468, 59, 177, 18]
    assert [b[k] for k in keys] == [6725, 841, 211, 633, 64]
    assert (a["eval_steps"], a["eval_at"]) == (500, [177])
    assert b["eval_steps"] == math.ceil(0.1 * 633) == 64
    assert b["eval_at"] == [64, 128, 192, 256, 320, 384, 448, 512, 576, 633]


def test_real_step_and_cadence_findings(real_result):
    found = by_key(real_result)
    assert set(found) == {
        "batch.global_batch",
        "batch.optimizer_steps",
        "batch.eval_steps",
        "batch.save_steps",
    }
    steps = found["batch.optimizer_steps"]
    assert (steps.a, steps.b, steps.severity, steps.align) == (177, 633, "medium", "batch")
    for key in ("batch.eval_steps", "batch.save_steps"):
        finding = found[key]
        assert [finding.a, finding.b, finding.severity, finding.align] == [500, 64, "medium", "eval"]


def test_tokens_per_step(real_result):
    a, b = real_result.values["a"], real_result.values["b"]
    assert a["tokens"]["examples"] == 64
    assert a["tokens_per_step"] == round(a["tokens"]["mean_tokens"] * 128, 6) == 25178.0
    assert a["trained_tokens_per_step"] < a["tokens_per_step"]
    assert b["trained_tokens_per_step"] == b["tokens_per_step"] == 5574.0


def test_revise_alone_across_world_sizes(revise):
    plans = {n: revise.step_plan(n) for n in (1, 4, 8)}
    assert [plans[n].accumulation for n in (1, 4, 8)] == [4, 1, 1]
    assert [plans[n].global_batch for n in (1, 4, 8)] == [32, 32, 64]
    assert [plans[n].total_steps for n in (1, 4, 8)] == [36, 36, 18]


def test_selected_world_size_values():
    m = make("revise", world_size=8)
    values = probe(m, m, CTX).values["a"]
    assert [values[k] for k in ("world_size", "processes", "accumulation", "global_batch")] == [8, 8, 1, 64]


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, revise, CTX).findings == []


def test_same_global_batch_split_differently_is_low(revise):
    [finding] = probe(revise, make("revise", ["training.per_device_train_batch_size=16"]), CTX).findings
    assert (finding.key, finding.severity, finding.a, finding.b) == (
        "batch.composition",
        "low",
        "8 x 4 x 1",
        "16 x 2 x 1",
    )


def test_accumulation_change_gives_batch_and_steps_findings():
    a, b = make("llmhalluc"), make("llmhalluc", ["training.gradient_accumulation_steps=4"])
    found = by_key(probe(a, b, CTX))
    assert set(found) == {"batch.global_batch", "batch.optimizer_steps"}
    assert (found["batch.global_batch"].a, found["batch.global_batch"].b) == (128, 64)
    assert (found["batch.optimizer_steps"].a, found["batch.optimizer_steps"].b) == (12, 21)


def test_dataloader_length_per_process():
    assert len(train_dataloader(360, 7, 1, drop_last=False)) == 52
    assert len(train_dataloader(360, 7, 1, drop_last=True)) == 51
    assert len(train_dataloader(6725, 8, 8, drop_last=False)) == 106


def test_measure_is_computed_once_per_recipe(revise):
    from parity.probes.batch import measure

    first = measure(revise)
    assert measure(revise) is first
    assert revise.measurements[("batch",)] is first
    assert (first["global_batch"], first["per_device"], first["accumulation"]) == (32, 8, 4)
