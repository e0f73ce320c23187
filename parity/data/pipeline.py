"""A recipe's own data pipeline: preprocessing steps, split rule and user-message building.

Raw rows go in; TRL's conversational prompt/completion rows come out, exactly as the upstream code builds them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from parity.data.sources import RawData
from parity.errors import ParityError
from parity.spec import PreprocessStep, PromptSpec, Recipe


@dataclass(frozen=True)
class RecipeData:
    """The rows a recipe trains and selects checkpoints on, after its preprocessing and split."""

    train: list[dict[str, str]]
    """Preprocessed question/answer rows used for training."""
    eval: list[dict[str, str]]
    """Rows of the eval split used for eval loss / model selection."""
    eval_is_benchmark_test: bool
    """True when the eval split is the benchmark's own test split."""
    split_rule: str


def apply_steps(text: str, steps: list[PreprocessStep]) -> str:
    """Apply declarative preprocessing steps to one string."""
    for step in steps:
        if step.op == "regex_sub":
            text = _compiled(step.pattern).sub(step.replacement, text)
        elif step.op == "replace":
            text = text.replace(step.pattern, step.replacement)
        else:
            raise ParityError(f"unknown preprocessing op '{step.op}'")
    return text


def _compiled(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ParityError(f"data.preprocess: invalid regex {pattern!r} ({err})") from None


def preprocess_rows(rows: list[dict[str, str]], steps: list[PreprocessStep]) -> list[dict[str, str]]:
    """Each row with every step applied to its step's field."""
    if not steps:
        return [dict(row) for row in rows]
    out = []
    for row in rows:
        new = dict(row)
        for step in steps:
            new[step.field] = apply_steps(new[step.field], [step])
        out.append(new)
    return out


def split_rows(recipe: Recipe, raw: RawData) -> RecipeData:
    """Preprocess and split raw rows by the recipe's rule, using the real `datasets` split where upstream does."""
    spec = recipe.data
    train = preprocess_rows(raw.train, spec.preprocess)
    if spec.eval_from == "test":
        return RecipeData(
            train, preprocess_rows(raw.test, spec.preprocess), True, "eval = benchmark test split"
        )
    if spec.eval_from != "train_holdout":
        raise ParityError(f"data.eval_from must be 'test' or 'train_holdout', got '{spec.eval_from}'")
    import datasets

    parts = datasets.Dataset.from_list(train).train_test_split(
        test_size=spec.eval_fraction, seed=spec.split_seed
    )
    seeded = "seeded upstream" if spec.upstream_split_seeded else "UNSEEDED upstream"
    rule = (
        f"train_test_split(test_size={spec.eval_fraction}) of train, seed {spec.split_seed} here ({seeded})"
    )
    return RecipeData(parts["train"].to_list(), parts["test"].to_list(), False, rule)


PROMPT_PLACEHOLDERS = ("question", "instruction")
"""The placeholders a prompt template may use; anything else would stay in the prompt literally."""
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""A `{name}` placeholder in a prompt template."""


def user_message(prompt: PromptSpec, question: str) -> str:
    """The user message for one question ({instruction} then {question} substituted literally)."""
    return prompt.user_template.replace("{instruction}", prompt.instruction).replace("{question}", question)


def conversational(rows: list[dict[str, str]], prompt: PromptSpec) -> list[dict]:
    """TRL's conversational prompt/completion format."""
    return [
        {
            "prompt": [{"role": "user", "content": user_message(prompt, row["question"])}],
            "completion": [{"role": "assistant", "content": row["answer"]}],
        }
        for row in rows
    ]
