"""Materialization: what training really sees for a recipe, built through the real libraries.

A `Resolved` recipe (parity.plan: launch plan, `SFTConfig`, `LoraConfig` or None) plus the patched tokenizer,
the train/eval rows in TRL's conversational format and examples tokenized by TRL's own preparation.
No model weights are needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from parity.capture.examples import CapturedLookup, SharedExample
from parity.capture.reader import load_capture
from parity.capture.source import captured_directory, captured_examples
from parity.capture.tokenized import (
    is_pre_tokenized,
    loaded_format,
    loaded_rows,
    rows_limited_note,
    trainer_rows,
)
from parity.data.conversation import (
    Conversation,
    conversation_key,
    key_of_turns,
    strip_constant_words,
    trl_conversation,
)
from parity.data.formats import BoundFormat, RowError, bind_format
from parity.data.pipeline import (
    CHAT_TEMPLATE_FORMATS,
    RecipeData,
    check_placeholders,
    exchange_rows,
    preprocess_rows,
    split_rows,
    trl_format_of,
    trl_format_of_row,
    trl_rows,
)
from parity.data.sources import RawData, load_raw, warn_long_rows
from parity.errors import ParityError
from parity.models import ModelFacts, model_facts
from parity.plan import LaunchPlan, Resolved, StepPlan, resolve, step_plan
from parity.render import check_recipe_rendering
from parity.spec import Recipe
from parity.tasks import Task, task_of
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

    @cached_property
    def task(self) -> Task | None:
        """The task pack the recipe names (its gold rule and answer format), None when it names none."""
        return task_of(self.recipe)

    @cached_property
    def row_format(self) -> BoundFormat:
        """The format the raw rows are read in: the recipe's named one, else detected from their columns."""
        return recipe_format(self.recipe, self.raw.train[0])

    @cached_property
    def trl_format(self) -> str:
        """The TRL dataset format the recipe hands its trainer (parity.data.pipeline.TRL_FORMATS; for a captured
        recipe, the format of the rows its own code handed over)."""
        if self.captured is not None and self.train_rows:
            return trl_format_of_row(self.train_rows[0])
        rows = self.data.train[:1]
        return trl_format_of(self.recipe, self.row_format, self.conversations(rows)[0] if rows else None)

    def conversations(self, rows: list[dict[str, Any]]) -> list[Conversation]:
        """Rows in the recipe's row format as Conversations (before its prompt is applied)."""
        fmt = self.row_format
        try:
            return [fmt.convert(row) for row in rows]
        except RowError as err:
            raise ParityError(
                f"recipe '{self.recipe.name}': a row in format {fmt.describe()}: {err}"
            ) from None

    def recipe_rows(self, rows: list[dict[str, Any]]) -> list[dict]:
        """Preprocessed rows as this recipe hands them to TRL (its prompt applied, in its TRL format)."""
        if self.trl_format == "prompt_completion" and self.recipe.prompt.system is None:
            try:
                exchanges = self.row_format.exchanges(rows)
            except RowError as err:
                raise ParityError(
                    f"recipe '{self.recipe.name}': a row in format {self.row_format.describe()}: {err}"
                ) from None
            if exchanges is not None:
                return exchange_rows(exchanges, rows, self.recipe)
        return trl_rows(self.conversations(rows), rows, self.recipe, self.trl_format)

    def step_plan(self, world_size: int | None = None) -> StepPlan:
        """Optimizer steps over the train split at its own world size or another one (computed once each)."""
        n = self.world_size if world_size is None else world_size
        if n not in self._step_plans:
            # a captured recipe's train rows are the ones its own code built (on the full data), not the shared data's
            rows = self.captured.train_rows_full if self.captured is not None else len(self.data.train)
            self._step_plans[n] = step_plan(self.launch_plan(n), self.sft_config, rows)
        return self._step_plans[n]

    @cached_property
    def train_rows(self) -> list[dict]:
        """Train rows as the recipe hands them to TRL."""
        return self.recipe_rows(self.data.train)

    @cached_property
    def eval_rows(self) -> list[dict]:
        return self.recipe_rows(self.data.eval)

    @cached_property
    def sample_rows(self) -> list[dict]:
        """The first `samples` train rows in TRL's format (all of them when samples is None)."""
        return self.recipe_rows(self.data.train[: self.samples])

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

    def decode(self, ids: list[int]) -> str:
        """Token ids as text without special tokens (the text of a pre-tokenized row, for its identity)."""
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def raw_keys(self, split: str) -> list[str]:
        """The identity key (parity.data.conversation) of every raw row of a split ('train' or 'test'): its
        normalised user turns, with the template's constant words removed when the rows are a recipe's own output;
        computed once per rows and format, shared by both recipes of a diff."""
        fmt = self.row_format
        tokenizer = id(self.tokenizer) if fmt.name == "tokenized" else None  # ids are read by this tokenizer
        cache_key = ("keys", fmt.name, tuple(sorted(fmt.columns.items())), tokenizer)
        if cache_key not in self.raw.cache:
            keys = {name: self._keys(getattr(self.raw, name)) for name in ("train", "test")}
            if self.raw.templated:
                stripped = strip_constant_words(keys["train"] + keys["test"])
                keys = {"train": stripped[: len(keys["train"])], "test": stripped[len(keys["train"]) :]}
            self.raw.cache[cache_key] = keys
        return self.raw.cache[cache_key][split]

    def _keys(self, rows: list[dict[str, Any]]) -> list[str]:
        fmt = self.row_format
        turns = fmt.format.user_turns
        if turns is not None:
            return [key_of_turns(turns(row, fmt.columns)) for row in rows]
        return [conversation_key(c, self.decode) for c in self.conversations(rows)]

    @cached_property
    def _key_of_raw_row(self) -> dict[int, str]:
        rows = self.raw.train + self.raw.test
        return dict(zip(map(id, rows), self.raw_keys("train") + self.raw_keys("test"), strict=True))

    def row_keys(self, rows: list[dict[str, Any]]) -> list[str]:
        """The identity keys of shared raw rows (rows of `raw`; any other row is keyed as it stands)."""
        known = self._key_of_raw_row
        return [known[id(row)] if id(row) in known else self._keys([row])[0] for row in rows]

    @cached_property
    def train_keys(self) -> list[str]:
        """Identity keys of the recipe's train rows (of the raw rows they were preprocessed from)."""
        keys = self.raw_keys("train")
        return [keys[i] for i in self.data.train_index]

    @cached_property
    def eval_keys(self) -> list[str]:
        """Identity keys of the recipe's eval rows (of the raw rows they were preprocessed from)."""
        keys = self.raw_keys("test" if self.data.eval_is_benchmark_test else "train")
        return [keys[i] for i in self.data.eval_index]

    def conversational_raw(self, rows: list[dict[str, Any]]) -> list[dict]:
        """Raw rows through this recipe's preprocessing and prompt, in the TRL format it hands over (for a captured
        recipe: the captured rows; a row the capture does not contain is a RowNotCaptured error)."""
        if self.captured is not None:
            return [_found(example).trained_row or {} for example in self.captured_examples(rows)]
        return self.recipe_rows(preprocess_rows(rows, self.recipe.data.preprocess))

    def prepare_raw(self, rows: list[dict[str, Any]]):
        """Raw rows through this recipe's whole pipeline, tokenized by TRL: compares the same rows across recipes
        (for a captured recipe: the examples its own code prepared, as in conversational_raw)."""
        if self.captured is not None:
            return [
                {"input_ids": example.input_ids, "labels": example.labels}
                for example in map(_found, self.captured_examples(rows))
            ]
        prepared = self._tokenized(self.conversational_raw(rows))
        return [
            {"input_ids": input_ids, "labels": labels}
            for input_ids, labels in zip(prepared.input_ids, prepared.labels, strict=True)
        ]

    def _tokenized(self, rows: list[dict]):
        """TRL-format rows through TRL's preparation, one example each (an error where TRL drops one)."""
        from parity.trl_bridge import prepare_rows

        prepared = prepare_rows(rows, self.tokenizer, self.sft_config, "probe")
        dropped = len(rows) - len(prepared)  # TRL drops an example with nothing left to train on
        if dropped:
            raise ParityError(
                f"recipe '{self.recipe.name}': TRL's dataset preparation drops {dropped} of {len(rows)} "
                f"example(s) at max_length {self.sft_config.max_length} (no trained token is left); "
                "raise training.max_length"
            )
        return prepared

    def captured_examples(self, rows: list[dict[str, Any]]) -> list[SharedExample]:
        """Each shared raw row found by identity among the captured rows (a captured recipe only)."""
        assert self.captured is not None
        return self.captured.examples(rows, self.row_keys(rows))

    def shared_examples(self, rows: list[dict[str, Any]]) -> list[SharedExample]:
        """Each shared raw row as this recipe trains it: through its pipeline here, or for a captured recipe
        the example its own code made, or a clearly labelled stand-in where the capture lacks the row."""
        if self.captured is not None:
            return self.captured_examples(rows)
        trained = self.conversational_raw(rows)
        prepared = self._tokenized(trained)
        return [
            SharedExample(
                row,
                trained_row,
                user_message_of(trained_row),
                input_ids,
                labels,
                same_row=True,
                source="this recipe's preprocessing and prompt, tokenized by TRL's preparation",
                row_text=readable_user_text(conversation),
            )
            for row, conversation, trained_row, input_ids, labels in zip(
                rows, self.conversations(rows), trained, prepared.input_ids, prepared.labels, strict=True
            )
        ]

    def shared_user_messages(self, rows: list[dict[str, Any]]) -> list[str | None]:
        """The user message this recipe builds for each shared raw row (None: a captured recipe's own code never
        produced the row); nothing is tokenized."""
        if self.captured is None:
            return [user_message_of(row) for row in self.conversational_raw(rows)]
        return [e.user_message if e.same_row else None for e in self.captured_examples(rows)]

    def shared_prompts(self, rows: list[dict[str, Any]]) -> list[Conversation | None]:
        """The conversation this recipe builds for each shared raw row (None as in shared_user_messages)."""
        if self.captured is None:
            return [trl_conversation(row) for row in self.conversational_raw(rows)]
        return [e.conversation if e.same_row else None for e in self.captured_examples(rows)]

    def shared_completions(self, rows: list[dict[str, Any]]) -> list[str | None]:
        """The completion text this recipe trains on for each shared raw row (None as in shared_user_messages)."""
        if self.captured is None:
            return [trl_conversation(row).completion for row in self.conversational_raw(rows)]
        return [
            (e.completion if e.pre_tokenized else e.conversation.completion)
            if e.same_row and e.conversation
            else None
            for e in self.captured_examples(rows)
        ]


