"""Tests for the `loss_norm` probe: the loss reduction the HF Trainer and TRL apply, and the per-token weights."""

from __future__ import annotations

import pytest
from conftest import by_key, make

from parity.align import align
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.probes.loss_norm import (
    first_step_weights,
    measure,
    probe,
    step_reduction,
    trainer_passes_num_items,
)
from parity.registry import resolve_recipe

CTX = ProbeContext()
PER_DEVICE_MEAN = ["training.average_tokens_across_devices=false"]


def test_trainer_passes_num_items_in_batch_to_llama():
    assert trainer_passes_num_items("LlamaForCausalLM") is True


def test_builtin_pair_reduces_the_same_way_over_different_token_counts(synthetic_pair):
    result = probe(*synthetic_pair, CTX)
    a, b = result.values["a"], result.values["b"]
    assert a["reduction"] == b["reduction"] == "step_token_mean"
    assert (a["trained_tokens_per_step"], b["trained_tokens_per_step"]) == (10028.0, 4169.0)
    assert (a["shortest_longest_trained_tokens"], b["shortest_longest_trained_tokens"]) == (
        [41, 123],
        [94, 162],
    )
    assert a["token_weight_spread"] == b["token_weight_spread"] == 1.0
    assert [(f.key, f.severity, f.align) for f in result.findings] == [
        ("loss_norm.tokens_per_step", "info", None)
    ]


def test_averaging_tokens_per_device_on_two_gpus_is_a_different_reduction():
    result = probe(make("revise", world_size=2), make("revise", PER_DEVICE_MEAN, world_size=2), CTX)
    findings = by_key(result)
    assert sorted(findings) == ["loss_norm.reduction", "training.average_tokens_across_devices"]
    reduction = findings["loss_norm.reduction"]
    assert (reduction.severity, reduction.a, reduction.b, reduction.align) == (
        "high",
        "step_token_mean",
        "device_token_mean",
        "loss_norm",
    )
    assert reduction.evidence["b"]["token_weight_spread"] == 1.030687
    field = findings["training.average_tokens_across_devices"]
    assert (field.severity, field.a, field.b, field.align) == ("medium", True, False, "loss_norm")


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_aligning_loss_norm_removes_the_findings():
    pair = align(resolve_recipe("revise", PER_DEVICE_MEAN), resolve_recipe("revise"), ["loss_norm"])
    a, b = (materialize(r, "synthetic:400:80", 2, 32) for r in (pair.aligned_a, pair.aligned_b))
    assert probe(a, b, CTX).findings == []


def test_per_device_token_mean_weighs_tokens_unequally_across_devices():
    """transformers 34242 (follow-up of PR 34191, fixed by PR 34373): with num_items_in_batch counted per device,
    a token on a device holding few trained tokens weighs more than one on a device holding many."""
    counts = [10, 10, 30, 50]  # per_device 1, two devices: device 0 gets rows 0 and 2, device 1 rows 1 and 3
    global_mean = first_step_weights(counts, "step_token_mean", 1, 2, 2)
    per_device = first_step_weights(counts, "device_token_mean", 1, 2, 2)
    assert global_mean == [0.01] * 4
    assert per_device == [1 / 80, 1 / 120, 1 / 80, 1 / 120]
    assert max(per_device) / min(per_device) == 1.5


@pytest.mark.parametrize(
    ("family", "architecture"), [("qwen", "Qwen3ForCausalLM"), ("phi3", "Phi3ForCausalLM")]
)
def test_the_trained_class_is_the_models_own(family, architecture):
    from model_fixtures import overrides

    values = measure(make("revise", overrides(family), samples=8))
    assert (values["architecture"], values["trainer_passes_num_items_in_batch"]) == (architecture, True)
    assert values["reduction"] == "step_token_mean"


def test_an_unknown_model_class_makes_the_reduction_unknown_and_no_claim():
    known = make("revise", samples=8)
    unknown = make("revise", ["model.revision=refs/pr/7"], samples=8)
    values = measure(unknown)
    assert (values["architecture"], values["reduction"], values["token_weight_spread"]) == (
        None,
        "unknown",
        None,
    )
    assert [f.key for f in probe(known, unknown, CTX).findings] == []


def _step(weights: list[float], passed: int | None, logged: float, losses=(11.95, 11.95)) -> dict:
    """A measured first optimizer step (loss_step.json) of a 10-token and a 100-token row at accumulation 2."""
    return {
        "measured": True,
        "accumulation": 2,
        "per_device_train_batch_size": 1,
        "logged_loss": logged,
        "micro_batches": [
            {
                "num_items_in_batch_passed": passed is not None,
                "num_items_in_batch": passed,
                "rows": [{"trained_tokens": tokens, "token_weight": weight, "loss": loss}],
            }
            for tokens, weight, loss in zip((10, 100), weights, losses, strict=True)
        ],
    }


