"""TRL's dataset preparation shared across the legs of one process (`parity.run.prepared`): a leg that prepares
the same rows the same way gets the first leg's Dataset and trains bit-identically (same loss at every step, same
eval loss); a leg with another data seed or learning rate hits, one with another max_length misses."""

from __future__ import annotations

from pathlib import Path

import pytest

from parity.materialize import materialize
from parity.registry import resolve_recipe
from parity.run.options import RunOptions
from parity.run.prepared import LOOP_ONLY_FIELDS, PreparedMemo, config_digest
from parity.run.proxy import build_proxy
from parity.run.proxy_vocab import proxy_vocab
from parity.run.train import execute_leg, leg_spec

DATA = "synthetic:200:40"
REVISE = ["training.per_device_train_batch_size=2", "launch.global_batch=4", "training.max_length=48"]


def _materialized(extra: list[str]):
    return materialize(resolve_recipe("revise", [*REVISE, *extra]), DATA, 1, 8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    opts = RunOptions(
        data=DATA, samples=16, eval_rows=4, eval_samples=0, max_steps=2, model="proxy"
    ).resolved()
    base = _materialized([])
    seeded = _materialized(["training.data_seed=1", "training.learning_rate=3e-3"])
    longer = _materialized(["training.max_length=40"])
    model = build_proxy(base.tokenizer, proxy_vocab([base, longer], opts), 0, root / "model")
    memo = PreparedMemo()

    def leg(name: str, m, prepared):
        run_dir = root / name
        spec = leg_spec("a", run_dir, run_dir / "a.recipe.yaml", opts, str(model), True)
        result = execute_leg(spec, m, prepared=prepared)
        counts = (memo.hits, memo.misses)
        return result, [r["loss"] for r in _steps(run_dir)], counts

    return {
        "memo": memo,
        "dirs": {name: str(root / name) for name in ("fresh", "first", "seeded", "seeded-fresh", "longer")},
        "fresh": leg("fresh", base, None),
        "first": leg("first", base, memo),
        "seeded": leg("seeded", seeded, memo),
        "seeded_fresh": leg("seeded-fresh", seeded, None),
        "longer": leg("longer", longer, memo),
    }


def _steps(run_dir):
    from parity.run.train import read_steps

    return read_steps(run_dir, "a")


def test_the_first_leg_prepares_through_trl_and_trains_as_without_the_memo(trained):
    fresh, first = trained["fresh"], trained["first"]
    assert len(fresh[1]) == 2
    assert first[1] == fresh[1]
    assert first[0]["final_eval_loss"] == fresh[0]["final_eval_loss"]
    assert first[2] == (0, 3)


def test_a_hit_with_another_data_seed_and_learning_rate_trains_bit_identically(trained):
    seeded, seeded_fresh = trained["seeded"], trained["seeded_fresh"]
    assert seeded[2] == (3, 3)  # all three datasets came from the memo
    memo = trained["memo"]
    assert memo.saved_cpu_s > 0 and set(memo._cost) == set(memo.entries)
    assert seeded[1] == seeded_fresh[1] and seeded[1] != trained["fresh"][1]
    assert seeded[0]["final_eval_loss"] == seeded_fresh[0]["final_eval_loss"]


def test_another_max_length_misses(trained):
    assert trained["longer"][2] == (3, 6)


def test_the_key_leaves_out_only_training_loop_fields():
    base, seeded = _materialized([]), _materialized(["training.data_seed=1", "training.learning_rate=3e-3"])
    packed = _materialized(["training.packing=true"])
    assert config_digest(base.sft_config) == config_digest(seeded.sft_config)
    assert config_digest(base.sft_config) != config_digest(packed.sft_config)
    assert {"max_length", "packing", "seed", "completion_only_loss", "dataset_text_field"}.isdisjoint(
        LOOP_ONLY_FIELDS
    )


def test_a_cpu_leg_records_its_tokens_per_second_and_no_mfu(trained):
    result, _, _ = trained["fresh"]
    steps = _steps(Path(result_dir(trained, "fresh")))
    speed = result["throughput"]
    assert speed["tokens"] == sum(r["tokens"] for r in steps) == steps[-1]["tokens_seen"] > 0
    assert speed["mean_sequence_length"] == round(speed["tokens"] / 8, 2)  # 2 steps x global batch 4
    assert speed["seconds"] == result["train_seconds"]
    # tokens per second come from the unrounded seconds; the recorded seconds are rounded to the millisecond
    seconds = result["train_seconds"]
    fastest, slowest = speed["tokens"] / (seconds - 0.0005), speed["tokens"] / (seconds + 0.0005)
    assert slowest - 0.005 <= speed["tokens_per_second"] <= fastest + 0.005
    assert (speed["device"], speed["devices"], speed["mfu"], speed["peak_tflops_per_device"]) == (
        "cpu",
        1,
        None,
        None,
    )
    assert speed["trainable_parameters"] == speed["parameters"]  # revise fine-tunes every weight


def result_dir(trained, name: str) -> str:
    return trained["dirs"][name]