def readable_user_text(conversation: Conversation) -> str:
    """A raw row's user turns as written (its text for a plain-text row), for the reader."""
    return "\n".join(conversation.user_turns) if conversation.messages else (conversation.text or "")


def user_message_of(trained_row: dict[str, Any]) -> str:
    """The last user turn of a TRL-format row (its prompt string for plain rows, its text for text rows)."""
    conversation = trl_conversation(trained_row)
    if conversation.messages:
        turns = conversation.user_turns
        return turns[-1] if turns else ""
    return conversation.text or ""


class RowNotCaptured(ParityError):
    """A shared raw row that a captured recipe's own code never produced."""


def _found(example: SharedExample) -> SharedExample:
    if not example.same_row:
        raise RowNotCaptured(f"raw row {example.row_text[:60]!r}: {example.source}")
    return example


_raw_cache: dict[tuple[str, str], RawData] = {}


def _raw_for(data: str, recipe: Recipe) -> RawData:
    key = (data, _source_key(data, recipe))
    if key not in _raw_cache:
        _raw_cache[key] = load_raw(data, recipe)
    return _raw_cache[key]


def _source_key(data: str, recipe: Recipe) -> str:
    """What besides --data decides the rows: the recipe's hub dataset, or its task's synthetic generator."""
    if data == "hub":
        return f"{recipe.data.hub_path}:{recipe.data.hub_config}"
    if is_synthetic(data):
        return recipe.data.task or ""
    return ""


