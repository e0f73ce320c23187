"""The console script's garbage-collector policy, and the pause every diff runs under.

Kept apart from the engine so that a process can adopt the policy before it imports anything heavy."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GC_THRESHOLDS = (50_000, 20, 20)
"""Cyclic-GC thresholds for the console script. Importing torch, transformers, TRL and peft and holding token
lists allocates millions of long-lived objects; at Python's default (700, 10, 10) the collector rescans them
so often that it costs about a second of a default `parity diff` (5.5 s -> 4.5 s). Cycles are still collected."""

_freeze_on_resume = False


def configure_console_process() -> None:
    """The console script's policy: raised thresholds, and a diff's objects frozen when the collector resumes.

    The console script exits right after its command, so instead of traversing the diff's objects once more on
    the first allocation after the pause (0.3 s of a default diff), the collector moves them to its permanent
    generation. Reference counting still frees them; only cycles among them stay until the process ends."""
    global _freeze_on_resume
    gc.set_threshold(*GC_THRESHOLDS)
    _freeze_on_resume = True


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the duration of a diff, then restore it as it was.

    A diff imports torch, transformers and TRL and builds lists of every tokenized row; the collector's passes
    over them free next to nothing and cost CPU: about 1 s per diff at Python's default thresholds (a library
    caller), 0.1-0.3 s at the console script's raised ones. Reference counting still frees everything that is
    not in a cycle, and the collector runs again once the diff returns."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if _freeze_on_resume:
                gc.freeze()
            gc.enable()
