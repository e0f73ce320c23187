"""Shared fixtures: materialized recipe pairs on real GSM8K (when present) and on synthetic data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parity.materialize import Materialized, materialize
from parity.registry import resolve_recipe

REPO = Path(__file__).resolve().parent.parent
REAL_GSM8K = Path(os.environ.get("PARITY_GSM8K_DIR", REPO.parent / "shared" / "data" / "gsm8k"))
SMALL_SYNTHETIC = "synthetic:400:80"

needs_real_gsm8k = pytest.mark.skipif(
    not (REAL_GSM8K / "train.jsonl").is_file(), reason=f"real GSM8K not found at {REAL_GSM8K}"
)


def make(
    name: str,
    overrides: list[str] | None = None,
    data: str = SMALL_SYNTHETIC,
    world_size: int = 1,
    samples: int = 32,
) -> Materialized:
    """Materialize a recipe (name or YAML path) with dotted overrides."""
    return materialize(
        resolve_recipe(name, overrides or []), data=data, world_size=world_size, samples=samples
    )


def tokenized(m: Materialized):
    """The sample as the `datasets.Dataset` TRL's preparation returns (input_ids, labels)."""
    return m.prepared.dataset


def collator(m: Materialized):
    """TRL's collator for the recipe's tokenizer and SFTConfig."""
    from parity.trl_bridge import build_collator

    return build_collator(m.tokenizer, m.sft_config)


def with_recipe(m: Materialized, recipe) -> Materialized:
    """`m` with its recipe replaced (configs, data and tokenizer kept), for probes that read the recipe only."""
    import dataclasses

    return dataclasses.replace(m, resolved=dataclasses.replace(m.resolved, recipe=recipe))


def by_key(result) -> dict:
    """A probe result's findings by key."""
    return {f.key: f for f in result.findings}


@pytest.fixture(scope="session")
def real_pair() -> tuple[Materialized, Materialized]:
    if not (REAL_GSM8K / "train.jsonl").is_file():
        pytest.skip(f"real GSM8K not found at {REAL_GSM8K}")
    return make("llmhalluc", data=str(REAL_GSM8K), samples=64), make(
        "revise", data=str(REAL_GSM8K), samples=64
    )


@pytest.fixture(scope="session")
def synthetic_pair() -> tuple[Materialized, Materialized]:
    return make("llmhalluc"), make("revise")


@pytest.fixture(scope="session")
def revise(synthetic_pair) -> Materialized:
    """The synthetic pair's revise side (test modules that need their own revise override it)."""
    return synthetic_pair[1]
