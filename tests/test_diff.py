"""`parity diff` end to end: findings on every differing axis, none for identical recipes, stable reports."""

from __future__ import annotations

import gc
import json

import pytest
from conftest import REAL_GSM8K, SMALL_SYNTHETIC, needs_real_gsm8k

from parity.cli import main
from parity.diff import cyclic_gc_paused, run_diff
from parity.findings import AXES


@pytest.fixture(scope="module")
def real_report():
    if not (REAL_GSM8K / "train.jsonl").is_file():
        pytest.skip("real GSM8K not available")
    return run_diff("llmhalluc", "revise", data=str(REAL_GSM8K), samples=64).to_dict()


@pytest.fixture(scope="module")
def synthetic_report():
    return run_diff("llmhalluc", "revise", data=SMALL_SYNTHETIC, samples=64).to_dict()


def diff_args(a: str = "llmhalluc", b: str = "revise", samples: str | None = "16") -> list[str]:
    """`parity diff` arguments on the small synthetic data set."""
    return [
        "diff",
        "--a",
        a,
        "--b",
        b,
        "--data",
        SMALL_SYNTHETIC,
        *(["--samples", samples] if samples else []),
    ]


def keyed(report):
    return {(f["axis"], f["key"]): f for f in report["findings"]}


SILENT_ON_BUILTIN_PAIR = {"model", "packing", "padding", "eos", "bos", "special_tokens", "content"}
"""Probe axes on which the built-in pair agrees (their own tests build a differing pair)."""


def test_builtin_pair_has_findings_on_every_axis(synthetic_report):
    assert {f["axis"] for f in synthetic_report["findings"]} == set(AXES) - SILENT_ON_BUILTIN_PAIR


@needs_real_gsm8k
def test_builtin_pair_on_real_gsm8k_measures_the_known_differences(real_report):
    findings = keyed(real_report)
    batch = findings[("batch", "batch.global_batch")]
    assert (batch["a"], batch["b"], batch["severity"], batch["align"]) == (128, 32, "high", "batch")
    leak = findings[("data", "data.eval_split")]
    assert leak["severity"] == "high" and "test-set leakage" in leak["summary"]
    template = findings[("template", "template.chat_template")]
    assert template["severity"] == "high" and "198" in template["summary"]
    tokens = findings[("tokens", "tokens.example")]
    assert tokens["evidence"]["first_difference"] == 0
    lint = findings[("config", "upstream.compute_only_loss")]
    assert lint["severity"] == "high" and "completion_only_loss" in lint["summary"]
    mask = real_report["probes"]["loss_mask"]
    assert mask["a"]["trained_fraction"] == 0.533084 and mask["b"]["trained_fraction"] == 1.0
    assert mask["a"]["prompt_tokens_trained"] is False and mask["b"]["prompt_tokens_trained"] is True
    assert real_report["probes"]["peft"]["a"]["trainable_params"] == 5636096
    assert real_report["probes"]["peft"]["b"]["trainable_params"] == 1235814400
    by_world = {
        row["world_size"]: (row["a_global_batch"], row["b_global_batch"])
        for row in real_report["probes"]["batch"]["by_world_size"]
    }
    assert by_world == {1: (128, 32), 2: (256, 32), 4: (512, 32), 8: (1024, 64)}
    assert ("tokens", "training.max_length") not in findings
    cutoff_len = findings[("config", "upstream.cutoff_len")]
    assert (cutoff_len["severity"], cutoff_len["a"], cutoff_len["evidence"]["closest"]) == (
        "high",
        2048,
        "max_length",
    )
    assert cutoff_len["evidence"]["a"]["closest_effective"] == 1024
    attention = findings[("precision", "model.attn_implementation")]
    assert (attention["a"], attention["b"], attention["severity"]) == (None, "flash_attention_2", "medium")
    assert real_report["probes"]["template"]["b"]["deterministic"] is True


