"""pytest plugin: `pytest --parity-lock parity.lock` adds one test per lock entry; `parity_check` fixture.

Registered through the `pytest11` entry point, so installing parity makes it available in any project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("parity")
    group.addoption(
        "--parity-lock",
        action="append",
        default=[],
        metavar="PATH",
        help="Check this parity.lock; one test per entry.",
    )


class ParityLockItem(pytest.Item):
    """One entry of a lock (findings, a.config, b.tokenization, ...) checked against the recomputed state."""

    def __init__(self, *, lock_path: Path, entry: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lock_path = lock_path
        self.entry = entry

    def runtest(self) -> None:
        result = _cached_check(self.config, self.lock_path)
        problems = result.differences_for(self.entry)
        if problems:
            raise ParityLockMismatch(problems)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, ParityLockMismatch):
            return "\n".join(
                [f"{self.lock_path}: {self.entry} changed"]
                + [
                    f"  {d.message}" + "".join(f"\n      {line}" for line in d.detail)
                    for d in excinfo.value.differences
                ]
            )
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.lock_path, 0, f"parity lock {self.lock_path.name}::{self.entry}"


class ParityLockMismatch(AssertionError):
    def __init__(self, differences: list) -> None:
        super().__init__("; ".join(d.message for d in differences))
        self.differences = differences


_CHECKS_KEY = pytest.StashKey[dict]()


def _cached_check(config: pytest.Config, path: Path):
    from parity.lock import check_lock

    cache = config.stash.setdefault(_CHECKS_KEY, {})
    if path not in cache:
        cache[path] = check_lock(path)
    return cache[path]


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if not config.getoption("parity_lock"):
        return
    from parity.lock import ENTRIES

    for raw in config.getoption("parity_lock"):
        path = Path(raw).resolve()
        for entry in ENTRIES:
            items.append(
                ParityLockItem.from_parent(
                    session, name=f"parity-lock[{path.name}::{entry}]", lock_path=path, entry=entry
                )
            )


@pytest.fixture
def parity_check():
    """Call with a lock path; fails the test with the explanation when the pair no longer matches."""
    from parity.lock import check_lock, format_check

    def check(path: str | Path) -> None:
        result = check_lock(Path(path))
        if not result.ok:
            pytest.fail(format_check(result, Path(path)), pytrace=False)

    return check
