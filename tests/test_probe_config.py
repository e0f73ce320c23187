"""Tests for the config probe: SFTConfig field differences it owns and the unread-upstream-key lint."""

from __future__ import annotations

import pytest
from conftest import by_key, make, with_recipe

from parity.probes import ProbeContext
from parity.probes.config import model_loader_kwargs, probe, unread_keys

CTX = ProbeContext()


@pytest.fixture(scope="module")
def llmhalluc(synthetic_pair):
    return synthetic_pair[0]


def test_real_pair_lints_compute_only_loss_as_high(real_pair):
    finding = by_key(probe(*real_pair, CTX))["upstream.compute_only_loss"]
    assert (finding.severity, finding.a, finding.b, finding.align) == ("high", False, None, None)
    assert finding.evidence["closest"] == "completion_only_loss"
    assert finding.evidence["a"]["closest_effective"] is True
    assert finding.evidence["a"]["closest_configured"] is None
    assert "completion_only_loss" in finding.summary and "llmhalluc" in finding.summary


def test_real_pair_reports_only_config_owned_fields(real_pair):
    keys = set(by_key(probe(*real_pair, CTX)))
    assert keys == {
        "training.ddp_find_unused_parameters",
        "training.eval_steps",
        "training.logging_steps",
        "training.per_device_eval_batch_size",
        "training.push_to_hub",
        "training.run_name",
        "training.save_steps",
        "training.seed",
        "upstream.compute_only_loss",
    }


def test_real_pair_other_probes_fields_listed_not_reported(real_pair):
    differing = {d["field"]: d["probe"] for d in probe(*real_pair, CTX).values["differing_fields"]}
    assert differing["per_device_train_batch_size"] == "batch"
    assert differing["lr_scheduler_type"] == "schedule"
    assert differing["completion_only_loss"] == "loss_mask"


def test_real_pair_evidence_names_who_set_each_side(real_pair):
    seed = by_key(probe(*real_pair, CTX))["training.seed"]
    assert (seed.a, seed.b, seed.severity, seed.align) == (3, 42, "low", "seed")
    assert seed.evidence["a_source"] == "upstream:configs/llmhalluc/gsm8k/sft.yaml"
    assert seed.evidence["b_source"] == "default:trl.SFTConfig"
    assert "library default" in seed.summary


def test_eval_steps_type_change_is_medium_eval(real_pair):
    finding = by_key(probe(*real_pair, CTX))["training.eval_steps"]
    assert (finding.a, finding.b, finding.severity, finding.align) == (500, 0.1, "medium", "eval")
    assert finding.evidence["changes"][0]["change"] == "type_changes"


@pytest.mark.parametrize("name", ["revise", "llmhalluc"])
def test_identical_pair_has_no_findings(name, revise, llmhalluc):
    m = {"revise": revise, "llmhalluc": llmhalluc}[name]
    result = probe(m, m, CTX)
    assert result.findings == []
    assert result.values["a"]["unread_keys"] == (["compute_only_loss"] if name == "llmhalluc" else [])


def test_one_field_pair_gives_one_finding(revise):
    result = probe(revise, make("revise", ["training.weight_decay=0.01"]), CTX)
    [finding] = result.findings
    assert (finding.key, finding.severity, finding.align, finding.a, finding.b) == (
        "training.weight_decay",
        "medium",
        "optim",
        0.0,
        0.01,
    )
    assert finding.evidence["b_source"] == "cli"


def test_field_owned_by_another_probe_is_not_reported(revise):
    result = probe(revise, make("revise", ["training.lr_scheduler_type=cosine"]), CTX)
    assert result.findings == []
    assert result.values["differing_fields"] == [
        {"field": "lr_scheduler_type", "probe": "schedule", "a": "linear", "b": "cosine"}
    ]


def test_lint_skips_renamed_loader_and_consumed_keys(revise):
    recipe = revise.recipe.copy()
    recipe.upstream.config.update(
        {"torch_dtype": "bfloat16", "warmup_ratio": 0.1, "learning_rat": 1e-4, "lora_alpah": 16, "zzz_qqq": 1}
    )
    assert set(unread_keys(with_recipe(revise, recipe))) == {
        "learning_rat",
        "lora_alpah",
        "zzz_qqq",
    }
    assert {"torch_dtype", "attn_implementation", "trust_remote_code", "revision"} <= model_loader_kwargs()


def test_lint_closest_fields_and_severity(revise):
    recipe = revise.recipe.copy()
    recipe.upstream.config.update({"learning_rat": 1e-4, "lora_alpah": 16, "zzz_qqq": 1})
    found = by_key(probe(revise, with_recipe(revise, recipe), CTX))
    assert set(found) == {"upstream.learning_rat", "upstream.lora_alpah", "upstream.zzz_qqq"}
    rat = found["upstream.learning_rat"]
    assert (rat.severity, rat.a, rat.b, rat.evidence["closest"]) == ("medium", None, 1e-4, "learning_rate")
    assert found["upstream.lora_alpah"].evidence["b"]["closest_in"] == "peft.LoraConfig"
    assert found["upstream.lora_alpah"].evidence["closest"] == "lora_alpha"
    assert found["upstream.zzz_qqq"].evidence["closest"] is None
