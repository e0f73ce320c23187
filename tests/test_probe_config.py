"""Tests for the config probe: SFTConfig field differences it owns and the unread-upstream-key lint."""

from __future__ import annotations

import pytest
from conftest import by_key, make, with_recipe

from parity.errors import ParityError
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
        "upstream.cutoff_len",
        "upstream.ddp",
        "upstream.flash_attn",
    }


def test_real_pair_lints_cutoff_len_against_the_effective_max_length(real_pair):
    finding = by_key(probe(*real_pair, CTX))["upstream.cutoff_len"]
    assert (finding.severity, finding.a, finding.b, finding.align) == ("high", 2048, None, None)
    assert finding.evidence["closest"] == "max_length"
    entry = finding.evidence["a"]
    assert (entry["closest_in"], entry["closest_configured"], entry["closest_effective"]) == (
        "trl.SFTConfig",
        1024,
        1024,
    )
    assert entry["closest_source"] == "default:trl.SFTConfig"
    assert "'max_length' is 1024 (default:trl.SFTConfig), effective 1024" in finding.summary


def test_real_pair_lints_flash_attn_against_the_recipe_attention(real_pair):
    found = by_key(probe(*real_pair, CTX))
    flash = found["upstream.flash_attn"]
    assert (flash.severity, flash.a, flash.b, flash.evidence["closest"]) == (
        "medium",
        "fa2",
        None,
        "model.attn_implementation",
    )
    assert flash.evidence["a"]["closest_in"] == "recipe"
    assert flash.evidence["a"]["closest_effective"] is None
    assert flash.evidence["a"]["closest_source"] == "library default"
    ddp = found["upstream.ddp"]
    assert (ddp.severity, ddp.a, ddp.b, ddp.evidence["closest"]) == ("medium", 1, None, None)
    assert "no real field is close" in ddp.summary


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
    unread = ["compute_only_loss", "cutoff_len", "ddp", "flash_attn"] if name == "llmhalluc" else []
    assert result.values["a"]["unread_keys"] == result.values["b"]["unread_keys"] == unread


def test_one_field_pair_gives_one_finding(revise):
    result = probe(revise, make("revise", ["training.eval_accumulation_steps=4"]), CTX)
    [finding] = result.findings
    assert (finding.key, finding.severity, finding.align, finding.a, finding.b) == (
        "training.eval_accumulation_steps",
        "medium",
        "eval",
        None,
        4,
    )
    assert finding.evidence["b_source"] == "cli"


def test_optimizer_fields_are_reported_by_the_optim_probe(revise):
    result = probe(revise, make("revise", ["training.weight_decay=0.01"]), CTX)
    assert result.findings == []
    assert result.values["differing_fields"] == [
        {"field": "weight_decay", "probe": "optim", "a": 0.0, "b": 0.01}
    ]


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


def test_lint_follows_meant_to_the_field_the_key_promises(revise):
    recipe = revise.recipe.copy()
    recipe.upstream.config.update({"seq_len": 4096, "attn": "fa2"})
    recipe.upstream.meant.update({"seq_len": "training.max_length", "attn": "model.attn_implementation"})
    found = by_key(probe(revise, with_recipe(revise, recipe), CTX))
    assert set(found) == {"upstream.seq_len", "upstream.attn"}

    seq_len = found["upstream.seq_len"]
    assert (seq_len.severity, seq_len.a, seq_len.b, seq_len.evidence["closest"]) == (
        "high",
        None,
        4096,
        "max_length",
    )
    assert (seq_len.evidence["b"]["closest_in"], seq_len.evidence["b"]["closest_effective"]) == (
        "trl.SFTConfig",
        1024,
    )
    attn = found["upstream.attn"]
    assert (attn.severity, attn.a, attn.b) == ("medium", None, "fa2")
    entry = attn.evidence["b"]
    assert (entry["closest"], entry["closest_in"], entry["closest_effective"], entry["closest_source"]) == (
        "model.attn_implementation",
        "recipe",
        "flash_attention_2",
        "upstream:revise/sft.py",
    )
    assert "'model.attn_implementation' is 'flash_attention_2' (upstream:revise/sft.py)" in attn.summary


def test_lint_meant_reaches_into_the_lora_mapping(llmhalluc):
    recipe = llmhalluc.recipe.copy()
    recipe.upstream.config["rank"] = 4
    recipe.upstream.meant["rank"] = "peft.lora.r"
    [finding] = probe(llmhalluc, with_recipe(llmhalluc, recipe), CTX).findings
    entry = finding.evidence["b"]
    assert (finding.key, finding.a, finding.b, finding.severity) == ("upstream.rank", None, 4, "medium")
    assert (entry["closest"], entry["closest_effective"], entry["closest_source"]) == (
        "peft.lora.r",
        8,
        "upstream:llmhalluc/hparams/train_args.py",
    )


def test_lint_meant_naming_no_recipe_key_is_a_parity_error(revise):
    recipe = revise.recipe.copy()
    recipe.upstream.config["seq_len"] = 4096
    recipe.upstream.meant["seq_len"] = "model.max_seq"
    with pytest.raises(ParityError, match=r"names 'model.max_seq', which is not a recipe key"):
        probe(revise, with_recipe(revise, recipe), CTX)
