"""Row formats: one small registered adapter per dataset format, each turning a row into a `Conversation`.
Column maps rename a format's columns to a dataset's (torchtune's `column_map`); detection reads the columns.

Formats (what TRL, LLaMA-Factory and Axolotl accept): `messages` (role/content turns, tool calls, a `tools`
schema), `sharegpt` (`conversations` of from/value), `prompt_completion` (plain strings or messages), `alpaca`
(instruction/input/output, optional system and history), `input_output` (one user turn, one answer: also
question/answer and problem/solution columns), `text` (plain text) and `tokenized` (input_ids, labels).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from parity.data.conversation import Conversation, clean_message
from parity.errors import ParityError
from parity.registries import Registry

Adapter = Callable[[dict[str, Any], Mapping[str, str]], Conversation]


class RowError(ParityError):
    """A row its format's adapter cannot read (the caller adds where the row is)."""


@dataclass(frozen=True)
class RowFormat:
    """One dataset format: its columns, how a row becomes a Conversation, and what TRL is handed by default."""

    name: str
    columns: tuple[str, ...]
    """Columns every row has (the format's own names; a column map renames them)."""
    optional: tuple[str, ...]
    adapter: Adapter
    trl_format: str
    """The TRL dataset format these rows are handed to the trainer in, unless the recipe says otherwise."""
    detect_maps: tuple[dict[str, str], ...] = ({},)
    """Column maps tried, in order, when the format is detected from a dataset's columns."""
    accepts: Callable[[dict[str, Any], Mapping[str, str]], bool] = lambda row, columns: True
    """A check of the first row beyond its columns (ShareGPT and messages share a column name)."""
    user_turns: Callable[[dict[str, Any], Mapping[str, str]], list[str]] | None = None
    """The row's user turns read straight from its columns (what `convert(row).user_turns` gives), where that is
    simpler than converting the row: identity keys of many rows are read this way."""
    exchange: Callable[[dict[str, Any], Mapping[str, str]], tuple[str, str]] | None = None
    """For formats whose every row is one user turn and one answer: (user text, answer) read straight from the
    columns, what `convert(row)` holds as its two messages (a recipe's rows are written from it without building
    the Conversation)."""

    def column(self, name: str, columns: Mapping[str, str]) -> str:
        """The dataset column holding this format's column `name`."""
        return columns.get(name, name)

    def convert(self, row: dict[str, Any], columns: Mapping[str, str]) -> Conversation:
        return self.adapter(row, columns)


ROW_FORMATS: Registry[RowFormat] = Registry("row format")


def register(fmt: RowFormat) -> RowFormat:
    ROW_FORMATS.add(fmt.name, fmt)
    return fmt


def _text(row: dict[str, Any], column: str, what: str) -> str:
    value = row.get(column)
    if not isinstance(value, str):
        raise RowError(f"expected a string in column '{column}' ({what}), got {type(value).__name__}")
    return value


def _optional_text(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    return value if isinstance(value, str) else ""


def _tools(row: dict[str, Any], column: str) -> list[Any] | None:
    """The tool schemas of a row: a list, or a JSON string of one (LLaMA-Factory), None when absent or empty."""
    value = row.get(column)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RowError(f"column '{column}' is not valid JSON") from None
    if value is None or value == []:
        return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise RowError(f"column '{column}' must be a list of tool schemas, got {type(value).__name__}")
    return value


def _message_list(row: dict[str, Any], column: str) -> list[dict[str, Any]]:
    value = row.get(column)
    if not isinstance(value, list) or not all(isinstance(m, dict) for m in value):
        raise RowError(f"column '{column}' must be a list of messages")
    return value


# --- messages (OpenAI / TRL conversational language modeling) -------------------------------------------------


def messages_adapter(row: dict[str, Any], columns: Mapping[str, str]) -> Conversation:
    """role/content turns as given (system, multi-turn, tool calls), with the row's tool schemas."""
    column = columns.get("messages", "messages")
    messages = [clean_message(m) for m in _message_list(row, column)]
    for message in messages:
        if "role" not in message:
            raise RowError(f"a message in column '{column}' has no 'role'")
    return Conversation(messages, _tools(row, columns.get("tools", "tools")))


def _first_message_has(column: str, key: str) -> Callable[[dict[str, Any], Mapping[str, str]], bool]:
    def accepts(row: dict[str, Any], columns: Mapping[str, str]) -> bool:
        value = row.get(columns.get(column, column))
        return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and key in value[0]

    return accepts


register(
    RowFormat(
        "messages",
        ("messages",),
        ("tools",),
        messages_adapter,
        "messages",
        detect_maps=({}, {"messages": "conversations"}),
        accepts=_first_message_has("messages", "role"),
    )
)

# --- ShareGPT (conversations of from/value; LLaMA-Factory's tags) ---------------------------------------------

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "system": "system",
    "observation": "tool",
    "tool": "tool",
    "function_call": "assistant",
}
"""ShareGPT `from` tags (LLaMA-Factory's defaults and their role-named aliases) -> roles."""