CAPTURED_ROWS = "captured"
"""`data` value for a pair of captured recipes diffed on their own rows (what --data left out means for them)."""


def captured_rows(recipe: Recipe) -> RawData:
    """A captured recipe's own train and eval rows as the shared raw rows of a diff (no --data); for a recipe whose
    trainer was handed token ids, the raw rows its framework loaded (in a format parity reads), else those ids."""
    captured = load_capture(captured_directory(recipe))
    if is_pre_tokenized(captured):
        loaded = loaded_rows(captured)
        if loaded_format(loaded) is not None:
            return RawData(f"rows loaded by {recipe.name}", loaded, [])
    rows = trainer_rows(captured)
    eval_rows = [row for name in sorted(rows) if name.startswith("eval") for row in rows[name]]
    return RawData(f"captured rows of {recipe.name}", rows.get("train", []), eval_rows, templated=True)


def materialize_pair(
    a: Recipe,
    b: Recipe,
    data: str | None = None,
    world_size: int = 1,
    samples: int | None = DEFAULT_SAMPLES,
) -> tuple[Materialized, Materialized]:
    """Both recipes on the same rows: `data`, or with none given (or CAPTURED_ROWS), two captured recipes on A's
    captured rows (paired by identity) and any other pair on its task's synthetic rows (the task of A, else of B: a captured recipe names
    none)."""
    both_captured = captured_directory(a) is not None and captured_directory(b) is not None
    if data is None and not both_captured:
        data = "synthetic"
    if data is None or (data == CAPTURED_ROWS and both_captured):
        ma = materialize(a, None, world_size, samples)
        return ma, materialize(b, None, world_size, samples, raw=ma.raw)
    shared = None
    if is_synthetic(data) and not (a.data.task and b.data.task):
        shared = _raw_for(data, a if a.data.task else b)
    return (
        materialize(a, data, world_size, samples, raw=shared),
        materialize(b, data, world_size, samples, raw=shared),
    )