TRANSFORMERS_4_47_0 = _step([0.1, 0.01], None, 23.887, (11.906235, 11.980722))
"""Measured on transformers 4.47.0 (tests' numbers from the gallery's case 03): num_items_in_batch never passed."""
TRANSFORMERS_4_47_1 = _step([1 / 112, 1 / 112], 112, 11.7391, (11.948637, 11.952872))


@pytest.mark.parametrize(
    ("step", "kind", "spread", "example_weight", "gradient"),
    [
        (TRANSFORMERS_4_47_1, "step_token_mean", 1.0, 10.0, 0.9821),
        (TRANSFORMERS_4_47_0, "micro_batch_mean_summed", 10.0, 1.0, 2.0),
        (_step([0.05, 0.005], None, 11.95), "micro_batch_mean", 10.0, 1.0, 1.0),
        (_step([0.05, 0.01], None, 11.95), "other", 5.0, 2.0, 1.5),
    ],
)
def test_the_measured_token_weights_name_the_reduction(step, kind, spread, example_weight, gradient):
    """transformers 35438: a token mean over the step (num_items_in_batch), 4.47.0's mean per micro-batch not
    divided by the accumulation steps, and the mean of micro-batch means of transformers <= 4.45."""
    found = step_reduction(step)
    assert (found["reduction"], found["token_weight_spread"]) == (kind, spread)
    assert (found["longest_to_shortest_example_weight"], found["gradient_scale"]) == (
        example_weight,
        gradient,
    )


def test_a_measured_trainer_step_replaces_the_model_class_answer(revise):
    """transformers 4.47.0 drops num_items_in_batch although the model accepts it: the model class says 'passes',
    the measured step says otherwise, and the logged loss is twice the step's token mean."""
    import copy
    from types import SimpleNamespace

    from parity.probes.env import running_version

    assert measure(revise)["trainer_passes_num_items_in_batch"] is True  # its rows and examples are built now

    def captured(step: dict):
        """revise as a capture whose trainer step was measured (its rows and examples kept, measurements fresh)."""
        m = copy.copy(revise)
        m.measurements = {}
        # captured under the transformers installed here
        manifest = {"versions": {"transformers": running_version("transformers")}}
        m.captured = SimpleNamespace(captured=SimpleNamespace(loss_step=step, manifest=manifest))
        return m

    a, b = captured(TRANSFORMERS_4_47_0), captured(TRANSFORMERS_4_47_1)
    assert (
        measure(a)["trainer_passes_num_items_in_batch"],
        measure(b)["trainer_passes_num_items_in_batch"],
    ) == (
        False,
        True,
    )
    findings = by_key(probe(a, b, CTX))
    assert sorted(findings) == ["loss_norm.logged_loss_scale", "loss_norm.reduction"]
    reduction = findings["loss_norm.reduction"]
    assert (reduction.severity, reduction.a, reduction.b) == (
        "high",
        "micro_batch_mean_summed",
        "step_token_mean",
    )
    assert "a token of the 10-token row weighs 0.1, of the 100-token row 0.01" in reduction.summary
    logged = findings["loss_norm.logged_loss_scale"]
    assert (logged.severity, logged.a, logged.b) == ("medium", 1.9949, 0.9821)
    assert probe(b, captured(TRANSFORMERS_4_47_1), CTX).findings == []
    unmeasured = captured({"measured": False, "reason": "the trainer's step raised ..."})
    assert measure(unmeasured)["measured_by"].startswith("the model class")


def test_a_capture_that_ran_another_transformers_is_not_read_from_the_installed_one(revise):
    """No --train-step and another transformers in the capture: the installed Trainer's introspection would answer
    for the wrong version, so the reduction is not measured (no reduction finding compares it)."""
    import copy
    from types import SimpleNamespace

    from parity.probes.env import installed_instead, running_version

    def captured(version: str):
        m = copy.copy(revise)
        m.measurements = {}
        manifest = {"versions": {"transformers": version}}
        m.captured = SimpleNamespace(captured=SimpleNamespace(loss_step=None, manifest=manifest))
        return m

    old = measure(captured("4.46.3"))
    assert (old["reduction"], old["trainer_passes_num_items_in_batch"]) == ("not_measured", None)
    assert old["measured_by"] == (
        "not measured: the Trainer's introspection would read "
        f"the installed transformers {running_version('transformers')} (the capture ran 4.46.3)"
    )
    here = measure(captured(running_version("transformers")))
    assert (here["reduction"], here["trainer_passes_num_items_in_batch"]) == ("step_token_mean", True)
    assert installed_instead(SimpleNamespace(captured=None), "transformers") is None
    assert not [f for f in probe(captured("4.46.3"), revise, CTX).findings if f.key == "loss_norm.reduction"]
