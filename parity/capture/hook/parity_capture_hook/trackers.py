"""Experiment trackers: wandb runs disabled (a recording stand-in when wandb is not installed), and what the
recipe asked of them recorded."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from parity_capture_hook import imports, state


def _recording_init(tracker: str, real_init: Callable[..., Any] | None) -> Callable[..., Any]:
    def init(*args: Any, **kwargs: Any) -> Any:
        state.record("tracker", tracker=tracker, call="init", kwargs=kwargs, installed=real_init is not None)
        if real_init is None:
            return imports.dummy_class(f"{tracker}.Run", tracker)()
        kwargs["mode"] = "disabled"
        return real_init(*args, **kwargs)

    return init


def install() -> None:
    """Disable wandb.init (or serve a recording stand-in module when wandb is absent)."""
    if importlib.util.find_spec("wandb") is None:
        module = imports.StubModule("wandb")
        module.__path__ = []
        module.__spec__ = importlib.machinery.ModuleSpec("wandb", None, is_package=True)
        module.init = _recording_init("wandb", None)
        module.run = None
        sys.modules["wandb"] = module
        return
    imports.after_import(
        "wandb", lambda module: setattr(module, "init", _recording_init("wandb", module.init))
    )
