"""Bounded chat-template rendering: size, time and output limits around transformers' own sandboxed Jinja.

A template is compiled in the environment transformers builds for chat templates (same globals, filters and
extensions), with `*` and `**` intercepted so one expression cannot build gigabytes, a deadline checked on
every template line, and the streamed output counted. Every failure is a one-line TemplateError.
"""

from __future__ import annotations

import sys
import time
from functools import cache, lru_cache
from typing import Any

from parity.data.pipeline import PLACEHOLDER
from parity.errors import ParityError

MAX_TEMPLATE_CHARS = 200_000
"""Largest chat template accepted (the largest templates on the hub are a few tens of kB)."""
RENDER_SECONDS = 3.0
"""Time one conversation may take to render."""
MAX_RENDERED_CHARS = 1_000_000
"""Output allowed per conversation on top of MAX_CONTENT_FACTOR times its messages' content."""
MAX_CONTENT_FACTOR = 8
MAX_POWER_EXPONENT = 4096
TEMPLATE_FILENAME = "<template>"
"""The code filename Jinja gives templates compiled from a string (the deadline tracer watches these frames)."""


class TemplateError(ParityError):
    """A chat template that does not compile, fails, or exceeds a limit while rendering."""


def check_template(template: Any) -> None:
    """Reject a template that is not a string, empty, too large, or does not compile."""
    compile_bounded(template)


def compile_bounded(template: Any):
    """The template compiled in transformers' chat-template sandbox with parity's limits (a jinja2.Template)."""
    import jinja2

    if not isinstance(template, str):
        raise TemplateError(f"a chat template must be a string, got {type(template).__name__}")
    if not template.strip():
        raise TemplateError("the chat template is empty (or only whitespace): it would render no message")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            f"the chat template has {len(template):,} characters, more than the limit of {MAX_TEMPLATE_CHARS:,}"
        )
    try:
        return _compiled(template)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"syntax error at template line {err.lineno}: {_one_line(err)}") from None
    except (jinja2.TemplateError, RecursionError, MemoryError, ValueError, TypeError) as err:
        raise TemplateError(f"does not compile: {_describe(err)}") from None


@lru_cache(maxsize=16)
def _compiled(template: str):
    """One compilation per template text (a template that fails to compile raises and is not cached)."""
    return _bounded_environment().from_string(template)


@cache
def _bounded_environment():
    """transformers' chat-template environment (built for an empty template), with `*` and `**` intercepted."""
    from transformers.utils.chat_template_utils import _cached_compile_jinja_template

    environment = _cached_compile_jinja_template("").environment
    environment.intercepted_binops = frozenset({"*", "**"})
    base = environment.call_binop

    def call_binop(context, operator, left, right):
        _check_binop(operator, left, right)
        return base(context, operator, left, right)

    environment.call_binop = call_binop
    return environment


def _check_binop(operator: str, left: Any, right: Any) -> None:
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if (
                isinstance(seq, str | list | tuple)
                and isinstance(times, int)
                and len(seq) * times > MAX_RENDERED_CHARS
            ):
                raise TemplateError(
                    f"an expression repeats a {type(seq).__name__} of length {len(seq):,} {times:,} times "
                    f"(over the {MAX_RENDERED_CHARS:,}-character output limit)"
                )
    elif (
        operator == "**"
        and isinstance(right, int | float)
        and abs(right) > MAX_POWER_EXPONENT
        and isinstance(left, int | float)
        and abs(left) > 1
    ):
        raise TemplateError(
            f"an expression raises {left!r} to the power {right!r} (limit {MAX_POWER_EXPONENT})"
        )


def render_bounded(
    template: str,
    messages: list[dict[str, Any]],
    add_generation_prompt: bool = False,
    template_kwargs: dict[str, Any] | None = None,
    seconds: float = RENDER_SECONDS,
) -> str:
    """Render one conversation as apply_chat_template would, within the time and output limits."""
    import jinja2

    compiled = compile_bounded(template)
    content_chars = sum(len(str(m.get("content", ""))) for m in messages)
    limit = MAX_RENDERED_CHARS + MAX_CONTENT_FACTOR * content_chars
    context = dict(template_kwargs or {})
    context.update(messages=messages, add_generation_prompt=add_generation_prompt)
    context.setdefault("tools", None)
    context.setdefault("documents", None)
    pieces: list[str] = []
    size = 0
    stream = compiled.generate(**context)
    previous = sys.gettrace()
    sys.settrace(_deadline_tracer(time.monotonic() + seconds, seconds))
    try:
        for piece in stream:
            size += len(piece)
            if size > limit:
                raise TemplateError(
                    f"rendering one conversation produced over {limit:,} characters "
                    f"({content_chars:,} of message content): the template repeats or loops"
                )
            pieces.append(piece)
    except TemplateError:
        raise
    except jinja2.exceptions.SecurityError as err:
        raise TemplateError(f"the sandbox refused an operation: {_one_line(err)}") from None
    except jinja2.UndefinedError as err:
        raise TemplateError(f"uses an undefined value: {_one_line(err)}") from None
    except jinja2.TemplateError as err:
        raise TemplateError(f"raised an error while rendering: {_one_line(err)}") from None
    except RecursionError:
        raise TemplateError("recursion too deep while rendering (a macro calls itself without end)") from None
    except MemoryError:
        raise TemplateError("ran out of memory while rendering") from None
    except Exception as err:  # anything a template expression raises (ZeroDivisionError, TypeError, ...)
        raise TemplateError(f"failed while rendering: {_describe(err)}") from None
    finally:
        sys.settrace(previous)
        stream.close()
    return "".join(pieces)


