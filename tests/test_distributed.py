"""`parity run --world-size 2` on CPU: each leg is two processes started by `accelerate launch` and talking over
gloo. The examples per optimizer step, counted from the batches the model receives in every process, equal the
batch probe's global batch at world size 2, and the loss curve matches a one-process run of the same global batch.

Tolerance: 1e-4 relative on each step's loss. Both runs see the same examples per step (accelerate's batch sampler
gives process 1 the micro-batch the single process takes as its second accumulation step), and the Trainer
normalises by the token count summed over processes (average_tokens_across_devices), so the losses are the same
sums in another order: gloo's all-reduce of the gradients and the per-process partial sums reorder float32
additions, which moves the loss in the 6th-7th significant digit, not more."""

from __future__ import annotations

import json

import pytest
import yaml

from parity.diff import run_diff
from parity.run import run_pair
from parity.run.files import read_jsonl
from parity.run.launch import MachineOptions, accelerate_config, cpu_env, plan_launches

DATA = "synthetic:200:40"
REVISE = [
    "training.per_device_train_batch_size=2",
    "launch.global_batch=4",
    "training.max_length=32",
    "training.learning_rate=0.003",
]
SMALL = {"data": DATA, "samples": 32, "eval_rows": 2, "eval_samples": 0, "preflight_samples": 8}
STEPS = 4
REL_TOL = 1e-4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    kwargs = {"set_a": REVISE, "set_b": REVISE, "model": "proxy", "max_steps": STEPS, **SMALL}
    two = run_pair("revise", "revise", None, out=root / "ws2", world_size=2, **kwargs)
    one = run_pair("revise", "revise", None, out=root / "ws1", world_size=1, **kwargs)
    return one, two


def test_two_processes_consume_the_global_batch_the_probe_predicts(runs):
    _, two = runs
    report = run_diff("revise", "revise", DATA, 2, samples=8, set_a=REVISE, set_b=REVISE, only="batch")
    predicted = next(r for r in report.probes["batch"]["by_world_size"] if r["world_size"] == 2)
    assert predicted["a_global_batch"] == 4 and predicted["a_processes"] == 2
    for leg in ("a", "b"):
        batches = read_jsonl(two.run_dir / f"{leg}.batches.jsonl")
        assert [b["step"] for b in batches] == list(range(1, STEPS + 1))
        assert {b["examples"] for b in batches} == {predicted["a_global_batch"]}
        assert {tuple(b["per_process"]) for b in batches} == {(2, 2)}
        assert {b["micro_batches"] for b in batches} == {predicted["a_accumulation"]} == {1}
    config = yaml.safe_load((two.run_dir / "a.accelerate.yaml").read_text())
    assert config["use_cpu"] is True and config["num_processes"] == 2
    assert two["runs"]["a"]["batch"]["processes"] == 2


def test_loss_curve_matches_one_process_with_the_same_global_batch(runs):
    one, two = runs
    assert one["runs"]["a"]["batch"]["global_batch"] == two["runs"]["a"]["batch"]["global_batch"] == 4
    assert one["runs"]["a"]["batch"]["accumulation"] == 2 and two["runs"]["a"]["batch"]["accumulation"] == 1
    assert [b["examples"] for b in read_jsonl(one.run_dir / "a.batches.jsonl")] == [4] * STEPS
    single, double = one["runs"]["a"]["loss_curve"], two["runs"]["a"]["loss_curve"]
    assert len(single) == len(double) == STEPS
    assert double == pytest.approx(single, rel=REL_TOL)
    assert two.verdict == "identical"


def test_cpu_launch_plan_is_gloo_through_the_torchrun_launcher():
    config = accelerate_config(2, "no", [], MachineOptions(), cpu=True)
    assert config["distributed_type"] == "MULTI_GPU" and config["use_cpu"] is True
    assert config["main_process_port"] == 0
    assert cpu_env(2, cpus=2) == {
        "CUDA_VISIBLE_DEVICES": "",
        "ACCELERATE_USE_CPU": "true",
        "OMP_NUM_THREADS": "1",
    }
    legs = {leg: {"processes": 2, "precision": "no", "spec_path": f"{leg}.spec.json"} for leg in ("a", "b")}
    launches = plan_launches(legs, 2, False, 0, MachineOptions(), "run", python="py", cpu=True)
    assert [x.command[-1] for x in launches] == ["a.spec.json", "b.spec.json"]
    assert all(x.env["ACCELERATE_USE_CPU"] == "true" and x.gpus == [] for x in launches)


