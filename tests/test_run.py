"""`parity run`: matched runs of two recipes on CPU with the tiny model — null tests, a loss-mask difference,
batch alignment, resume after an interruption, the report files, exit codes and the multi-GPU launch commands."""

from __future__ import annotations

import json

import pytest
from transformers import TrainerCallback

from parity import cli
from parity.axes import ALIGN_AXES
from parity.cli.run import run_command
from parity.errors import ParityError
from parity.findings import Finding
from parity.plan import LaunchPlan
from parity.probes import PROBES, ProbeResult, load_probes
from parity.run import RunInterrupted, run_pair
from parity.run.config import micro_batching
from parity.run.launch import MachineOptions, gpu_sets, plan_launches
from parity.run.report import loss_gap, verdict

DATA = "synthetic:200:40"
SMALL = {"data": DATA, "eval_rows": 2, "eval_samples": 1, "max_new_tokens": 4, "preflight_samples": 8}
FAST = ["training.max_length=32", "training.learning_rate=0.003"]
"""Short sequences and a high learning rate (both legs) so a few CPU steps move the curves."""
REVISE = ["training.per_device_train_batch_size=2", "launch.global_batch=4", *FAST]
LLMHALLUC = ["training.per_device_train_batch_size=2", "training.gradient_accumulation_steps=2", *FAST]


def pair_run(a, b, set_a, set_b, out, align=None, **kw):
    return run_pair(a, b, align, set_a=set_a, set_b=set_b, out=out, **{**SMALL, **kw})


@pytest.fixture(scope="module")
def null_revise(tmp_path_factory):
    return pair_run("revise", "revise", REVISE, REVISE, tmp_path_factory.mktemp("null") / "run", max_steps=8)


def test_same_recipe_twice_gives_identical_losses(null_revise):
    assert null_revise.max_abs_loss_gap <= 1e-6
    assert null_revise.verdict == "identical"
    assert null_revise.first_divergent_step is None
    assert len(null_revise["runs"]["a"]["loss_curve"]) == 8


def test_all_aligned_pair_gives_identical_losses(tmp_path):
    summary = pair_run("llmhalluc", "revise", LLMHALLUC, REVISE, tmp_path / "run", align="all", max_steps=8)
    assert summary["aligned"] == list(ALIGN_AXES)
    assert summary.max_abs_loss_gap <= 1e-6
    assert summary.verdict == "identical"
    assert summary["runs"]["a"]["loss_curve"] == summary["runs"]["b"]["loss_curve"]


def test_loss_mask_difference_gives_different_curves(tmp_path):
    summary = pair_run(
        "revise",
        "revise",
        [*REVISE, "training.completion_only_loss=true", "training.max_length=96"],
        [*REVISE, "training.completion_only_loss=false", "training.max_length=96"],
        tmp_path / "run",
        max_steps=2,
    )
    assert summary.max_abs_loss_gap > 1e-3
    assert summary.verdict == "differs"
    assert summary.first_divergent_step == 1


def test_align_batch_gives_equal_global_batch(tmp_path):
    plain = ["training.learning_rate=0.003"]
    summary = pair_run(
        "llmhalluc",
        "revise",
        plain,
        ["training.per_device_train_batch_size=2", "launch.global_batch=4", *plain],
        tmp_path / "run",
        align="batch",
        max_steps=1,
    )
    a, b = summary["runs"]["a"]["batch"], summary["runs"]["b"]["batch"]
    assert a["global_batch"] == b["global_batch"] == 4
    assert a["micro_batch"] == b["micro_batch"] == 2


def test_align_batch_with_data_template_prompt_seed_gives_equal_tokens_per_step(tmp_path):
    summary = pair_run(
        "llmhalluc",
        "revise",
        ["training.max_length=256"],
        ["training.per_device_train_batch_size=2", "launch.global_batch=4"],
        tmp_path / "run",
        align="batch,template,prompt,data,seed",
        max_steps=2,
    )
    a, b = summary["runs"]["a"], summary["runs"]["b"]
    assert a["batch"]["global_batch"] == b["batch"]["global_batch"] == 4
    assert a["tokens_per_step"] == b["tokens_per_step"]
    assert all(t > 0 for t in a["tokens_per_step"])