def _deadline_tracer(deadline: float, seconds: float):
    """A trace function that raises TemplateError on the first template line run after the deadline."""

    def check(frame, event, arg):
        if time.monotonic() > deadline:
            raise TemplateError(
                f"rendering one conversation took over {seconds:g} s: the template loops too long"
            )
        return check

    def watch(frame, event, arg):
        return check(frame, event, arg) if frame.f_code.co_filename == TEMPLATE_FILENAME else None

    return watch


def template_kwargs_of(tokenizer: Any) -> dict[str, Any]:
    """What apply_chat_template passes a template besides the messages: the tokenizer's special tokens."""
    return dict(getattr(tokenizer, "special_tokens_map", {}) or {})


def missing_content(rendered: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages whose content (ignoring surrounding whitespace, which templates may trim) is not rendered."""
    return [m for m in messages if str(m.get("content", "")).strip() not in rendered]


def unfilled_placeholders(rendered: str, prompt_texts: list[str]) -> list[str]:
    """`{name}` placeholders of the recipe's prompt templates that still appear literally in the rendering."""
    names = sorted({name for text in prompt_texts for name in PLACEHOLDER.findall(text or "")})
    return ["{" + n + "}" for n in names if "{" + n + "}" in rendered]


def check_conversations(
    recipe_name: str,
    template: str | None,
    conversations: list[list[dict[str, Any]]],
    template_kwargs: dict[str, Any],
    prompt_texts: list[str] = (),
) -> None:
    """Render each conversation (bounded) and require some message content (a template that renders none is
    broken; one that drops a part is measured by the `content` probe) and no unfilled placeholder.

    Raises a one-line ParityError naming the recipe; called before TRL tokenizes the rows."""
    where = f"recipe '{recipe_name}': chat template"
    if template is None:
        raise ParityError(f"{where}: none (the tokenizer has none and template.chat_template is not set)")
    for index, messages in enumerate(conversations):
        try:
            rendered = render_bounded(template, messages, False, template_kwargs)
            render_bounded(template, messages[:-1] or messages, True, template_kwargs)
        except TemplateError as err:
            raise ParityError(f"{where}: {err}") from None
        missing = missing_content(rendered, messages)
        # a template that renders no content is broken; a part dropped is measured (probe `content`), not refused
        if missing and len(missing) == len(messages):
            first = missing[0]
            raise ParityError(
                f"{where} drops message content: example {index}'s {first.get('role', '?')} message "
                f"{_clip(str(first.get('content', '')))} is not in the rendered text {_clip(rendered)}, nor is "
                "any other message's"
            )
        unfilled = unfilled_placeholders(rendered, list(prompt_texts))
        if unfilled:
            raise ParityError(
                f"recipe '{recipe_name}': example {index} keeps the unfilled placeholder(s) {', '.join(unfilled)}"
            )


def _clip(text: str, limit: int = 60) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _one_line(err: BaseException) -> str:
    text = " ".join(str(getattr(err, "message", None) or err).split())
    return text[:300] if text else type(err).__name__


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {_one_line(err)}"


RENDER_CHECK_ROWS = 4
"""Training rows rendered (bounded) through a recipe's chat template before TRL tokenizes any."""


def check_recipe_rendering(recipe: Any, tokenizer: Any, rows: list[dict[str, Any]]) -> None:
    """The recipe's first conversational training rows (TRL format) as TRL will render them with its tokenizer's
    template: within the limits, with every message's content and no unfilled placeholder, else a one-line
    ParityError."""
    from parity.data.conversation import trl_conversation

    conversations, tools = [], None
    for row in rows[:RENDER_CHECK_ROWS]:
        conversation = trl_conversation(row)
        conversations.append(conversation.messages)
        tools = tools or conversation.tools
    kwargs = template_kwargs_of(tokenizer)
    if tools:
        kwargs["tools"] = tools
    check_conversations(
        recipe.name,
        tokenizer.chat_template,
        conversations,
        kwargs,
        [recipe.prompt.user_template or "", recipe.prompt.instruction],
    )