BISECT_A = [*REVISE[:3], "training.learning_rate=0.003"]
BISECT_B = [*REVISE[:3], "training.learning_rate=0.00003"]
"""A bisect pair that differs only in the learning rate (the `schedule` axis): with it aligned, A trains what B
trains and reuses B's leg, so 2 seeds cost 4 launched legs."""
BISECT_SMALL = {**SMALL, "samples": 16}


@pytest.fixture(scope="module")
def bisect_two(tmp_path_factory):
    from parity.bisect import bisect_pair

    out = tmp_path_factory.mktemp("bisect-ws2") / "lr"
    result = bisect_pair(
        "revise",
        "revise",
        set_a=BISECT_A,
        set_b=BISECT_B,
        out=out,
        axes="schedule",
        design="one-at-a-time",
        seeds=2,
        max_steps=2,
        world_size=2,
        **BISECT_SMALL,
    )
    return result


def test_bisect_legs_each_run_as_two_processes_with_the_predicted_global_batch(bisect_two):
    report = run_diff("revise", "revise", DATA, 2, samples=8, set_a=BISECT_A, set_b=BISECT_B, only="batch")
    predicted = next(r for r in report.probes["batch"]["by_world_size"] if r["world_size"] == 2)
    assert (predicted["a_global_batch"], predicted["a_processes"], predicted["a_accumulation"]) == (4, 2, 1)
    runs = (bisect_two.out / "runs").iterdir()
    legs = sorted(p for p in runs if "same_as" not in json.loads((p / "run.json").read_text()))
    assert [p.name.rsplit("-", 1)[0] for p in legs] == ["a-none-s0", "a-none-s1", "b-s0", "b-s1"]
    for run_dir in legs:
        side = run_dir.name[0]
        batches = read_jsonl(run_dir / f"{side}.batches.jsonl")
        assert [b["step"] for b in batches] == [1, 2]
        assert {b["examples"] for b in batches} == {predicted["a_global_batch"]}
        assert {tuple(b["per_process"]) for b in batches} == {(2, 2)}
        assert {b["micro_batches"] for b in batches} == {predicted["a_accumulation"]}
        config = yaml.safe_load((run_dir / f"{side}.accelerate.yaml").read_text())
        assert (config["num_processes"], config["use_cpu"]) == (2, True)


def test_bisect_over_two_processes_attributes_the_gap_to_the_planted_axis(bisect_two):
    attribution = bisect_two.attribution
    assert bisect_two.trained == 4
    assert [a["name"] for a in attribution["axes"]] == ["schedule"]
    schedule = attribution["axes"][0]
    assert schedule["keys"] == ["training.learning_rate"]
    assert schedule["share"] == pytest.approx(1.0)
    assert attribution["total_gap"]["residual_all_aligned"] == 0.0
    assert len(attribution["noise"]["baseline"]["a"]) == 2
    assert (bisect_two.out / "report.html").is_file()


def test_a_leg_failing_in_its_worker_processes_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    from parity.bisect.runs import RunCache
    from parity.cli import main

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")

    def broken_model(self, corner_sets):
        self.model_source = str(broken)
        return self.model_source

    monkeypatch.setattr(RunCache, "prepare_model", broken_model)
    args = [
        "bisect",
        "--a",
        "revise",
        "--b",
        "revise",
        "--world-size",
        "2",
        "--max-steps",
        "1",
        "--seeds",
        "1",
    ]
    args += ["--data", DATA, "--samples", "8", "--eval-rows", "2", "--out", str(tmp_path / "out")]
    args += [x for value in BISECT_B for x in ("--set-a", value, "--set-b", value)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("parity: error: bisect leg b-s0-")
    assert f"failed in its worker processes (exit code 1): --model {broken}: cannot load (" in err
    assert err.rstrip().endswith("b.log")


def test_failure_line_prefers_the_workers_own_error_then_its_traceback(tmp_path):
    from parity.run.launch import failed_leg_message, failure_line

    log = tmp_path / "a.log"
    log.write_text(
        "[rank1]: Traceback (most recent call last):\n"
        '[rank1]:   File "x.py", line 1, in <module>\n'
        "[rank1]: RuntimeError: gloo connect   timed out\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        "subprocess.CalledProcessError: Command '['python', '-m', 'parity.run.worker']' returned 1.\n",
        encoding="utf-8",
    )
    assert failure_line(log) == "RuntimeError: gloo connect timed out"
    with log.open("a", encoding="utf-8") as handle:
        handle.write("parity: error: --max-steps must be a positive number, got 0\n")
    assert failure_line(log) == "--max-steps must be a positive number, got 0"
    assert failure_line(tmp_path / "missing.log") is None
    assert failed_leg_message("leg A", 1, tmp_path / "missing.log") == (
        f"leg A failed in its worker processes (exit code 1): no error line; log: {tmp_path / 'missing.log'}"
    )
