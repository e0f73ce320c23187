"""A recipe's own data pipeline: preprocessing steps, split rule, prompt building and the TRL format it hands over.

Raw rows (any registered format) go in; the rows the recipe hands TRL come out: each row becomes a Conversation
(parity.data.formats), the recipe's user template and system prompt apply to it, and it is written in the recipe's
TRL format. Everything after the adapter is format-blind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from parity.data.conversation import Conversation
from parity.data.formats import BoundFormat
from parity.data.sources import RawData
from parity.errors import ParityError
from parity.spec import PreprocessStep, PromptSpec, Recipe

Row = dict[str, Any]


@dataclass(frozen=True)
class RecipeData:
    """The rows a recipe trains and selects checkpoints on, after its preprocessing and split."""

    train: list[Row]
    """Preprocessed raw rows used for training (the dataset's columns)."""
    eval: list[Row]
    """Rows of the eval split used for eval loss / model selection (none when the data has no test split)."""
    eval_is_benchmark_test: bool
    """True when the eval split is the benchmark's own test split."""
    split_rule: str
    train_index: list[int] = field(default_factory=list)
    """Where each train row comes from: its index among the raw train rows."""
    eval_index: list[int] = field(default_factory=list)
    """Where each eval row comes from: its index among the raw test rows (benchmark test split) or train rows."""


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


def check_steps(steps: list[PreprocessStep], rows: list[Row]) -> None:
    """Every step's field is a string column of the rows (one ParityError naming the columns otherwise)."""
    if not steps or not rows:
        return
    first = rows[0]
    for i, step in enumerate(steps):
        if not isinstance(first.get(step.field), str):
            raise ParityError(
                f"data.preprocess[{i}].field '{step.field}' is not a text column of the rows (columns: "
                f"{', '.join(sorted(first))})"
            )


def preprocess_rows(rows: list[Row], steps: list[PreprocessStep]) -> list[Row]:
    """Each row with every step applied to its step's column."""
    if not steps:
        return [dict(row) for row in rows]
    check_steps(steps, rows)
    out = []
    for row in rows:
        new = dict(row)
        for step in steps:
            new[step.field] = apply_steps(new[step.field], [step])
        out.append(new)
    return out


def split_rows(recipe: Recipe, raw: RawData) -> RecipeData:
    """Preprocess and split raw rows by the recipe's rule, with the permutation of the real `datasets` split."""
    spec = recipe.data
    train = preprocess_rows(raw.train, spec.preprocess)
    every_train = list(range(len(train)))
    if spec.eval_from == "test":
        if not raw.test:
            return RecipeData(train, [], False, "no eval split (the data has no test split)", every_train)
        test = preprocess_rows(raw.test, spec.preprocess)
        return RecipeData(
            train, test, True, "eval = benchmark test split", every_train, list(range(len(test)))
        )
    if spec.eval_from != "train_holdout":
        raise ParityError(f"data.eval_from must be 'test' or 'train_holdout', got '{spec.eval_from}'")
    import datasets

    # the split's permutation depends only on the row count and the seed: split row indices, keep the rows as read
    try:
        parts = datasets.Dataset.from_dict({"row": every_train}).train_test_split(
            test_size=spec.eval_fraction, seed=spec.split_seed
        )
    except ValueError:  # datasets refuses a split that leaves one side empty
        raise ParityError(
            f"recipe '{recipe.name}': data.eval_fraction {spec.eval_fraction} of {len(train)} train row(s) leaves "
            "no train or no eval row; give more rows or another eval_fraction"
        ) from None
    kept, held = (parts[name].with_format("arrow")["row"].to_pylist() for name in ("train", "test"))
    seeded = "seeded upstream" if spec.upstream_split_seeded else "UNSEEDED upstream"
    rule = (
        f"train_test_split(test_size={spec.eval_fraction}) of train, seed {spec.split_seed} here ({seeded})"
    )
    return RecipeData([train[i] for i in kept], [train[i] for i in held], False, rule, kept, held)


PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
"""A `{name}` placeholder in a prompt template."""
RECIPE_PLACEHOLDER = "instruction"
"""The one placeholder the recipe itself fills (its prompt.instruction) when the rows have no such column."""


def placeholders(template: str) -> list[str]:
    """Names of the `{name}` placeholders of a template, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


@lru_cache(maxsize=64)
def _pieces(template: str) -> tuple[tuple[str, str | None], ...]:
    """A template as (literal text, placeholder name or None) pieces."""
    pieces, position = [], 0
    for match in PLACEHOLDER.finditer(template):
        pieces.append((template[position : match.start()], match.group(1)))
        position = match.end()
    pieces.append((template[position:], None))
    return tuple(pieces)


def fill(template: str, row: Row, instruction: str, key: str = "prompt.user_template") -> str:
    """The template with every `{name}` replaced by the row's column `name` ({instruction}: the recipe's
    instruction where the row has no such column), in one pass; an unknown name is one clear ParityError."""
    out = []
    for literal, name in _pieces(template):
        out.append(literal)
        if name is None:
            continue
        value = row.get(name)
        if value is None and name == RECIPE_PLACEHOLDER:
            value = instruction
        if not isinstance(value, str):
            raise _placeholder_error(key, name, row)
        out.append(value)
    return "".join(out)


def _placeholder_error(key: str, name: str, row: Row) -> ParityError:
    columns = ", ".join(sorted(k for k, v in row.items() if isinstance(v, str))) or "none"
    if name in row:
        return ParityError(
            f"{key}: {{{name}}} names the column '{name}', which holds no text (text columns: {columns})"
        )
    return ParityError(
        f"{key}: {{{name}}} is not a column of the rows (text columns: {columns}; {{instruction}} is the recipe's "
        "prompt.instruction)"
    )


def build_conversation(conversation: Conversation, row: Row, prompt: PromptSpec) -> Conversation:
    """A row's conversation with the recipe's user template (the last user turn before the answer, filled from the
    row's columns) and system prompt applied."""
    if prompt.user_template is None and prompt.system is None:
        return conversation
    messages = conversation.messages.copy()
    if prompt.user_template is not None:
        end = conversation.last_assistant
        content = fill(prompt.user_template, row, prompt.instruction)
        i = (len(messages) if end is None else end) - 1
        while i >= 0 and messages[i].get("role") != "user":
            i -= 1
        if i >= 0:
            messages[i] = {**messages[i], "content": content}
        else:
            messages.insert(end or 0, {"role": "user", "content": content})
    if prompt.system is not None:
        messages = [m for m in messages if m.get("role") != "system"]
        messages.insert(0, {"role": "system", "content": prompt.system})
    return Conversation(
        messages, conversation.tools, conversation.text, conversation.tokens, conversation.plain
    )


# --- the TRL format a recipe hands its trainer ---------------------------------------------------------------


def _needs_answer(conversation: Conversation, trl_format: str) -> None:
    if conversation.last_assistant is None:
        raise ParityError(f"data.trl_format {trl_format}: a row has no assistant turn to train on")


def _prompt_completion(conversation: Conversation) -> Row:
    end = conversation.last_assistant
    if end is None:
        _needs_answer(conversation, "prompt_completion")
    messages = conversation.messages
    row: Row = {"prompt": messages[:end], "completion": messages[end:]}
    if conversation.tools:
        row["tools"] = conversation.tools
    return row


def _prompt_completion_text(conversation: Conversation) -> Row:
    _needs_answer(conversation, "prompt_completion_text")
    prompt = conversation.prompt_messages
    if len(prompt) != 1 or prompt[0].get("role") != "user" or len(conversation.completion_messages) != 1:
        raise ParityError(
            "data.trl_format prompt_completion_text holds one user turn and one answer; a row has "
            f"{len(prompt)} prompt message(s) ({', '.join(m.get('role', '?') for m in prompt)})"
        )
    return {"prompt": str(prompt[0].get("content") or ""), "completion": conversation.completion}


def _messages(conversation: Conversation) -> Row:
    if not conversation.messages:
        raise ParityError("data.trl_format messages: a row has no messages (plain text or token ids)")
    row: Row = {"messages": conversation.messages}
    if conversation.tools:
        row["tools"] = conversation.tools
    return row


def _text(conversation: Conversation) -> Row:
    if conversation.text is None:
        raise ParityError("data.trl_format text: a row is not plain text (name the format its rows are in)")
    _no_prompt(conversation, "text")
    return {"text": conversation.text}


def _tokenized(conversation: Conversation) -> Row:
    if conversation.tokens is None:
        raise ParityError("data.trl_format tokenized: a row has no token ids")
    _no_prompt(conversation, "tokenized")
    return dict(conversation.tokens)


def _no_prompt(conversation: Conversation, trl_format: str) -> None:
    """Plain text and token ids have no turns: a user template or system prompt would be dropped silently."""
    if conversation.messages:
        raise ParityError(
            f"data.trl_format {trl_format}: the rows have no turns, so prompt.user_template and prompt.system "
            "cannot apply (set them to null)"
        )


TRL_FORMATS: dict[str, Callable[[Conversation], Row]] = {
    "prompt_completion": _prompt_completion,
    "prompt_completion_text": _prompt_completion_text,
    "messages": _messages,
    "text": _text,
    "tokenized": _tokenized,
}
"""The dataset formats TRL's SFTTrainer prepares, and how a Conversation is written in each."""
CHAT_TEMPLATE_FORMATS = ("prompt_completion", "messages")
"""The TRL formats TRL renders through the tokenizer's chat template (plain strings, text and ids it does not)."""


def trl_format_of_row(row: Row) -> str:
    """The TRL format one TRL-format row is in (what a captured recipe handed its trainer)."""
    if isinstance(row.get("input_ids"), list):
        return "tokenized"
    prompt = row.get("prompt")
    if prompt is not None:
        return "prompt_completion_text" if isinstance(prompt, str) else "prompt_completion"
    if isinstance(row.get("messages", row.get("conversations")), list):
        return "messages"
    return "text"


def trl_format_of(recipe: Recipe, fmt: BoundFormat, first: Conversation | None) -> str:
    """The TRL format the recipe hands over: its own choice, else its rows' (plain prompt/completion stays plain)."""
    chosen = recipe.data.trl_format
    if chosen is not None:
        if chosen not in TRL_FORMATS:
            raise ParityError(f"data.trl_format must be one of {', '.join(TRL_FORMATS)}, got '{chosen}'")
        return chosen
    if fmt.format.trl_format == "prompt_completion" and first is not None and first.plain:
        return "prompt_completion_text"
    return fmt.format.trl_format


def trl_rows(
    conversations: list[Conversation], rows: list[Row], recipe: Recipe, trl_format: str
) -> list[Row]:
    """Rows as the recipe hands them to TRL: each conversation with the recipe's prompt applied, in its format."""
    write = TRL_FORMATS[trl_format]
    prompt = recipe.prompt
    if trl_format != "prompt_completion" or prompt.system is not None:
        return [
            write(build_conversation(conversation, row, prompt))
            for conversation, row in zip(conversations, rows, strict=True)
        ]
    out = []
    for conversation, row in zip(conversations, rows, strict=True):
        if _one_exchange(
            conversation
        ):  # what build_conversation + _prompt_completion give, without the copies
            user, answer = conversation.messages
            if prompt.user_template is not None:
                user = {**user, "content": fill(prompt.user_template, row, prompt.instruction)}
            out.append({"prompt": [user], "completion": [answer]})
        else:
            out.append(write(build_conversation(conversation, row, prompt)))
    return out


def exchange_rows(exchanges: list[tuple[str, str]], rows: list[Row], recipe: Recipe) -> list[Row]:
    """Conversational prompt/completion rows straight from (user text, answer) pairs: what `trl_rows` writes for
    one-exchange conversations and no system prompt, without building them (the fast path of the common case)."""
    template, instruction = recipe.prompt.user_template, recipe.prompt.instruction
    return [
        {
            "prompt": [
                {"role": "user", "content": user if template is None else fill(template, row, instruction)}
            ],
            "completion": [{"role": "assistant", "content": answer}],
        }
        for (user, answer), row in zip(exchanges, rows, strict=True)
    ]


def _one_exchange(conversation: Conversation) -> bool:
    """One user turn then one assistant turn, nothing else (no tools): the rows of most single-turn datasets."""
    messages = conversation.messages
    return (
        len(messages) == 2
        and not conversation.tools
        and messages[0].get("role") == "user"
        and messages[1].get("role") == "assistant"
    )


def eval_text(recipe: Recipe, row: Row) -> str:
    """The recipe's eval prompt for one raw row (placeholders from the row's columns, {instruction} the recipe's)."""
    return fill(recipe.eval.prompt, row, recipe.prompt.instruction, "eval.prompt")


def check_placeholders(recipe: Recipe, row: Row) -> None:
    """The recipe's user template and eval prompt fill from a row's columns (one clear error naming the columns
    when a placeholder is not one of them)."""
    try:
        if recipe.prompt.user_template is not None:
            fill(recipe.prompt.user_template, row, recipe.prompt.instruction)
        if recipe.eval.prompt:
            eval_text(recipe, row)
    except ParityError as err:
        raise ParityError(f"recipe '{recipe.name}': {err}") from None