def sharegpt_adapter(row: dict[str, Any], columns: Mapping[str, str]) -> Conversation:
    """from/value turns as role/content; a `function_call` turn becomes an assistant tool call, an `observation`
    turn a tool message; a `system` column gives the system prompt when no turn does."""
    column = columns.get("conversations", "conversations")
    messages: list[dict[str, Any]] = []
    for turn in _message_list(row, column):
        tag = turn.get("from")
        if tag not in SHAREGPT_ROLES:
            raise RowError(
                f"unknown ShareGPT role {tag!r} in column '{column}' (known: {', '.join(SHAREGPT_ROLES)})"
            )
        value = turn.get("value")
        content = value if isinstance(value, str) else json.dumps(value)
        if tag == "function_call":
            messages.append({"role": "assistant", "content": "", "tool_calls": _tool_calls(content)})
        else:
            messages.append({"role": SHAREGPT_ROLES[tag], "content": content})
    system = _optional_text(row, columns.get("system", "system"))
    if system and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return Conversation(messages, _tools(row, columns.get("tools", "tools")))


def _tool_calls(value: str) -> list[dict[str, Any]]:
    """A ShareGPT function_call value (JSON of one call or a list of calls) as OpenAI tool calls."""
    try:
        calls = json.loads(value)
    except json.JSONDecodeError:
        raise RowError(f"a function_call turn is not JSON: {value[:60]!r}") from None
    calls = calls if isinstance(calls, list) else [calls]
    out = []
    for call in calls:
        if not isinstance(call, dict) or "name" not in call:
            raise RowError("a function_call turn must name the function ('name')")
        out.append(
            {"type": "function", "function": {"name": call["name"], "arguments": call.get("arguments", {})}}
        )
    return out


register(
    RowFormat(
        "sharegpt",
        ("conversations",),
        ("system", "tools"),
        sharegpt_adapter,
        "messages",
        detect_maps=({}, {"conversations": "messages"}),
        accepts=_first_message_has("conversations", "from"),
    )
)

# --- prompt/completion (TRL: plain strings or messages) -------------------------------------------------------


def prompt_completion_adapter(row: dict[str, Any], columns: Mapping[str, str]) -> Conversation:
    """Conversational prompt/completion as its messages; plain strings as one user and one assistant turn."""
    prompt_column, completion_column = (
        columns.get("prompt", "prompt"),
        columns.get("completion", "completion"),
    )
    prompt, completion = row.get(prompt_column), row.get(completion_column)
    tools = _tools(row, columns.get("tools", "tools"))
    if isinstance(prompt, list) and isinstance(completion, list):
        messages = [
            clean_message(m)
            for m in _message_list(row, prompt_column) + _message_list(row, completion_column)
        ]
        return Conversation(messages, tools)
    if isinstance(prompt, str) and isinstance(completion, str):
        return Conversation(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
            tools,
            plain=True,
        )
    raise RowError(
        f"columns '{prompt_column}' and '{completion_column}' must both be strings or both be lists of messages"
    )


register(
    RowFormat(
        "prompt_completion",
        ("prompt", "completion"),
        ("tools",),
        prompt_completion_adapter,
        "prompt_completion",
    )
)

# --- Alpaca (instruction/input/output, optional system and history) -------------------------------------------


def alpaca_adapter(row: dict[str, Any], columns: Mapping[str, str]) -> Conversation:
    """LLaMA-Factory's Alpaca conversion: history pairs as earlier turns, the user turn instruction and input joined
    by a newline (an empty input left out), the output as the answer, a system column as the system prompt."""
    messages: list[dict[str, Any]] = []
    system = _optional_text(row, columns.get("system", "system"))
    if system:
        messages.append({"role": "system", "content": system})
    history = row.get(columns.get("history", "history"))
    if isinstance(history, list):
        for pair in history:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise RowError("history must be a list of [query, response] pairs")
            messages += [
                {"role": "user", "content": str(pair[0])},
                {"role": "assistant", "content": str(pair[1])},
            ]
    query = [
        text
        for text in (
            _text(row, columns.get("instruction", "instruction"), "instruction"),
            _optional_text(row, columns.get("input", "input")),
        )
        if text
    ]
    messages.append({"role": "user", "content": "\n".join(query)})
    messages.append({"role": "assistant", "content": _text(row, columns.get("output", "output"), "output")})
    return Conversation(messages)


register(
    RowFormat(
        "alpaca",
        ("instruction", "output"),
        ("input", "system", "history"),
        alpaca_adapter,
        "prompt_completion",
    )
)

# --- input/output (one user turn, one answer) -----------------------------------------------------------------


