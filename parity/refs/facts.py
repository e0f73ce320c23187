"""What `parity refs verify` returns: each pinned vendor.Fact with what the checkout says, per ref."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from parity.vendor import Fact, FactSheet

Status = Literal["ok", "drift", "missing"]


@dataclass(frozen=True)
class FactCheck:
    """One pinned fact compared with what the checkout says (`file` is where the locator looked)."""

    fact: Fact
    found: Any
    file: str
    line: int | None
    status: Status
    detail: str = ""

    @property
    def name(self) -> str:
        return self.fact.name

    @property
    def expected(self) -> Any:
        """The pinned value."""
        return self.fact.value


@dataclass(frozen=True)
class RefsReport:
    """Every fact of one pinned FactSheet (ref = sheet.recipe, at sheet.repo @ sheet.commit) checked against one
    checkout."""

    sheet: FactSheet
    checkout: Path
    facts: list[FactCheck]

    @property
    def ok(self) -> bool:
        return all(check.status == "ok" for check in self.facts)

    def count(self, status: Status) -> int:
        """How many facts have this status."""
        return sum(check.status == status for check in self.facts)

    def by_name(self, name: str) -> FactCheck:
        """The check of one fact."""
        return next(check for check in self.facts if check.name == name)
