"""The recipe spec: one typed, documented schema for a fine-tuning recipe, in sections.

Library defaults are never restated here: `training` and `peft` hold only what a recipe sets, and the
effective values come from building the real `trl.SFTConfig` / `peft.LoraConfig` (see materialize.py).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelSpec:
    """The base model and how the recipe loads it."""

    name_or_path: str | None = None
    """Hub id or local path of the base model (every recipe names one: there is no default model)."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of the base model (None: the hub's default branch, main)."""
    torch_dtype: str | None = None
    """dtype passed to from_pretrained (None: the library default)."""
    attn_implementation: str | None = None
    """Attention kernel asked for (None: the library default, sdpa)."""


@dataclass
class TokenizerSpec:
    """Where the tokenizer comes from and how the recipe patches it."""

    source: str | None = None
    """Hub id or path (None: the model's)."""
    pad_token: str = "eos_if_missing"
    """'eos_if_missing' (keep the tokenizer's pad token, else EOS), 'eos' (always EOS) or a literal token."""


@dataclass
class TemplateSpec:
    """The chat template the recipe installs."""

    chat_template: str | None = None
    """Fallback template installed when the tokenizer has none (None: install nothing)."""
    force: bool = False
    """Install chat_template even when the tokenizer has its own."""
    source: str = ""
    """Provenance of chat_template (upstream file)."""


@dataclass
class PreprocessStep:
    """One declarative preprocessing step applied to each raw answer (no code in YAML)."""

    op: str
    """'regex_sub' (pattern -> replacement) or 'replace' (literal old -> new)."""
    pattern: str = ""
    replacement: str = ""
    field: str = "answer"
    """Which column of the rows the step rewrites (before the row format's adapter reads them)."""


@dataclass
class DataSpec:
    """Where the rows come from, which format they are in, and how the recipe prepares, splits and hands them to TRL."""

    task: str | None = None
    """Registered task pack the rows belong to (parity/tasks: 'gsm8k', 'math'): synthetic rows, gold rule, answer
    format. None: no task, so `--data synthetic` has no rows and no answer or gold claims are made."""
    format: str | None = None
    """Registered row format (messages, sharegpt, prompt_completion, alpaca, input_output, text, tokenized; see
    parity/data/formats.py). None: detected from the rows' columns."""
    columns: dict[str, str] = field(default_factory=dict)
    """Column map: the format's column name -> the dataset's (e.g. {'input': 'question', 'output': 'answer'})."""
    trl_format: str | None = None
    """What the recipe hands the trainer: 'prompt_completion' (conversational), 'prompt_completion_text' (plain
    strings), 'messages', 'text' or 'tokenized'. None: the row format's own (parity/data/pipeline.py)."""
    hub_path: str | None = None
    """Dataset read for `--data hub`."""
    hub_config: str | None = None
    hub_train_split: str = "train"
    hub_eval_split: str | None = "test"
    """None: the dataset has no test split (train-only data)."""
    preprocess: list[PreprocessStep] = field(default_factory=list)
    """Steps applied to every row, in order."""
    eval_from: str = "test"
    """'test': evaluate on the benchmark's test split (none when the data has none); 'train_holdout': hold out
    eval_fraction of train."""
    eval_fraction: float = 0.1
    split_seed: int = 0
    """Seed used here for the holdout split."""
    upstream_split_seeded: bool = True
    """False when upstream splits without a seed (the split is not reproducible there)."""


@dataclass
class PromptSpec:
    """How a row becomes the messages the model is conditioned on."""

    user_template: str | None = None
    """The last user turn, built from the row's own columns: every `{name}` is that column's text ({instruction}:
    the recipe's instruction below, unless the rows have an 'instruction' column). None: the user turn as the row
    format gives it."""
    instruction: str = ""
    system: str | None = None
    """System prompt set on every row (replacing the row's own). None: the row's own system turn, if any."""


@dataclass
class PeftSpec:
    """LoRA or full fine-tuning; lora holds only the LoraConfig fields the recipe sets."""

    method: str = "none"
    """'none' (full fine-tuning) or 'lora'."""
    lora: dict[str, Any] = field(default_factory=dict)


@dataclass
class LaunchSpec:
    """World-size-dependent launch rules."""

    num_processes: str | int = "world"
    """'world' (one process per visible GPU) or a fixed count (e.g. 1 for a single-process launch)."""
    global_batch: int | None = None
    """When set: gradient_accumulation_steps = max(1, global_batch // (per_device * processes))."""
    deepspeed_config: str | None = None
    deepspeed_stage: int | None = None
    deepspeed_min_gpus: int = 2
    """DeepSpeed is dropped when fewer GPUs than this are visible."""
    launcher: str = "python"
    early_stopping_patience: int | None = None
    early_stopping_threshold: float | None = None


