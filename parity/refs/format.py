"""The text of a RefsReport: a summary line, one line per fact, pinned and found under each drift."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from parity.refs.facts import FactCheck, RefsReport
from parity.refs.values import values_equal

if TYPE_CHECKING:
    from parity.refs.capture_check import CaptureCheck

SHOWN_CHARS = 60


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))


def _excerpt(text: str, around: int) -> str:
    """A window of a long string around one character, with … where it was cut."""
    start = max(0, around - SHOWN_CHARS // 2)
    end = start + SHOWN_CHARS
    return ("…" if start else "") + repr(text[start:end]) + ("…" if end < len(text) else "")


def _show(value: Any, around: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{_excerpt(value, around)} ({len(value)} chars)"
    shown = repr(value)
    return shown if len(shown) <= 2 * SHOWN_CHARS else shown[: 2 * SHOWN_CHARS] + "…"


def _drift_lines(check: FactCheck) -> list[str]:
    pinned, found = check.expected, check.found
    if isinstance(pinned, dict) and isinstance(found, dict):
        lines = []
        for key, value in pinned.items():
            if key not in found:
                lines.append(f"{key}: pinned {_show(value)}, absent")
            elif not values_equal(value, found[key]):
                lines.append(f"{key}: pinned {_show(value)}, found {_show(found[key])}")
        return lines + [f"{key}: not pinned, found {_show(found[key])}" for key in found if key not in pinned]
    if isinstance(pinned, str) and isinstance(found, str):
        at = _first_difference(pinned, found)
        shown = [f"pinned {_show(pinned, at)}", f"found  {_show(found, at)}"]
        if at == 0 and max(len(pinned), len(found)) <= SHOWN_CHARS:
            return shown
        return shown + [
            f"first difference at char {at}: pinned {pinned[at : at + 1]!r}, found {found[at : at + 1]!r}"
        ]
    return [f"pinned {_show(pinned)}", f"found  {_show(found)}"]


def format_refs_report(report: RefsReport, show_ok: bool = True) -> str:
    """Readable report: a summary line, then one line per fact, with pinned/found under each drift."""
    total, sheet = len(report.facts), report.sheet
    counts = f"{report.count('ok')} ok, {report.count('drift')} drift, {report.count('missing')} missing"
    lines = [
        f"refs verify {sheet.recipe} ({sheet.repo} @ {sheet.commit}) against {report.checkout}",
        f"{total} facts: {counts}",
    ]
    width = max((len(check.name) for check in report.facts), default=0)
    for check in report.facts:
        if check.status == "ok" and not show_ok:
            continue
        where = check.file + (f":{check.line}" if check.line else "")
        lines.append(
            f"  {check.status.upper() if check.status != 'ok' else 'ok':8} {check.name:{width}}  {where}"
        )
        details = _drift_lines(check) if check.status == "drift" else []
        details += [check.detail] if check.detail and check.status != "ok" else []
        lines += [f"  {'':8} {detail}" for detail in details]
    return "\n".join(lines)


def format_capture_check(check: CaptureCheck, show_ok: bool = True) -> str:
    """Readable `refs verify --capture` report: a summary line, one line per value, both values under each
    drift and the reason under each version-dependent value."""
    versions = ", ".join(
        f"{lib} {check.versions[lib]}" for lib in ("transformers", "trl") if lib in check.versions
    )
    counts = f"{check.count('ok')} ok, {check.count('drift')} drift, {check.count('version-dependent')} version-dependent"
    lines = [
        f"refs verify {check.ref} against a capture of {check.checkout} ({check.capture}; {versions})",
        f"{len(check.checks)} values: {counts}",
    ]
    width = max((len(item.name) for item in check.checks), default=0)
    for item in check.checks:
        if item.status == "ok" and not show_ok:
            continue
        label = (
            "ok" if item.status == "ok" else ("VERSION" if item.status == "version-dependent" else "DRIFT")
        )
        lines.append(f"  {label:8} {item.name:{width}}  {_show(item.recipe)}")
        if item.status == "drift":
            if isinstance(item.recipe, dict) and isinstance(item.captured, dict):
                lines += [
                    f"  {'':8} {key}: recipe {_show(value)}, captured {_show(item.captured.get(key))}"
                    for key, value in item.recipe.items()
                    if not values_equal(value, item.captured.get(key))
                ]
            else:
                lines += [
                    f"  {'':8} recipe   {_show(item.recipe)}",
                    f"  {'':8} captured {_show(item.captured)}",
                ]
        if item.status == "version-dependent":
            lines.append(
                f"  {'':8} recipe {_show(item.recipe)}, captured {_show(item.captured)}: {item.detail}"
            )
    return "\n".join(lines)
