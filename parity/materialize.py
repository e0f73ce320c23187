"""Materialization: what training really sees for a recipe, built through the real libraries.

A `Resolved` recipe (parity.plan: launch plan, `SFTConfig`, `LoraConfig` or None) plus the patched tokenizer,
the train/eval rows in TRL's conversational format and examples tokenized by TRL's own preparation.
No model weights are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from parity.capture.examples import CapturedLookup, SharedExample, completion_text
from parity.capture.reader import load_capture
from parity.capture.source import captured_directory, captured_examples
from parity.data.pipeline import RecipeData, conversational, preprocess_rows, split_rows
from parity.data.sources import RawData, load_raw, warn_long_rows
from parity.errors import ParityError
from parity.models import ModelFacts, model_facts
from parity.plan import LaunchPlan, Resolved, StepPlan, resolve, step_plan
from parity.render import check_recipe_rendering
from parity.spec import Recipe
from parity.tokenizer import TokenizerInfo, load_tokenizer

DEFAULT_SAMPLES = 256


@dataclass
class Materialized:
    """Everything training sees for one recipe, data source and world size."""

    resolved: Resolved
    raw: RawData
    data: RecipeData
    tokenizer: Any
    tokenizer_info: TokenizerInfo
    samples: int | None = DEFAULT_SAMPLES
    """Train examples tokenized for the token/mask/length probes (None: all)."""
    context: dict[str, Any] = field(default_factory=dict)
    captured: CapturedLookup | None = None
    """For a captured recipe: where shared raw rows are found among the rows its own code produced."""
    _step_plans: dict[int, StepPlan] = field(default_factory=dict, init=False, repr=False, compare=False)
    measurements: dict[tuple, dict[str, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """What each probe measured on this recipe, by (probe, arguments) (see parity.probes.measurement)."""

    @property
    def recipe(self) -> Recipe:
        return self.resolved.recipe

    @cached_property
    def model_facts(self) -> ModelFacts:
        """The base model's facts from its own config.json and generation_config.json (parity.models)."""
        return model_facts(self.recipe)

    @property
    def world_size(self) -> int:
        return self.resolved.world_size

    @property
    def sft_config(self) -> Any:
        return self.resolved.sft_config

    @property
    def lora_config(self) -> Any:
        return self.resolved.lora_config

    @property
    def launch(self) -> LaunchPlan:
        """The launch plan at this materialization's world size."""
        return self.resolved.launch

    def launch_plan(self, world_size: int) -> LaunchPlan:
        return self.resolved.launch_plan(world_size)

    def step_plan(self, world_size: int | None = None) -> StepPlan:
        """Optimizer steps over the train split at its own world size or another one (computed once each)."""
        n = self.world_size if world_size is None else world_size
        if n not in self._step_plans:
            # train_rows, not data.train: a captured recipe's rows are the ones its own code built
            self._step_plans[n] = step_plan(self.launch_plan(n), self.sft_config, len(self.train_rows))
        return self._step_plans[n]

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

    @cached_property
    def examples(self):
        """The sampled train examples one per row (`trl_bridge.Prepared`): `prepared` itself, or for a recipe that
        packs, the same rows as TRL tokenizes them before packing (packing skips truncation). Probes that follow an
        example's prompt, completion, BOS or EOS read these; `prepared` is what the trainer batches."""
        if not self.sft_config.packing or self.captured is not None:
            return self.prepared
        from parity.trl_bridge import before_packing, prepare_rows

        return prepare_rows(self.sample_rows, self.tokenizer, before_packing(self.sft_config), "train")

    def conversational_raw(self, rows: list[dict[str, str]]) -> list[dict]:
        """Raw question/answer rows through this recipe's preprocessing and prompt, in TRL's format (for a
        captured recipe: the captured rows; a row the capture does not contain is a RowNotCaptured error)."""
        if self.captured is not None:
            return [_found(example).conversation or {} for example in self.captured.examples(rows)]
        return conversational(preprocess_rows(rows, self.recipe.data.preprocess), self.recipe.prompt)

    def prepare_raw(self, rows: list[dict[str, str]]):
        """Raw rows through this recipe's whole pipeline, tokenized by TRL: compares the same rows across recipes
        (for a captured recipe: the examples its own code prepared, as in conversational_raw)."""
        if self.captured is not None:
            return [
                {"input_ids": example.input_ids, "labels": example.labels}
                for example in map(_found, self.captured.examples(rows))
            ]
        prepared = self._tokenized(self.conversational_raw(rows))
        return [
            {"input_ids": input_ids, "labels": labels}
            for input_ids, labels in zip(prepared.input_ids, prepared.labels, strict=True)
        ]

    def _tokenized(self, conversations: list[dict]):
        """Conversations through TRL's preparation, one example each (an error where TRL drops one)."""
        from parity.trl_bridge import prepare_rows

        prepared = prepare_rows(conversations, self.tokenizer, self.sft_config, "probe")
        dropped = len(conversations) - len(prepared)  # TRL drops an example with nothing left to train on
        if dropped:
            raise ParityError(
                f"recipe '{self.recipe.name}': TRL's dataset preparation drops {dropped} of {len(conversations)} "
                f"example(s) at max_length {self.sft_config.max_length} (no trained token is left); "
                "raise training.max_length"
            )
        return prepared

    def shared_examples(self, rows: list[dict[str, str]]) -> list[SharedExample]:
        """Each shared raw row as this recipe trains it: through its pipeline here, or for a captured recipe
        the example its own code made, or a clearly labelled stand-in where the capture lacks the row."""
        if self.captured is not None:
            return self.captured.examples(rows)
        conversations = self.conversational_raw(rows)
        prepared = self._tokenized(conversations)
        return [
            SharedExample(
                row,
                conversation,
                conversation["prompt"][-1]["content"],
                input_ids,
                labels,
                same_row=True,
                source="this recipe's preprocessing and prompt, tokenized by TRL's preparation",
            )
            for row, conversation, input_ids, labels in zip(
                rows, conversations, prepared.input_ids, prepared.labels, strict=True
            )
        ]

    def shared_user_messages(self, rows: list[dict[str, str]]) -> list[str | None]:
        """The user message this recipe builds for each shared raw row (None: a captured recipe's own code never
        produced the row); nothing is tokenized."""
        if self.captured is None:
            return [conv["prompt"][-1]["content"] for conv in self.conversational_raw(rows)]
        return [e.user_message if e.same_row else None for e in self.captured.examples(rows)]

    def shared_completions(self, rows: list[dict[str, str]]) -> list[str | None]:
        """The completion text this recipe trains on for each shared raw row (None as in shared_user_messages)."""
        if self.captured is None:
            return [completion_text(conv) for conv in self.conversational_raw(rows)]
        return [
            completion_text(e.conversation) if e.same_row and e.conversation else None
            for e in self.captured.examples(rows)
        ]