def is_synthetic(data: str) -> bool:
    return data == "synthetic" or data.startswith("synthetic:")


def recipe_format(recipe: Recipe, first: dict[str, Any]) -> BoundFormat:
    """The row format a recipe reads its rows in: data.format with data.columns, else detected from the first row's
    columns (the recipe's task's column map tried first)."""
    spec = recipe.data
    columns = spec.columns
    if not columns and spec.format is None and spec.task is not None:
        columns = task_of(recipe).columns
    return bind_format(spec.format, first, columns)


def check_rows(raw: RawData, fmt: BoundFormat) -> None:
    """Every raw row converts in the recipe's row format (one error naming the file and line where one does not);
    synthetic rows come from a task's own generator and are not checked."""
    if raw.task is not None:
        return
    key = ("checked", fmt.name, tuple(sorted(fmt.columns.items())))
    if key in raw.cache:
        return
    for split in ("train", "test"):
        for index, row in enumerate(getattr(raw, split)):
            try:
                fmt.convert(row)
            except RowError as err:
                raise ParityError(
                    f"{raw.location(split, index)}: {err} (rows read as {fmt.describe()})"
                ) from None
    raw.cache[key] = True


def materialize(
    recipe: Recipe,
    data: str | None = None,
    world_size: int = 1,
    samples: int | None = DEFAULT_SAMPLES,
    raw: RawData | None = None,
) -> Materialized:
    """Build what training sees for `recipe` on `data` with `world_size` visible GPUs (data None: a captured
    recipe's own rows, else its task's synthetic rows; `raw`: rows another recipe of the pair was given)."""
    resolved = resolve(recipe, world_size)
    tokenizer, tokenizer_info = load_tokenizer(recipe)
    captured = captured_directory(recipe)
    if data is None:
        data = CAPTURED_ROWS if captured is not None else "synthetic"
    if raw is None:
        raw = captured_rows(recipe) if data == CAPTURED_ROWS else _raw_for(data, recipe)
    if not raw.train:
        raise ParityError(f"recipe '{recipe.name}': no training rows from {raw.source}")
    if captured is None:
        check_rows(raw, recipe_format(recipe, raw.train[0]))
    recipe_data = split_rows(recipe, raw)
    warn_long_rows(raw.source, raw.train + raw.test, resolved.sft_config.max_length)
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
    if captured is not None:  # the recipe's own code tokenized and collated these: read them, never redo them
        capture = load_capture(captured)
        captured_examples(capture).install(materialized, samples)
        if capture.rows_limited:
            materialized.context["rows_limited"] = f"{recipe.name}: {rows_limited_note(capture)}"
    else:
        check_placeholders(recipe, recipe_data.train[0])
        rows = materialized.sample_rows  # built here: a row the recipe's prompt cannot apply to fails now
        if materialized.trl_format in CHAT_TEMPLATE_FORMATS:
            check_recipe_rendering(recipe, tokenizer, rows)
    return materialized
