"""`parity bisect` on CPU with the proxy model and planted differences: a 100x learning rate plus a different
logging interval, a loss-mask difference, the null pair; the cache across designs, the report files, parity.load
and the command's exit codes."""

from __future__ import annotations

import base64
import json

import pytest

import parity
from parity.bisect import bisect_pair
from parity.cli import main

DATA = "synthetic:200:40"
REVISE = ["training.per_device_train_batch_size=2", "launch.global_batch=4", "training.max_length=48"]
SMALL = {"data": DATA, "samples": 32, "eval_rows": 8, "eval_samples": 0, "preflight_samples": 8}
LR_B = ["training.learning_rate=3e-5"]
LR_A = ["training.learning_rate=3e-3", "training.logging_steps=7"]
"""Recipe A is recipe B with a 100x learning rate and another logging interval."""
MASK = [*REVISE, "training.max_length=96", "training.learning_rate=3e-3"]
"""Long enough for every prompt to keep completion tokens (the diff's template probe needs one per row)."""


@pytest.fixture(scope="module")
def planted_lr(tmp_path_factory):
    out = tmp_path_factory.mktemp("bisect") / "lr"
    result = bisect_pair(
        "revise",
        "revise",
        set_a=[*REVISE, *LR_A],
        set_b=[*REVISE, *LR_B],
        out=out,
        design="one-at-a-time",
        seeds=3,
        max_steps=6,
        **SMALL,
    )
    return result


def test_planted_learning_rate_gets_most_of_the_gap_and_logging_none(planted_lr):
    attribution = planted_lr.attribution
    axes = {a["name"]: a for a in attribution["axes"]}
    assert list(axes) == ["schedule", "runtime"]
    schedule, runtime = axes["schedule"], axes["runtime"]
    assert schedule["keys"] == ["training.learning_rate"]
    assert runtime["keys"] == ["training.logging_steps"]
    assert schedule["rank"] == 1 and schedule["share"] > 0.8
    assert not schedule["indistinguishable_from_zero"]
    assert schedule["interval"][0] > 0 or schedule["interval"][1] < 0
    assert runtime["effect"] == 0.0 and runtime["indistinguishable_from_zero"]
    gap = attribution["total_gap"]
    assert gap["value"] < 0 and not gap["within_noise"]
    assert gap["residual_all_aligned"] == pytest.approx(0.0, abs=1e-6)


def test_attribution_json_has_exactly_the_documented_keys(planted_lr):
    data = json.loads((planted_lr.out / "attribution.json").read_text())
    assert list(data) == [
        "schema_version",
        "metric",
        "metric_definition",
        "total_gap",
        "noise",
        "design",
        "runs",
        "axes",
        "warnings",
    ]
    assert data["metric"] == "eval_loss" and data["design"] == "one-at-a-time"
    assert data["metric_definition"] == (
        "eval_loss: final loss on the first 8 rows of the shared held-out split, the same rows for every leg "
        "(lower is better)"
    )
    assert data["warnings"] == []
    assert all("correct" not in run for run in data["runs"])
    assert data["noise"]["seeds"] == 3 and data["noise"]["dof"] == 2
    assert {tuple(r["aligned"]) for r in data["runs"] if r["leg"] == "a" and r["seed"] == 0} == {
        (),
        ("schedule",),
        ("runtime",),
        ("schedule", "runtime"),
    }
    assert set(data["axes"][0]) >= {"name", "keys", "effect", "interval", "share", "rank"}


def test_b_leg_is_trained_once_per_seed_and_a_second_design_reuses_every_run(planted_lr):
    runs = sorted(p.name.rsplit("-", 1)[0] for p in (planted_lr.out / "runs").iterdir())
    assert runs == [
        "a-none-s0",
        "a-none-s1",
        "a-none-s2",
        "a-runtime-s0",
        "a-schedule+runtime-s0",
        "a-schedule-s0",
        "b-s0",
        "b-s1",
        "b-s2",
    ]
    assert planted_lr.trained == 8  # A with both axes aligned trains what B trains: B's leg is reused
    again = bisect_pair(
        "revise",
        "revise",
        set_a=[*REVISE, *LR_A],
        set_b=[*REVISE, *LR_B],
        out=planted_lr.out,
        design="adaptive",
        seeds=3,
        max_steps=6,
        **SMALL,
    )
    assert again.trained == 0
    assert again["design"] == "adaptive"
    assert again["axes"][0]["effect"] == planted_lr["axes"][0]["effect"]


def test_report_page_and_load_frames(planted_lr):
    page = (planted_lr.out / "report.html").read_text()
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 2
    assert base64.b64decode(images[0].split('"')[0])[:4] == b"\x89PNG"
    assert "indistinguishable from zero" in page
    results = parity.load(planted_lr.out)
    frame = results.attribution()
    assert list(frame["name"]) == ["schedule", "runtime"]
    assert results.frame().equals(frame)
    curves = results.curves()
    assert set(curves["run"].str.rsplit("-", n=1).str[0]) >= {"b-s0", "a-schedule-s0"}
    assert len(curves[curves["run"].str.startswith("b-s0")]) == 6
    findings = results.findings()
    assert set(findings["align"].dropna()) >= {"schedule", "runtime"}


def test_loss_mask_difference_is_attributed_to_loss_mask(tmp_path):
    result = bisect_pair(
        "revise",
        "revise",
        set_a=[*MASK, "training.completion_only_loss=false"],
        set_b=[*MASK, "training.completion_only_loss=true"],
        out=tmp_path / "mask",
        design="adaptive",
        seeds=3,
        max_steps=6,
        **SMALL,
    )
    axes = result["axes"]
    assert [a["name"] for a in axes] == ["loss_mask"]
    assert axes[0]["keys"] == ["training.completion_only_loss"]
    assert axes[0]["share"] == pytest.approx(1.0)
    assert not axes[0]["indistinguishable_from_zero"]
    assert not result["total_gap"]["within_noise"]


def test_same_recipe_twice_has_a_total_gap_within_the_noise(tmp_path):
    result = bisect_pair(
        "revise", "revise", set_a=REVISE, set_b=REVISE, out=tmp_path / "null", seeds=3, max_steps=4, **SMALL
    )
    assert result["axes"] == []
    assert result.trained == 3
    assert result["total_gap"]["value"] == 0.0
    assert result["total_gap"]["within_noise"]
    assert result["total_gap"]["interaction"] is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--design", "random"],
            "--design must be one of one-at-a-time, leave-one-out, adaptive, got 'random'",
        ),
        (["--metric", "bleu"], "--metric must be one of eval_loss, accuracy, got 'bleu'"),
    ],
)
def test_bad_options_exit_2_with_one_line(args, message, capsys):
    assert main(["bisect", "--a", "revise", "--b", "revise", *args]) == 2
    err = capsys.readouterr().err
    assert err == f"parity: error: {message}\n"