class RowNotCaptured(ParityError):
    """A shared raw row that a captured recipe's own code never produced."""


def _found(example: SharedExample) -> SharedExample:
    if not example.same_row:
        raise RowNotCaptured(f"raw row {example.row.get('question', '')[:60]!r}: {example.source}")
    return example


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
    resolved = resolve(recipe, world_size)
    tokenizer, tokenizer_info = load_tokenizer(recipe)
    raw = _raw_for(data, recipe)
    recipe_data = split_rows(recipe, raw)
    if not recipe_data.train:
        raise ParityError(f"recipe '{recipe.name}': no training rows from --data {data}")
    warn_long_rows(raw.source, raw.train + raw.test, resolved.sft_config.max_length)
    check_recipe_rendering(recipe, tokenizer, recipe_data.train)
    materialized = Materialized(
        resolved=resolved,
        raw=raw,
        data=recipe_data,
        tokenizer=tokenizer,
        tokenizer_info=tokenizer_info,
        samples=samples,
        context={
            "data": raw.source,
            "world_size": world_size,
            "samples": samples if samples is not None else "all",
        },
    )
    captured = captured_directory(recipe)
    if captured is not None:  # the recipe's own code tokenized and collated these: read them, never redo them
        captured_examples(load_capture(captured)).install(materialized, samples)
    return materialized
