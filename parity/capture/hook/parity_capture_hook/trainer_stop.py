"""The stop point: once the outermost `transformers.Trainer` constructor (any subclass) returns, everything the
trainer holds is written to the state directory and the process exits; nothing trains.

Later world sizes stop at the constructor's entry and write only the training arguments."""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any

from parity_capture_hook import imports, loss_step, serialize, state

_entry: dict[str, Any] = {}


def _bound_arguments(init: Any, trainer: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    try:
        return dict(inspect.signature(init).bind_partial(trainer, *args, **kwargs).arguments)
    except TypeError:
        return dict(kwargs)


def _on_entry(trainer: Any, init: Any, args: tuple, kwargs: dict) -> None:
    arguments = _bound_arguments(init, trainer, args, kwargs)
    _entry.update(
        trainer_class=f"{type(trainer).__module__}.{type(trainer).__qualname__}",
        train_dataset=arguments.get("train_dataset"),
        eval_dataset=arguments.get("eval_dataset"),
        peft_config=arguments.get("peft_config"),
        training_args=arguments.get("args"),
    )
    state.record("trainer-entry", trainer_class=_entry["trainer_class"])
    if state.config().get("mode") == "args" and _entry["training_args"] is not None:
        serialize.write_training_args(_entry["training_args"])
        state.write_json("trainer.json", {"class": _entry["trainer_class"], "stopped_at": "entry"})
        state.stop_captured()


def _on_constructed(trainer: Any) -> None:
    state.record("trainer-constructed", trainer_class=_entry.get("trainer_class"))
    serialize.write_training_args(trainer.args)
    state.write_json("trainer.json", {"class": _entry.get("trainer_class"), "stopped_at": "constructed"})
    if state.config().get("mode") != "args":
        serialize.write_everything(trainer, _entry)
        if state.config().get("train_step"):
            loss_step.write(trainer)
    state.stop_captured()


def _wrap_init(cls: type) -> None:
    original = cls.__dict__.get("__init__")
    if original is None or getattr(original, "_parity_capture", False):
        return

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        depth = self.__dict__.get("_parity_capture_depth", 0)
        if depth == 0:
            _on_entry(self, original, args, kwargs)
        self.__dict__["_parity_capture_depth"] = depth + 1
        try:
            original(self, *args, **kwargs)
        except Exception as err:
            if depth == 0:
                first_line = (str(err).strip().splitlines() or [""])[0]
                state.fail(
                    "trainer-failed",
                    f"the recipe's own {type(self).__qualname__}(...) raised {type(err).__name__}: {first_line}",
                )
            raise
        finally:
            self.__dict__["_parity_capture_depth"] = depth
        if depth == 0:
            _on_constructed(self)

    __init__._parity_capture = True
    cls.__init__ = __init__


def _patch_trainer(trainer_module: Any) -> None:
    trainer_class = trainer_module.Trainer
    _wrap_init(trainer_class)

    def __init_subclass__(cls: type, **kwargs: Any) -> None:
        super(trainer_class, cls).__init_subclass__(**kwargs)
        _wrap_init(cls)

    trainer_class.__init_subclass__ = classmethod(__init_subclass__)

    def init_hf_repo(self: Any, *args: Any, **kwargs: Any) -> None:
        state.record(
            "hub-push",
            call="Trainer.init_hf_repo",
            repo_id=getattr(self.args, "hub_model_id", None),
            neutralized="push_to_hub=True: repository creation skipped",
        )

    if hasattr(trainer_class, "init_hf_repo"):
        trainer_class.init_hf_repo = init_hf_repo
    original_callbacks = getattr(trainer_module, "get_reporting_integration_callbacks", None)
    if original_callbacks is not None:

        def get_reporting_integration_callbacks(report_to: Any) -> list:
            state.record(
                "tracker", tracker="Trainer report_to", requested=report_to, neutralized="no callbacks"
            )
            return []

        trainer_module.get_reporting_integration_callbacks = get_reporting_integration_callbacks
    for name, module in list(sys.modules.items()):
        if name.startswith("transformers") and module is not None:
            for value in list(vars(module).values()):
                if (
                    isinstance(value, type)
                    and value is not trainer_class
                    and issubclass(value, trainer_class)
                ):
                    _wrap_init(value)


def install() -> None:
    imports.after_import("transformers.trainer", _patch_trainer)
