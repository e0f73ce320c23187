"""Diff reports: JSON (stable schema), Markdown (a careful engineer's discrepancy analysis), HTML (with plots)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parity.atomic import write_text_atomic
from parity.errors import ParityError

FORMATS = ("json", "md", "html")


def report_json(report_dict: dict[str, Any]) -> str:
    """The JSON report text: deterministic (stable key order from the report, no timestamps)."""
    return json.dumps(report_dict, indent=2, ensure_ascii=False) + "\n"


def write_reports(
    report_dict: dict[str, Any], out_dir: Path, formats: tuple[str, ...] = FORMATS
) -> list[Path]:
    """Render the requested formats and write each file atomically; returns the written paths."""
    from parity.report.html import render_html
    from parity.report.markdown import render_markdown

    renderers = {"json": report_json, "md": render_markdown, "html": render_html}
    rendered = {fmt: renderers[fmt](report_dict) for fmt in formats}  # render all before writing any
    written = []
    for fmt, text in rendered.items():
        path = Path(out_dir) / f"report.{fmt}"
        try:
            write_text_atomic(path, text)
        except OSError as err:
            raise ParityError(
                f"--out {out_dir}: cannot write {path.name} ({why_unwritable(Path(out_dir), err)})"
            ) from None
        written.append(path)
    return written


def why_unwritable(directory: Path, err: OSError) -> str:
    """A short reason a report directory cannot be written: names a file in the way, else the system's words."""
    for parent in (directory, *directory.parents):
        if parent.is_symlink() and not parent.exists():
            return f"{parent} is a broken or looping symbolic link"
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a directory"
    return err.strerror or type(err).__name__