def test_report_files(null_revise):
    run_dir = null_revise.run_dir
    steps = [json.loads(line) for line in (run_dir / "a.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 9))
    assert {"loss", "learning_rate", "grad_norm", "tokens", "tokens_seen"} <= set(steps[0])
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "data:image/png;base64," in (run_dir / "report.html").read_text()
    assert json.loads((run_dir / "preflight.json").read_text())["failed"] == []
    assert not (run_dir / "INCOMPLETE").exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["schema_version"] == 1
    assert summary["runs"]["a"]["final_eval_loss"] is not None
    assert summary["runs"]["b"]["final_shared_eval_loss"] is not None
    assert set(summary["generation"]["a"]) == {"a", "b"}


def test_context_overrides_are_recorded(null_revise):
    context = null_revise["context_overrides"]["sft_config"]
    assert context["report_to"] == "none"
    assert context["push_to_hub"] is False
    assert context["max_steps"] == 8
    assert context["logging_steps"] == 1
    assert context["use_cpu"] is True and context["bf16"] is False
    assert null_revise["context_overrides"]["a"] == {"output_dir": str(null_revise.run_dir / "a")}


class StopAt(TrainerCallback):
    """Stops training after `step` optimizer steps, once (simulates an interruption)."""

    def __init__(self, step: int) -> None:
        self.step, self.fired = step, False

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step and not self.fired:
            self.fired = True
            control.should_training_stop = True


def test_interrupted_run_resumes_to_the_same_losses(null_revise, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RunInterrupted, match="leg A stopped at step 4 of 8"):
        pair_run("revise", "revise", REVISE, REVISE, out, max_steps=8, save_every=4, callbacks=[StopAt(4)])
    assert (out / "INCOMPLETE").exists()
    assert (out / "a" / "checkpoint-4").is_dir()
    resumed = pair_run("revise", "revise", REVISE, REVISE, out, max_steps=8, save_every=4, resume=True)
    assert not (out / "INCOMPLETE").exists()
    assert resumed["runs"]["a"]["resumed_from"] == 4
    expected = null_revise["runs"]["a"]["loss_curve"]
    assert resumed["runs"]["a"]["loss_curve"] == pytest.approx(expected, abs=1e-6)
    assert resumed["runs"]["b"]["loss_curve"] == pytest.approx(expected, abs=1e-6)
    assert resumed["runs"]["a"]["tokens_per_step"] == null_revise["runs"]["a"]["tokens_per_step"]


def test_resume_refuses_a_run_started_with_other_options(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "plan.json").write_text(json.dumps({"fingerprint": {"max_steps": 99}}))
    with pytest.raises(ParityError, match="different options"):
        pair_run("revise", "revise", REVISE, REVISE, out, max_steps=8, resume=True)


@pytest.fixture
def parity_main():
    return cli.main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--align", "bach"], "unknown align axis 'bach'; did you mean 'batch'?"),
        (["--a", "revis"], "unknown recipe 'revis'; did you mean 'revise'?"),
        (["--data", "/nonexistent/gsm8k"], "--data /nonexistent/gsm8k: not a directory"),
        (["--to", "c"], "--to must be 'a' or 'b'"),
    ],
)
def test_bad_input_exits_2_with_one_line(parity_main, capsys, tmp_path, args, message):
    base = {"--a": "llmhalluc", "--b": "revise", "--out": str(tmp_path / "run"), "--max-steps": "2"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["run", *[x for kv in base.items() for x in kv]]
    assert parity_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith("parity: error: ") and message in err
    assert not (tmp_path / "run").exists()


def test_run_is_registered_in_the_cli():
    assert next(c for c in cli.app.registered_commands if c.name == "run").callback is run_command


@pytest.fixture
def seed_finding_probe(monkeypatch):
    """Replace the env probe with one that always reports a seed difference (alignment cannot remove it)."""
    load_probes()

    def probe(a, b, ctx):
        return ProbeResult([Finding("env", "fake.seed", "low", 1, 2, "always differs", {}, align="seed")], {})

    monkeypatch.setitem(PROBES._entries, "env", probe)


def test_failed_alignment_stops_before_training_with_exit_1(
    parity_main, seed_finding_probe, capsys, tmp_path
):
    out, saved = tmp_path / "run", tmp_path / "aligned"
    argv = [
        "run",
        "--a",
        "revise",
        "--b",
        "revise",
        "--align",
        "seed",
        "--data",
        DATA,
        "--out",
        str(out),
        "--save-aligned",
        str(saved),
    ]
    assert parity_main(argv) == 1
    printed = capsys.readouterr().out
    assert "alignment failed" in printed and "fake.seed" in printed
    assert json.loads((out / "preflight.json").read_text())["failed"][0]["key"] == "fake.seed"
    assert not (out / "a.jsonl").exists() and not (out / "INCOMPLETE").exists()
    assert sorted(p.name for p in saved.iterdir()) == ["revise.a.aligned.yaml", "revise.b.aligned.yaml"]


def test_micro_batching_keeps_the_global_batch():
    plan = LaunchPlan(1, 1, 16, 8, 128, None, None, "")
    assert micro_batching(plan, 2).global_batch == 128
    assert (micro_batching(plan, 2).per_device, micro_batching(plan, 2).accumulation) == (2, 64)
    odd = LaunchPlan(4, 4, 3, 1, 12, None, None, "")
    assert (micro_batching(odd, 2).per_device, micro_batching(odd, 2).accumulation) == (1, 3)
    assert micro_batching(plan, None).per_device == 16


def test_loss_gap_and_verdict():
    a = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 3, "loss": 1.0}]
    b = [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.6}]
    gap = loss_gap(a, b)
    assert gap == {"compared_steps": 2, "max_abs_loss_gap": pytest.approx(0.1), "first_divergent_step": 2}
    assert verdict(0.0, False, False) == "identical"
    assert verdict(0.1, True, False) == "unexplained divergence"
    assert verdict(0.1, False, True) == "unexplained divergence"
    assert verdict(0.1, False, False) == "differs"


