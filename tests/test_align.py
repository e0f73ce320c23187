"""`parity run --align`: alignment rewrites one recipe through the override mechanism, and the pre-flight diff
of the aligned pair has no findings left on the aligned axes."""

from __future__ import annotations

import pytest

from parity.align import align, axis_values, parse_align_axes, save_aligned
from parity.axes import ALIGN_AXES
from parity.diff import diff_materialized
from parity.effective import effective_values
from parity.errors import ParityError
from parity.materialize import materialize
from parity.overrides import RESET, parse_assignment
from parity.plan import plan_launch, resolve
from parity.registry import resolve_recipe
from parity.run.preflight import preflight

DATA = "synthetic:200:40"


@pytest.fixture(scope="module")
def pair():
    return resolve_recipe("llmhalluc"), resolve_recipe("revise")


@pytest.fixture(scope="module")
def base_findings(pair):
    a, b = pair
    return diff_materialized(materialize(a, DATA, 1, 16), materialize(b, DATA, 1, 16)).findings


def values_only(recipe):
    return {k: v["value"] for k, v in effective_values(resolve(recipe)).items()}


@pytest.mark.parametrize("axis", ALIGN_AXES)
def test_aligned_axis_keys_match_the_reference(pair, axis):
    result = align(*pair, [axis])
    values = [axis_values(r, axis) for r in (result.aligned_a, result.aligned_b)]
    if axis == "eval":
        for v in values:
            v.pop("eval.prompt")
    assert values[0] == values[1]
    assert result.aligned_b.training == pair[1].training


def test_to_a_keeps_a_and_changes_b(pair):
    result = align(*pair, "schedule", to="a")
    assert result.applied_a == {}
    assert result.aligned_a.training == pair[0].training
    assert result.aligned_b.training["lr_scheduler_type"] == "cosine"
    assert result.overrides_b == [
        "launch.early_stopping_patience=3",
        "launch.early_stopping_threshold=0.0001",
        'training.lr_scheduler_type="cosine"',
    ]


def test_key_set_only_on_the_target_is_reset_to_the_library_default(pair):
    result = align(*pair, "batch")
    assert result.applied_a["training.gradient_accumulation_steps"] == RESET
    assert "gradient_accumulation_steps" not in result.aligned_a.training
    assert result.aligned_a.provenance["launch.global_batch"] == "align:batch"


@pytest.mark.parametrize("world_size", [1, 2, 4, 8])
def test_aligning_batch_matches_the_global_batch_at_every_world_size(pair, world_size):
    result = align(*pair, "batch")
    plans = [plan_launch(r, world_size) for r in (result.aligned_a, result.aligned_b, pair[1])]
    assert plans[0].global_batch == plans[1].global_batch == plans[2].global_batch
    assert plans[0].num_processes == plans[1].num_processes == world_size


def test_overrides_are_key_value_strings_that_parse_back(pair):
    result = align(*pair, "all")
    parsed = dict(parse_assignment(text) for text in result.overrides_a)
    assert parsed == result.applied_a
    assert parsed["peft.method"] == "none"
    assert result.overrides_b == []


def test_aligning_eval_gives_the_same_eval_prompt_text(pair):
    from parity.run.evaluate import eval_text

    result = align(*pair, "eval")
    texts = [eval_text(r, {"question": "Q?"}) for r in (result.aligned_a, result.aligned_b)]
    assert texts[0] == texts[1] == "Q?\n" + pair[1].prompt.instruction


def test_unchanged_keys_produce_no_override(pair):
    assert align(pair[1], pair[1].copy(), "all").applied_a == {}


def test_unknown_axis_names_the_closest():
    with pytest.raises(ParityError, match="unknown align axis 'bach'; did you mean 'batch'"):
        parse_align_axes("bach")


