"""The real llmhalluc checkout, captured, against the built-in llmhalluc recipe on real GSM8K: every probe that
pushes a shared raw row through a recipe (tokens, template, prompt, loss mask) and the data probe read the
captured rows, and agree with the built-in recipe (skipped where ../shared/upstream or real GSM8K is absent)."""

from __future__ import annotations

import pytest
from conftest import REAL_GSM8K
from test_capture_upstream import llmhalluc  # noqa: F401 - the module fixture capturing the real checkout

from parity.capture.source import recipe_for
from parity.diff import diff_materialized
from parity.materialize import materialize
from parity.probes import ProbeContext
from parity.registry import resolve_recipe

SHARED_ROW_AXES = ["tokens", "template", "prompt", "loss_mask", "data"]


@pytest.fixture(scope="module")
def captured_vs_builtin(llmhalluc):  # noqa: F811
    if not (REAL_GSM8K / "train.jsonl").is_file():
        pytest.skip(f"real GSM8K not found at {REAL_GSM8K}")
    captured = materialize(recipe_for(f"capture:{llmhalluc[0].path}"), data=str(REAL_GSM8K), samples=64)
    builtin = materialize(resolve_recipe("llmhalluc"), data=str(REAL_GSM8K), samples=64)
    return diff_materialized(captured, builtin, only=SHARED_ROW_AXES, context=ProbeContext())


def test_captured_llmhalluc_trains_the_shared_rows_as_the_builtin_recipe_does(captured_vs_builtin):
    # the only difference is where the template comes from (the captured tokenizer vs the recipe's fallback)
    assert [f.key for f in captured_vs_builtin.findings] == ["template.source"]
    tokens = captured_vs_builtin.probes["tokens"]
    assert tokens["a"]["example_ids"] == tokens["b"]["example_ids"]
    assert (tokens["a"]["example_length"], tokens["a"]["example_ids"][:2]) == (117, [198, 27])
    assert (
        tokens["a"]["example_source"]
        == "captured train row 0; input_ids and labels from the trainer's collator"
    )
    data = captured_vs_builtin.probes["data"]
    assert data["a"]["rows"] == data["b"]["rows"] == {"train": 7473, "eval": 1319, "test": 1319}
    assert data["a"]["train_text_digest"] == data["b"]["train_text_digest"]
    loads = data["a"]["source"].split("; ")
    assert [load.split(" <- ")[0] for load in loads] == [
        "mtybilly/GSM8K split train",
        "mtybilly/GSM8K split test",
    ]
    assert all(load.endswith("mtybilly-gsm8k") for load in loads)
