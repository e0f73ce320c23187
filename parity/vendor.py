"""Pinned upstream facts (vendor_refs/<recipe>/facts.yaml): values with the file they come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from parity.errors import ParityError

VENDOR_REFS_DIR = Path(__file__).resolve().parent.parent / "vendor_refs"


@dataclass(frozen=True)
class Fact:
    """One upstream value and where it is written."""

    name: str
    value: Any
    file: str
    note: str = ""


@dataclass(frozen=True)
class FactSheet:
    """All pinned facts of one upstream repository at one commit."""

    recipe: str
    repo: str
    commit: str
    facts: dict[str, Fact] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.facts[name].value

    def group(self, prefix: str) -> dict[str, Any]:
        """Values of the facts named '<prefix>.<key>', keyed by <key> (e.g. group('env') -> {'trl': '==0.17.0'})."""
        return {
            name.removeprefix(f"{prefix}."): fact.value
            for name, fact in self.facts.items()
            if name.startswith(f"{prefix}.")
        }

    def source(self, name: str) -> str:
        """'repo@commit:file' for a fact, for provenance columns."""
        return f"{self.repo}@{self.commit}:{self.facts[name].file}"


def available_refs() -> list[str]:
    """Names of the recipes with pinned facts."""
    return sorted(p.parent.name for p in VENDOR_REFS_DIR.glob("*/facts.yaml"))


@cache
def load_facts(recipe: str) -> FactSheet:
    """Load vendor_refs/<recipe>/facts.yaml."""
    path = VENDOR_REFS_DIR / recipe / "facts.yaml"
    if not path.is_file():
        raise ParityError(f"no pinned facts for '{recipe}' (expected {path})")
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    facts = {
        name: Fact(name=name, value=entry["value"], file=entry["file"], note=entry.get("note", ""))
        for name, entry in raw["facts"].items()
    }
    return FactSheet(recipe=raw["recipe"], repo=raw["repo"], commit=str(raw["commit"]), facts=facts)
