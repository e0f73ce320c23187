"""What every framework adapter records: argument objects with per-field provenance, and parity's effective
values (max length, completion-only, packing, template, ...) each with the setting it came from."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable
from typing import Any

from parity_capture_hook import state

RECIPE = "recipe"
"""The recipe's own configuration (its YAML, JSON or command line) sets the field."""
DEFAULT = "default"
"""The field keeps its class's default."""
DERIVED = "derived"
"""Neither: the framework's own code set it (from other settings, the data or the environment)."""
MEASURED = "measured"
"""Read from an object the framework built (the model, its template, its prompter), not from a setting."""


def class_name(value: Any) -> str:
    cls = value if isinstance(value, type) else type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


def declared_defaults(cls: type) -> dict[str, Any]:
    """Each dataclass field's declared default (a required field is absent)."""
    defaults = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            defaults[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            try:
                defaults[field.name] = field.default_factory()
            except Exception:  # noqa: BLE001 - a factory that needs context has no default to compare
                continue
    return defaults


def provenance(name: str, value: Any, given: Iterable[str], defaults: dict[str, Any]) -> str:
    """RECIPE when the recipe named the field, DEFAULT when it holds its default, else DERIVED."""
    if name in set(given):
        return RECIPE
    if name in defaults and state.jsonable(defaults[name]) == state.jsonable(value):
        return DEFAULT
    return DERIVED


def arguments_record(arguments: Any, given: Iterable[str]) -> dict[str, Any]:
    """A parsed arguments dataclass: its class, every field's value, and each field's provenance."""
    given = set(given)
    values = {field.name: getattr(arguments, field.name, None) for field in dataclasses.fields(arguments)}
    defaults = declared_defaults(type(arguments))
    return {
        "class": class_name(arguments),
        "values": {name: state.jsonable(value) for name, value in values.items()},
        "provenance": {name: provenance(name, value, given, defaults) for name, value in values.items()},
    }


def effective(value: Any, source: str, how: str, given: Any = None) -> dict[str, Any]:
    """One of parity's effective values: the value, the framework setting it comes from, and how it was set
    (`given`: the recipe's own value where the framework changed it)."""
    entry = {"value": state.jsonable(value), "from": source, "provenance": how}
    if given is not None and state.jsonable(given) != entry["value"]:
        entry["given"] = state.jsonable(given)
    return entry


def from_arguments(record: dict[str, Any], field: str, label: str, value: Any = None) -> dict[str, Any]:
    """An effective value read from a field of an `arguments_record` (`value` when it is a function of it)."""
    raw = record["values"].get(field)
    return effective(
        raw if value is None else value, f"{label}.{field}", record["provenance"].get(field, DERIVED)
    )


def model_gradient_checkpointing(model: Any) -> bool | None:
    """Whether gradient checkpointing is enabled on the model itself (None: the model cannot say)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    value = getattr(base, "is_gradient_checkpointing", None)
    return value if isinstance(value, bool) else None


def caller(skip: tuple[str, ...] = ("datasets", "parity_capture_hook", "functools")) -> str:
    """`module.function` (file:line) of the first frame outside `skip`: who made the call being recorded."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if not any(module == prefix or module.startswith(prefix + ".") for prefix in skip):
            filename = frame.f_code.co_filename
            if "site-packages/" in filename:
                filename = filename.rsplit("site-packages/", 1)[1]
            where = state.portable(f"{filename}:{frame.f_lineno}")
            return f"{module}.{frame.f_code.co_name} ({where})"
        frame = frame.f_back
    return "unknown"


def stub_unless_importable(module_name: str, why: str, adapter: str) -> None:
    """Serve `module_name` as a stub when it is not installed or fails to import (recorded with the reason)."""
    import importlib
    import importlib.util

    from parity_capture_hook import imports

    if module_name in sys.modules or imports.is_stubbed(module_name):
        return
    failure = None
    if importlib.util.find_spec(module_name) is None:
        failure = "not installed"
    else:
        try:
            importlib.import_module(module_name)
            return
        except Exception as err:  # noqa: BLE001 - a build for another torch fails with OSError/RuntimeError
            failure = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"
            for name in [
                name for name in sys.modules if name == module_name or name.startswith(module_name + ".")
            ]:
                del sys.modules[name]
    imports.add_stub(module_name)
    state.record("framework-stub", adapter=adapter, module=module_name, why=why, real_import=failure)
