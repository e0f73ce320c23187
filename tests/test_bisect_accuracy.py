"""`parity bisect --metric accuracy` on CPU: a planted pair whose only training-neutral difference is the answer
extractor (A's accepts every answer), plus a logging difference. Accuracy is each leg's own protocol (its eval
prompt, its extractor), so the gap is exactly n/n - B's k/n and aligning `eval` removes all of it; the random proxy
model's answers are noise, which the command says in one warning line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from parity.registry import resolve_recipe
from parity.run.evaluate import score

REVISE = ["training.per_device_train_batch_size=2", "launch.global_batch=4", "training.max_length=48"]
ACCEPT_ALL = ["eval.strict_regex=(.*)", 'eval.ignore_patterns=[".*"]']
"""A strict extractor that reads '' from any output and an ignore pattern that turns every answer into '': every
question counts as correct, whatever the model generates."""
QUESTIONS = 4


def _sets(values: list[str], flag: str) -> list[str]:
    return [arg for value in values for arg in (flag, value)]


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    out = tmp_path_factory.mktemp("bisect-accuracy") / "acc"
    command = [
        sys.executable,
        "-m",
        "parity.cli",
        "bisect",
        "--a",
        "revise",
        "--b",
        "revise",
        *_sets([*REVISE, *ACCEPT_ALL, "training.logging_steps=7"], "--set-a"),
        *_sets(REVISE, "--set-b"),
        "--metric",
        "accuracy",
        "--design",
        "one-at-a-time",
        "--seeds",
        "2",
        "--max-steps",
        "2",
        "--data",
        "synthetic:200:40",
        "--samples",
        "16",
        "--eval-rows",
        "4",
        "--eval-samples",
        str(QUESTIONS),
        "--out",
        str(out),
    ]
    env = {**os.environ, "COLUMNS": "160"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return out, done, json.loads((out / "attribution.json").read_text())


def test_attribution_names_the_metric_and_gives_every_run_as_k_of_n(planted):
    _, _, attribution = planted
    assert attribution["metric"] == "accuracy"
    assert attribution["metric_definition"].startswith(f"accuracy: k/n of the first {QUESTIONS} held-out")
    assert "each leg's own eval prompt" in attribution["metric_definition"]
    assert "own answer extractor" in attribution["metric_definition"]
    for run in attribution["runs"]:
        assert run["n"] == QUESTIONS and 0 <= run["correct"] <= QUESTIONS
        assert run["value"] == run["correct"] / run["n"]
    unaligned_a = [r for r in attribution["runs"] if r["leg"] == "a" and r["aligned"] == []]
    assert [(r["seed"], r["correct"]) for r in unaligned_a] == [(0, QUESTIONS), (1, QUESTIONS)]


def test_run_values_equal_what_each_run_directory_scores(planted):
    out, _, attribution = planted
    for run in attribution["runs"]:
        run_dir = out / "runs" / run["key"]
        record = json.loads((run_dir / "run.json").read_text())
        source = out / "runs" / record["same_as"] if "same_as" in record else run_dir
        leg = "b" if (source / "b.result.json").is_file() else "a"
        result = json.loads((source / f"{leg}.result.json").read_text())
        recipe = resolve_recipe(str(source / f"{leg}.recipe.yaml"))
        generations = result["generations"]
        assert len(generations) == QUESTIONS
        scored = score([g["output"] for g in generations], [g["gold_raw"] for g in generations], recipe)
        mode = "strict" if "strict" in scored else "flexible"
        assert record["metrics"]["accuracy_mode"] == mode
        assert (run["correct"], run["n"]) == (scored[mode]["correct"], scored[mode]["n"])
        assert run["value"] == scored[mode]["accuracy"] == record["metrics"]["accuracy"]


def test_the_extractor_axis_takes_the_whole_gap_and_logging_exactly_none(planted):
    _, _, attribution = planted
    gap = attribution["total_gap"]
    b_correct = next(r["correct"] for r in attribution["runs"] if r["leg"] == "b" and r["seed"] == 0)
    assert gap["a_value"] == 1.0
    assert gap["value"] == pytest.approx(1.0 - b_correct / QUESTIONS)
    axes = {a["name"]: a for a in attribution["axes"]}
    assert list(axes) == ["eval", "runtime"]
    assert axes["eval"]["keys"] == ["eval.ignore_patterns", "eval.strict_regex"]
    assert axes["eval"]["effect"] == pytest.approx(gap["value"])
    assert axes["eval"]["share"] == pytest.approx(1.0)
    assert not axes["eval"]["indistinguishable_from_zero"]
    assert axes["runtime"]["effect"] == 0.0 and axes["runtime"]["indistinguishable_from_zero"]
    assert gap["residual_all_aligned"] == 0.0


def test_terminal_says_what_accuracy_means_and_warns_once_about_random_weights(planted):
    out, done, attribution = planted
    warnings = [line for line in done.stderr.splitlines() if "random-weight" in line]
    assert warnings == [
        "parity: note: --metric accuracy with --model proxy: a random-weight model's greedy answers are noise, "
        "so accuracy only measures the eval protocol (prompt, extractor); use a pretrained --model, or eval_loss"
    ]
    stdout = " ".join(done.stdout.split())
    assert "random-weight" not in stdout
    assert "metric accuracy: k/n of the first 4 held-out questions" in stdout
    b_correct = next(r["correct"] for r in attribution["runs"] if r["leg"] == "b" and r["seed"] == 0)
    assert f"(A 4/4, B {b_correct}/4)" in stdout
    assert attribution["warnings"] == [warnings[0].removeprefix("parity: note: ")]
    page = (Path(out) / "report.html").read_text()
    assert "own answer extractor" in page and "random-weight" in page


def test_accuracy_without_questions_is_one_line_exit_2(capsys):
    from parity.cli import main

    args = ["bisect", "--a", "revise", "--b", "revise", "--metric", "accuracy", "--eval-samples", "0"]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "parity: error: --metric accuracy needs --eval-samples > 0 (held-out questions answered greedily)\n"
    )


def test_legs_cached_before_own_extractor_scoring_are_scored_again(planted, tmp_path):
    import shutil

    from parity.bisect import bisect_pair

    out, _, attribution = planted
    copy = tmp_path / "older"
    shutil.copytree(out, copy)
    for run_json in (copy / "runs").glob("*/run.json"):
        record = json.loads(run_json.read_text())
        record["metrics"] = {"eval_loss": record["metrics"]["eval_loss"], "accuracy": 0.5}
        run_json.write_text(json.dumps(record))
    again = bisect_pair(
        "revise",
        "revise",
        set_a=[*REVISE, *ACCEPT_ALL, "training.logging_steps=7"],
        set_b=REVISE,
        metric="accuracy",
        design="one-at-a-time",
        seeds=2,
        max_steps=2,
        data="synthetic:200:40",
        samples=16,
        eval_rows=4,
        eval_samples=QUESTIONS,
        out=copy,
    )
    assert again.trained == 0
    assert again["runs"] == attribution["runs"]
    assert again["axes"] == attribution["axes"]