def test_all_expands_to_every_axis_and_none_to_nothing():
    assert parse_align_axes("all") == list(ALIGN_AXES)
    assert parse_align_axes("none") == []
    assert parse_align_axes("template,batch") == ["batch", "template"]


def test_invalid_to_is_an_error(pair):
    with pytest.raises(ParityError, match="--to must be 'a' or 'b'"):
        align(*pair, "batch", to="c")


@pytest.mark.parametrize("axes", ["batch,template", "all"])
def test_saved_aligned_yaml_round_trips(pair, axes, tmp_path):
    set_a = ["training.seed=7"]
    a = resolve_recipe("llmhalluc", set_a)
    result = align(a, pair[1], axes)
    paths = save_aligned(result, tmp_path, "llmhalluc", "revise", set_a=set_a)
    assert paths["a"].name == "llmhalluc.aligned.yaml"
    loaded = resolve_recipe(str(paths["a"]))
    assert values_only(loaded) == values_only(result.aligned_a)
    assert values_only(resolve_recipe(str(paths["b"]))) == values_only(pair[1])
    assert "extends: llmhalluc" in paths["a"].read_text()


def test_saved_yaml_names_both_sides_when_the_recipes_share_a_name(pair, tmp_path):
    result = align(pair[1], pair[1].copy(), "batch")
    paths = save_aligned(result, tmp_path, "revise", "revise")
    assert sorted(p.name for p in paths.values()) == ["revise.a.aligned.yaml", "revise.b.aligned.yaml"]


EXTRA_DIFFERENCE = {
    "optim": (
        ["training.weight_decay=0.01", "training.adam_beta2=0.95"],
        {"training.weight_decay", "training.adam_beta2"},
    ),
    "data_order": (
        ["training.train_sampling_strategy=group_by_length"],
        {"training.train_sampling_strategy", "data_order.first_batches"},
    ),
    "loss_norm": (
        ["training.average_tokens_across_devices=false"],
        {"training.average_tokens_across_devices"},
    ),
    "packing": (["training.padding_free=true", "training.max_length=null"], {"training.padding_free"}),
    "padding": (["training.pad_to_multiple_of=8"], {"training.pad_to_multiple_of"}),
    "eos": (["training.eos_token=<|eot_id|>"], {"training.eos_token", "eos.ids"}),
    "tokens": (["training.max_length=2048"], {"training.max_length"}),
    "model": (["model.name_or_path=meta-llama/Llama-3.2-3B"], {"model.base"}),
}
"""Axes on which the built-in pair agrees get a hand-made difference on A (and the finding keys it gives), so
every axis is exercised."""


@pytest.mark.parametrize("axis", ALIGN_AXES)
def test_aligning_one_axis_removes_its_findings_in_the_preflight(pair, base_findings, axis):
    if not any(f.align == axis for f in base_findings):
        assert axis in EXTRA_DIFFERENCE, (
            f"the built-in pair has no '{axis}' findings: add one to EXTRA_DIFFERENCE"
        )
        overrides, keys = EXTRA_DIFFERENCE[axis]
        pair = (resolve_recipe("llmhalluc", overrides), pair[1])
        before = diff_materialized(
            materialize(pair[0], DATA, 1, 16), materialize(pair[1], DATA, 1, 16)
        ).findings
        assert {f.key for f in before if f.align == axis} == keys
    result = align(*pair, [axis])
    check = preflight(
        materialize(result.aligned_a, DATA, 1, 16), materialize(result.aligned_b, DATA, 1, 16), [axis], 1
    )
    assert [(f.key, f.align) for f in check.failed] == []


def test_aligning_everything_leaves_no_finding_on_any_axis(pair):
    result = align(*pair, "all")
    check = preflight(
        materialize(result.aligned_a, DATA, 1, 16),
        materialize(result.aligned_b, DATA, 1, 16),
        list(ALIGN_AXES),
        1,
    )
    assert [f.key for f in check.failed] == []
    assert all(f.align is None for f in check.remaining)