def test_parallel_launch_gives_disjoint_gpu_sets():
    legs = {
        "a": {"processes": 1, "precision": "bf16", "spec_path": "/run/a.spec.json"},
        "b": {"processes": 4, "precision": "no", "spec_path": "/run/b.spec.json"},
    }
    launches = plan_launches(legs, 4, True, 8, MachineOptions(), "/run", python="/venv/bin/python")
    a, b = launches
    assert a.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" and b.env["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"
    assert a.command == [
        "/venv/bin/python",
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        "/run/a.accelerate.yaml",
        "-m",
        "parity.run.worker",
        "/run/a.spec.json",
    ]
    assert a.config | {"num_processes": 1, "distributed_type": "NO", "mixed_precision": "bf16"} == a.config
    assert b.config | {"num_processes": 4, "distributed_type": "MULTI_GPU", "gpu_ids": "4,5,6,7"} == b.config


def test_sequential_launch_shares_the_gpus_and_passes_machine_options():
    legs = {leg: {"processes": 4, "precision": "no", "spec_path": f"/run/{leg}.spec.json"} for leg in "ab"}
    machines = MachineOptions(
        num_machines=2, machine_rank=1, main_process_ip="10.0.0.1", main_process_port=29500
    )
    a, b = plan_launches(legs, 4, False, 2, machines, "/run")
    assert a.env == b.env == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert {
        k: a.config[k] for k in ("num_machines", "machine_rank", "main_process_ip", "main_process_port")
    } == {
        "num_machines": 2,
        "machine_rank": 1,
        "main_process_ip": "10.0.0.1",
        "main_process_port": 29500,
    }


def test_too_few_gpus_is_an_error():
    with pytest.raises(ParityError, match="needs 2 x 4 visible GPUs per machine, found 4"):
        gpu_sets(4, True, 4)