def input_output_adapter(row: dict[str, Any], columns: Mapping[str, str]) -> Conversation:
    """torchtune's InputOutputToMessages: the input column as the user turn, the output column as the answer."""
    user = _text(row, columns.get("input", "input"), "the user turn")
    answer = _text(row, columns.get("output", "output"), "the answer")
    return Conversation([{"role": "user", "content": user}, {"role": "assistant", "content": answer}])


register(
    RowFormat(
        "input_output",
        ("input", "output"),
        (),
        input_output_adapter,
        "prompt_completion",
        user_turns=lambda row, columns: [_text(row, columns.get("input", "input"), "the user turn")],
        exchange=lambda row, columns: (
            _text(row, columns.get("input", "input"), "the user turn"),
            _text(row, columns.get("output", "output"), "the answer"),
        ),
        detect_maps=(
            {},
            {"input": "question", "output": "answer"},
            {"input": "problem", "output": "solution"},
            {"input": "query", "output": "response"},
        ),
    )
)

# --- text (language modeling) ---------------------------------------------------------------------------------


def text_adapter(row: dict[str, Any], columns: Mapping[str, str]) -> Conversation:
    """A plain-text row: no turns (TRL trains on all of it)."""
    return Conversation(text=_text(row, columns.get("text", "text"), "the text"))


register(RowFormat("text", ("text",), (), text_adapter, "text"))

# --- pre-tokenized (input_ids, labels, attention_mask) --------------------------------------------------------


def tokenized_adapter(row: dict[str, Any], columns: Mapping[str, str]) -> Conversation:
    """Token ids as given (TRL leaves such rows untokenized); their text is decoded where a tokenizer is at hand."""
    tokens = {}
    for name in ("input_ids", "labels", "attention_mask"):
        value = row.get(columns.get(name, name))
        if value is None and name != "input_ids":
            continue
        if not isinstance(value, list) or not all(
            isinstance(t, int) and not isinstance(t, bool) for t in value
        ):
            raise RowError(f"column '{columns.get(name, name)}' must be a list of integer token ids")
        tokens[name] = value
    if "labels" in tokens and len(tokens["labels"]) != len(tokens["input_ids"]):
        raise RowError("labels and input_ids differ in length")
    return Conversation(tokens=tokens)


register(RowFormat("tokenized", ("input_ids",), ("labels", "attention_mask"), tokenized_adapter, "tokenized"))

DETECTION_ORDER = ("tokenized", "messages", "sharegpt", "prompt_completion", "alpaca", "input_output", "text")
"""Most specific first: Alpaca rows also have the columns of nothing else; input/output only when not Alpaca."""


@dataclass(frozen=True)
class BoundFormat:
    """A row format with the column map it reads a dataset through."""

    format: RowFormat
    columns: dict[str, str]

    @property
    def name(self) -> str:
        return self.format.name

    def convert(self, row: dict[str, Any]) -> Conversation:
        return self.format.convert(row, self.columns)

    def exchanges(self, rows: list[dict[str, Any]]) -> list[tuple[str, str]] | None:
        """(user text, answer) of each row where the format reads them straight from its columns, else None."""
        exchange = self.format.exchange
        return None if exchange is None else [exchange(row, self.columns) for row in rows]

    def describe(self) -> str:
        renamed = {k: v for k, v in self.columns.items() if k != v}
        mapped = ", ".join(f"{k}={v}" for k, v in renamed.items())
        return f"{self.name} ({mapped})" if mapped else self.name


def detect_format(first: dict[str, Any], columns: Mapping[str, str] | None = None) -> BoundFormat:
    """The registered format a dataset's rows are in, from the first row's columns (a recipe's column map is tried
    first); one ParityError naming the columns when none fits."""
    present = set(first)
    for name in (*DETECTION_ORDER, *(n for n in ROW_FORMATS if n not in DETECTION_ORDER)):
        fmt = ROW_FORMATS.get(name)
        for detect_map in (dict(columns), *fmt.detect_maps) if columns else fmt.detect_maps:
            mapping = {**detect_map}
            if {mapping.get(c, c) for c in fmt.columns} <= present and fmt.accepts(first, mapping):
                return BoundFormat(fmt, mapping)
    raise ParityError(
        f"rows with columns {', '.join(sorted(present)) or '(none)'} are in no known format "
        f"({', '.join(ROW_FORMATS.names())}); name one with data.format and map its columns with data.columns"
    )


def bind_format(
    name: str | None, first: dict[str, Any], columns: Mapping[str, str] | None = None
) -> BoundFormat:
    """The recipe's named format (checked against the first row's columns), or the detected one."""
    if name is None:
        return detect_format(first, columns)
    fmt = ROW_FORMATS.get(name)
    mapping = dict(columns or {})
    missing = [mapping.get(c, c) for c in fmt.columns if mapping.get(c, c) not in first]
    if missing:
        raise ParityError(
            f"data.format {name}: the rows lack column(s) {', '.join(missing)} (they have "
            f"{', '.join(sorted(first)) or 'none'}); map them with data.columns"
        )
    return BoundFormat(fmt, mapping)
