"""The locator protocol: a function from (file, spec) to a Located value, registered under its kind.

Kinds live in python_locators (ast), shell_locators (shlex) and config_locators (YAML, JSON, TOML) and
snippet_locators; `LOCATORS` holds them all once those modules are imported (refs.verify does)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from parity.refs.source import Located, SourceFile
from parity.registries import Registry


@dataclass(frozen=True)
class Locator:
    """A registered locator kind: the function and the spec keys it needs."""

    kind: str
    find: Callable[[SourceFile, dict[str, Any]], Located]
    requires: tuple[str, ...]


LOCATORS: Registry[Locator] = Registry("locator kind")


def locator(kind: str, *requires: str) -> Callable:
    """Register a locator function under `kind`; `requires` are the spec keys it reads."""

    def register(find: Callable[[SourceFile, dict[str, Any]], Located]) -> Callable:
        LOCATORS.add(kind, Locator(kind=kind, find=find, requires=requires))
        return find

    return register