@dataclass
class EvalSpec:
    """The evaluation protocol: how the benchmark number is produced."""

    harness: str = "lm-eval"
    task: str = ""
    split: str = "test"
    num_fewshot: int = 0
    apply_chat_template: bool = False
    prompt: str = ""
    """Eval prompt; `{name}` placeholders from the row's columns and {instruction}, as in PromptSpec."""
    strict_regex: str | None = None
    flexible_regex: str | None = None
    """Last match is taken; the first non-empty group is the answer."""
    ignore_patterns: list[str] = field(default_factory=list)
    """Regexes removed from an extracted answer before comparison."""
    ignore_case: bool = False
    remove_tokens: list[str] = field(default_factory=list)
    """Strings removed from a generation before extraction (lm-eval's remove_target_tokens filter)."""
    gold_regex: str | None = None
    """How the gold answer is read from a row's reference completion (None: the task's rule, see parity/tasks)."""


@dataclass
class UpstreamSpec:
    """The upstream code the recipe mirrors, and its raw config exactly as written (for linting)."""

    repo: str = ""
    commit: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    """Raw upstream config keys and values."""
    consumed: dict[str, str] = field(default_factory=dict)
    """Raw key -> where the adapter maps it (a dotted spec key or a note). Unmapped keys are linted."""
    meant: dict[str, str] = field(default_factory=dict)
    """Unread raw key -> the field its name promises (an SFTConfig field or a dotted spec key), where spelling
    alone does not find it (`cutoff_len` -> `max_length`); the lint compares the two."""


@dataclass
class Recipe:
    """A fine-tuning recipe: everything that decides what the model is trained on and how."""

    name: str
    description: str = ""
    origin: str = "built-in"
    """Where the recipe came from: built-in, a YAML path, or an entry point."""
    model: ModelSpec = field(default_factory=ModelSpec)
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    template: TemplateSpec = field(default_factory=TemplateSpec)
    data: DataSpec = field(default_factory=DataSpec)
    prompt: PromptSpec = field(default_factory=PromptSpec)
    training: dict[str, Any] = field(default_factory=dict)
    """Any trl.SFTConfig field the recipe sets; everything else is SFTConfig's default."""
    peft: PeftSpec = field(default_factory=PeftSpec)
    launch: LaunchSpec = field(default_factory=LaunchSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    env: dict[str, str] = field(default_factory=dict)
    """Declared upstream library pins, e.g. {'trl': '==0.17.0'}."""
    upstream: UpstreamSpec = field(default_factory=UpstreamSpec)
    provenance: dict[str, str] = field(default_factory=dict)
    """Dotted key -> 'recipe' | 'upstream:<file>' | 'override:<where>' for values the recipe sets."""

    def copy(self) -> Recipe:
        return copy.deepcopy(self)

    @property
    def eval_not_captured(self) -> bool:
        """True for a captured recipe whose eval protocol nobody gave: it lives outside the training script, so
        the `eval` section holds defaults, not the recipe's protocol (an `eval.*` override gives it)."""
        return self.provenance.get("eval", "").startswith(EVAL_NOT_CAPTURED)

    @property
    def has_eval_protocol(self) -> bool:
        """True when the recipe says how its benchmark number is produced (an eval prompt or an answer extractor);
        without one there is nothing to make answer or consistency claims about."""
        spec = self.eval
        return not self.eval_not_captured and bool(spec.prompt or spec.strict_regex or spec.flexible_regex)


EVAL_NOT_CAPTURED = "not captured"
"""Start of `provenance['eval']` for a captured recipe whose eval protocol was not given."""
NOT_APPLICABLE = "not applicable"
"""Start of a training field's provenance when the recipe's trainer arguments have no such field (a captured
framework's own argument class): the field has no value, never SFTConfig's default."""

SECTIONS: tuple[str, ...] = (
    "model",
    "tokenizer",
    "template",
    "data",
    "prompt",
    "training",
    "peft",
    "launch",
    "eval",
    "env",
    "upstream",
)


def section_fields(section: str) -> list[str]:
    """Field names of a dataclass section of Recipe."""
    value = getattr(Recipe(name="_"), section)
    return [f.name for f in dataclasses.fields(value)] if dataclasses.is_dataclass(value) else []
