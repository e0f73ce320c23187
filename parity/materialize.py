"""Materialization: what training really sees for a recipe, built through the real libraries.

The patched tokenizer, the recipe's train/eval rows in TRL's conversational format, the real `SFTConfig`
(with world-size rules applied), the `LoraConfig` or None, and examples tokenized by TRL's own preparation.
No model weights are needed.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from parity.data.pipeline import RecipeData, conversational, preprocess_rows, split_rows
from parity.data.sources import RawData, load_raw
from parity.errors import ParityError
from parity.launch import LaunchPlan, plan_launch
from parity.spec import Recipe
from parity.tokenizer import TokenizerInfo, load_tokenizer

OUTPUT_DIR = "parity-output"
"""output_dir given to SFTConfig; nothing is written there by materialization."""
DEFAULT_SAMPLES = 256


@dataclass
class Materialized:
    """Everything training sees for one recipe, data source and world size."""

    recipe: Recipe
    world_size: int
    raw: RawData
    data: RecipeData
    tokenizer: Any
    tokenizer_info: TokenizerInfo
    sft_config: Any
    lora_config: Any
    launch: LaunchPlan
    samples: int | None = DEFAULT_SAMPLES
    """Train examples tokenized for the token/mask/length probes (None: all)."""
    context: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def train_rows(self) -> list[dict]:
        """Train rows in TRL's conversational prompt/completion format."""
        return conversational(self.data.train, self.recipe.prompt)

    @cached_property
    def eval_rows(self) -> list[dict]:
        return conversational(self.data.eval, self.recipe.prompt)

    @cached_property
    def sample_rows(self) -> list[dict]:
        """The first `samples` train rows in TRL's format (all of them when samples is None)."""
        return conversational(self.data.train[: self.samples], self.recipe.prompt)

    @cached_property
    def prepared(self):
        """The first `samples` train examples as TRL's dataset preparation tokenizes them (`trl_bridge.Prepared`:
        input_ids and labels as lists, completion starts where measured)."""
        from parity.trl_bridge import prepare_rows

        return prepare_rows(self.sample_rows, self.tokenizer, self.sft_config, "train")

    def conversational_raw(self, rows: list[dict[str, str]]) -> list[dict]:
        """Raw question/answer rows through this recipe's preprocessing and prompt, in TRL's format."""
        return conversational(preprocess_rows(rows, self.recipe.data.preprocess), self.recipe.prompt)

    def prepare_raw(self, rows: list[dict[str, str]]):
        """Raw rows through this recipe's whole pipeline, tokenized by TRL: compares the same rows across recipes."""
        from parity.trl_bridge import prepare_dataset

        return prepare_dataset(self.conversational_raw(rows), self.tokenizer, self.sft_config, "probe")


@cache
def sft_defaults() -> dict[str, Any]:
    """Every trl.SFTConfig field at its default, as the installed library defines it."""
    from trl import SFTConfig

    return {f.name: f.default for f in dataclasses.fields(SFTConfig) if f.default is not dataclasses.MISSING}


def build_sft_config(recipe: Recipe, launch: LaunchPlan, extra: dict[str, Any] | None = None):
    """The real trl.SFTConfig for the recipe, with launch rules applied."""
    import torch
    from trl import SFTConfig

    kwargs = dict(recipe.training)
    kwargs["gradient_accumulation_steps"] = launch.gradient_accumulation_steps
    kwargs.setdefault("output_dir", OUTPUT_DIR)
    if not torch.cuda.is_available():
        kwargs["use_cpu"] = (
            True  # lets bf16/fp16 recipes materialize here; the precision probe reads the flags
        )
    kwargs.update(extra or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return SFTConfig(**kwargs)
        except (ValueError, TypeError) as err:
            raise ParityError(
                f"recipe '{recipe.name}': trl.SFTConfig rejects its training section: {_first_line(err)}"
            ) from None


def build_lora_config(recipe: Recipe):
    """The real peft.LoraConfig, or None for full fine-tuning."""
    method = recipe.peft.method
    if method in ("none", "full", None):
        return None
    if method != "lora":
        raise ParityError(f"recipe '{recipe.name}': peft.method must be 'none' or 'lora', got '{method}'")
    from peft import LoraConfig

    try:
        return LoraConfig(**recipe.peft.lora)
    except (ValueError, TypeError) as err:
        raise ParityError(
            f"recipe '{recipe.name}': peft.LoraConfig rejects peft.lora: {_first_line(err)}"
        ) from None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_raw_cache: dict[tuple[str, str], RawData] = {}


def _raw_for(data: str, recipe: Recipe) -> RawData:
    key = (data, recipe.data.hub_path if data == "hub" else "")
    if key not in _raw_cache:
        _raw_cache[key] = load_raw(data, recipe)
    return _raw_cache[key]


def materialize(
    recipe: Recipe, data: str = "synthetic", world_size: int = 1, samples: int | None = DEFAULT_SAMPLES
) -> Materialized:
    """Build what training sees for `recipe` on `data` with `world_size` visible GPUs."""
    launch = plan_launch(recipe, world_size, sft_defaults())
    sft_config = build_sft_config(recipe, launch)
    lora_config = build_lora_config(recipe)
    tokenizer, tokenizer_info = load_tokenizer(recipe)
    raw = _raw_for(data, recipe)
    recipe_data = split_rows(recipe, raw)
    if not recipe_data.train:
        raise ParityError(f"recipe '{recipe.name}': no training rows from --data {data}")
    return Materialized(
        recipe=recipe,
        world_size=world_size,
        raw=raw,
        data=recipe_data,
        tokenizer=tokenizer,
        tokenizer_info=tokenizer_info,
        sft_config=sft_config,
        lora_config=lora_config,
        launch=launch,
        samples=samples,
        context={
            "data": raw.source,
            "world_size": world_size,
            "samples": samples if samples is not None else "all",
        },
    )
