"""`parity run --world-size 2` on CPU: each leg is two processes started by `accelerate launch` and talking over
gloo. The examples per optimizer step, counted from the batches the model receives in every process, equal the
batch probe's global batch at world size 2, and the loss curve matches a one-process run of the same global batch.

Tolerance: 1e-4 relative on each step's loss. Both runs see the same examples per step (accelerate's batch sampler
gives process 1 the micro-batch the single process takes as its second accumulation step), and the Trainer
normalises by the token count summed over processes (average_tokens_across_devices), so the losses are the same
sums in another order: gloo's all-reduce of the gradients and the per-process partial sums reorder float32
additions, which moves the loss in the 6th-7th significant digit, not more."""

from __future__ import annotations

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
