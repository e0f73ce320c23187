"""Rendering a recipe's chat template at a frozen moment, shared by the template, tokens and loss_mask probes.

Templates may read the date (`strftime_now`); freezing transformers' clock makes reports reproducible.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parity.materialize import Materialized

CLOCKS = (datetime.datetime(2001, 2, 3, 4, 5, 6), datetime.datetime(2031, 12, 30, 22, 58, 59))
"""Two moments the determinism check renders at (they differ in every date field); reports render at the first."""


@contextlib.contextmanager
def frozen_clock(moment: datetime.datetime) -> Iterator[None]:
    """Make transformers' template global `strftime_now` see `moment` (it reads its module's `datetime.now`)."""
    from transformers.utils import chat_template_utils

    original = getattr(chat_template_utils, "datetime", None)
    if original is None:
        yield
        return

    class FrozenClock(datetime.datetime):
        @classmethod
        def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:
            return moment if tz is None else moment.replace(tzinfo=tz)

    chat_template_utils.datetime = FrozenClock
    try:
        yield
    finally:
        chat_template_utils.datetime = original


def render(m: Materialized, messages: list[dict], **kwargs: Any) -> str:
    """Messages rendered by the recipe's tokenizer with its effective chat template (transformers' sandbox)."""
    return m.tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def render_is_deterministic(m: Materialized, messages: list[dict], **kwargs: Any) -> tuple[bool, bool]:
    """(same text when rendered twice at one moment and once at another, whether the text depends on the date)."""
    texts = []
    for moment in (CLOCKS[0], CLOCKS[0], CLOCKS[1]):
        with frozen_clock(moment):
            texts.append(render(m, messages, date_string=moment.strftime("%d %b %Y"), **kwargs))
    return len(set(texts)) == 1, texts[0] == texts[1] and texts[0] != texts[2]
