"""Versions of the libraries installed beside parity (what runs here, as opposed to what a capture ran)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def running_version(package: str) -> str | None:
    """The installed version of `package`, None when it is not installed."""
    try:
        return version(package)
    except PackageNotFoundError:
        return None