def test_identical_recipes_have_no_findings(capsys, tmp_path):
    assert main([*diff_args("revise", "revise"), "--out", str(tmp_path), "--fail-on", "info"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["findings"] == []
    assert report["schema_version"] == 1 and report["a"] == "revise" and report["b"] == "revise"


def test_identical_recipes_differ_only_in_what_each_recipe_contradicts_itself(capsys, tmp_path):
    """llmhalluc trains on its chat template but evaluates on raw text: a finding about the recipe itself,
    reported even when it is compared with itself."""
    assert main([*diff_args("llmhalluc", "llmhalluc"), "--out", str(tmp_path), "--fail-on", "info"]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(f["axis"], f["key"], f["severity"]) for f in report["findings"]] == [
        ("consistency", "consistency.model_input", "high")
    ]


def test_reports_are_byte_identical_and_path_free(tmp_path):
    args = diff_args()
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert main([*args, "--out", str(tmp_path / "two")]) == 0
    for name in ("report.json", "report.md", "report.html"):
        first = (tmp_path / "one" / name).read_bytes()
        assert first == (tmp_path / "two" / name).read_bytes()
        assert str(tmp_path).encode() not in first
        assert b"/work/" not in first and b"/home/" not in first


def test_fail_on_high_exits_1_for_the_builtin_pair(tmp_path):
    args = [*diff_args(), "--out", str(tmp_path)]
    assert main([*args, "--fail-on", "high"]) == 1
    assert main([*args, "--only", "env", "--fail-on", "medium"]) == 0


def test_only_and_format_select_probes_and_files(tmp_path):
    args = diff_args()
    assert main([*args, "--only", "batch,template", "--format", "json", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert sorted(report["probes"]) == ["batch", "template"]
    assert {f["axis"] for f in report["findings"]} == {"batch", "template"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_show_example_prints_both_masks(capsys, tmp_path):
    assert (
        main([*diff_args(samples="8"), "--only", "loss_mask", "--show-example", "2", "--out", str(tmp_path)])
        == 0
    )
    out = capsys.readouterr().out
    assert "loss mask of one example" in out


def test_one_differing_override_gives_its_finding():
    report = run_diff(
        "revise", "revise", data=SMALL_SYNTHETIC, samples=16, set_b=["training.lr_scheduler_type=cosine"]
    ).to_dict()
    keys = {(f["axis"], f["key"]) for f in report["findings"]}
    assert ("schedule", "training.lr_scheduler_type") in keys
    assert {axis for axis, _ in keys} == {"schedule"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--only", "batchh"], "unknown axis 'batchh'; did you mean 'batch'?"),
        (["--samples", "0"], "--samples must be a positive number or 'all'"),
        (["--samples", "many"], "--samples must be a positive number or 'all'"),
        (["--fail-on", "critical"], "--fail-on must be one of high, medium, low, info"),
        (["--format", "pdf"], "--format must be one of json, md, html"),
        (["--data", "/no/such/dir"], "not a directory"),
        (["--show-example", "100000"], "--show-example 100000 is out of range"),
        (["--set-a", "training.bogus=1"], "unknown training key 'training.bogus'"),
    ],
)
def test_bad_diff_input_is_one_line_exit_2(capsys, tmp_path, extra, message):
    assert main([*diff_args(samples=None), "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "report.json").exists()


def test_cyclic_gc_is_paused_while_probing_and_restored_after():
    enabled_per_probe: list[bool] = []
    run_diff(
        "llmhalluc",
        "revise",
        data=SMALL_SYNTHETIC,
        samples=8,
        only="config,batch",
        on_probe=lambda name: enabled_per_probe.append(gc.isenabled()),
    )
    assert enabled_per_probe == [False, False]
    assert gc.isenabled()


def test_cyclic_gc_pause_nests_and_keeps_a_disabled_collector_disabled():
    with cyclic_gc_paused():
        with cyclic_gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_objects_freeze_on_resume_only_when_the_process_exits_after_the_diff(monkeypatch):
    import parity.process

    gc.unfreeze()
    thresholds = gc.get_threshold()
    with cyclic_gc_paused():
        kept = [[i] for i in range(1000)]
    assert gc.get_freeze_count() == 0  # a library caller: the collector resumes over everything
    monkeypatch.setattr(parity.process, "_freeze_on_resume", False)
    parity.process.configure_console_process()
    try:
        assert gc.get_threshold() == parity.process.GC_THRESHOLDS
        with cyclic_gc_paused():
            kept.append([0])
        assert gc.isenabled()
        assert gc.get_freeze_count() > len(kept)  # the console script: moved to the permanent generation
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_a_probe_that_raises_is_a_probe_failed_finding_and_the_other_probes_still_run(monkeypatch, tmp_path):
    from parity.probes import PROBES, load_probes

    load_probes()

    def broken(a, b, ctx):
        raise KeyError("prompt")

    monkeypatch.setitem(PROBES._entries, "bos", broken)
    args = [*diff_args("revise", "revise"), "--out", str(tmp_path), "--only", "bos,batch,schedule"]
    assert main([*args, "--fail-on", "high"]) == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert [(f["axis"], f["key"], f["severity"], f["align"]) for f in report["findings"]] == [
        ("bos", "bos.probe_failed", "high", None)
    ]
    failed = report["findings"][0]
    assert failed["evidence"]["error"] == "KeyError: 'prompt'"
    assert failed["evidence"]["raised_at"].startswith("test_diff.py:")
    assert sorted(report["probes"]) == ["batch", "bos", "schedule"]
    assert report["probes"]["batch"]["a"]["global_batch"] == 32


def test_a_probe_failure_raises_under_parity_debug(monkeypatch):
    from parity.diff import run_probe

    def broken(a, b, ctx):
        raise ValueError("boom")

    monkeypatch.setenv("PARITY_DEBUG", "1")
    with pytest.raises(ValueError, match="boom"):
        run_probe("bos", broken, None, None, None)


def test_packing_on_one_side_completes_every_probe_and_reports_only_packing():
    """A packed recipe's per-example probes (loss mask, EOS, BOS, consistency, lengths) read its examples before
    packing; only the packing axis differs from the same recipe unpacked."""
    report = run_diff(
        "revise", "revise", data=SMALL_SYNTHETIC, samples=32, set_a=["training.packing=true"]
    ).to_dict()
    assert not [f for f in report["findings"] if f["key"].endswith("probe_failed")]
    assert sorted((f["severity"], f["key"]) for f in report["findings"] if f["severity"] != "info") == [
        ("high", "packing.optimizer_steps"),
        ("high", "training.packing"),
    ]
    mask_a, mask_b = report["probes"]["loss_mask"]["a"], report["probes"]["loss_mask"]["b"]
    assert mask_a["examples"] == mask_b["examples"] == 32
    assert mask_a["trained_tokens"] == mask_b["trained_tokens"]
    assert report["probes"]["packing"]["a"]["sample_sequences"] < 32


def test_a_probe_whose_example_trl_drops_reports_it_as_probe_failed(tmp_path):
    """At max_length 48 TRL's preparation drops the shared example (no trained token is left after truncation):
    the probes that follow it say so as their probe_failed finding, and the diff completes."""
    args = [*diff_args("revise", "revise", samples="8"), "--out", str(tmp_path), "--only", "template,batch"]
    assert (
        main([*args, "--set-a", "training.completion_only_loss=true", "--set-a", "training.max_length=48"])
        == 0
    )
    report = json.loads((tmp_path / "report.json").read_text())
    failed = [f for f in report["findings"] if f["key"] == "template.probe_failed"]
    assert len(failed) == 1 and failed[0]["severity"] == "high"
    assert "drops 1 of 1 example(s) at max_length 48" in failed[0]["evidence"]["error"]
