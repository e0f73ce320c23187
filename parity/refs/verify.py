"""Re-extract every pinned fact of a ref from a checkout: vendor_refs/<ref>/locators.yaml says where each is.

Returns a RefsReport; printing is the command line's job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import parity.refs.config_locators as config_locators
import parity.refs.python_locators as python_locators
import parity.refs.shell_locators as shell_locators
import parity.refs.snippet_locators as snippet_locators
from parity.errors import ParityError, unknown_key_error
from parity.refs.facts import FactCheck, RefsReport
from parity.refs.locators import LOCATORS
from parity.refs.source import NotLocated, SourceFile, one_line, read_source
from parity.refs.values import values_equal
from parity.vendor import VENDOR_REFS_DIR, Fact, available_refs, load_facts

LOCATOR_MODULES = (python_locators, shell_locators, config_locators, snippet_locators)
"""Importing these registers every locator kind in LOCATORS."""


def locators_path(ref: str) -> Path:
    """vendor_refs/<ref>/locators.yaml."""
    return VENDOR_REFS_DIR / ref / "locators.yaml"


def load_locators(ref: str) -> dict[str, dict[str, Any]]:
    """Read and validate vendor_refs/<ref>/locators.yaml: fact name -> locator spec."""
    path = locators_path(ref)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ParityError(f"cannot read locators for '{ref}': {path} ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise ParityError(f"malformed {path}: {one_line(error)}") from None
    specs = raw.get("locators") if isinstance(raw, dict) else None
    if not isinstance(specs, dict):
        raise ParityError(f"malformed {path}: expected a 'locators' mapping of fact name to locator")
    for name, spec in specs.items():
        if not isinstance(spec, dict) or "kind" not in spec:
            raise ParityError(f"malformed {path}: locator for '{name}' needs a 'kind'")
        if spec["kind"] not in LOCATORS:
            raise unknown_key_error(
                f"locator kind (fact '{name}' in {path.name})", spec["kind"], LOCATORS.names()
            )
        lacking = [key for key in LOCATORS.get(spec["kind"]).requires if key not in spec]
        if lacking:
            raise ParityError(
                f"malformed {path}: locator for '{name}' ({spec['kind']}) needs {', '.join(lacking)}"
            )
    return specs


def _check(fact: Fact, spec: dict[str, Any], checkout: Path, files: dict[str, SourceFile]) -> FactCheck:
    relative = str(spec.get("file", fact.file))
    try:
        if relative not in files:
            files[relative] = read_source(checkout, relative)
        located = LOCATORS.get(spec["kind"]).find(files[relative], spec)
    except NotLocated as miss:
        return FactCheck(fact, None, relative, None, "missing", str(miss))
    if values_equal(fact.value, located.value):
        return FactCheck(fact, located.value, relative, located.line, "ok", located.detail)
    line = located.line
    if isinstance(fact.value, dict) and isinstance(located.value, dict):
        changed = [
            k
            for k in located.value
            if k not in fact.value or not values_equal(fact.value[k], located.value[k])
        ]
        line = min((located.key_lines[k] for k in changed if k in located.key_lines), default=line)
    return FactCheck(fact, located.value, relative, line, "drift", located.detail)


def verify_ref(ref: str, checkout: Path) -> RefsReport:
    """Re-extract every pinned fact of `ref` from `checkout` and compare with vendor_refs."""
    refs = available_refs()
    if ref not in refs:
        raise unknown_key_error("ref", ref, refs)
    checkout = Path(checkout)
    if not checkout.exists():
        raise ParityError(f"checkout '{checkout}' does not exist")
    if not checkout.is_dir():
        raise ParityError(f"checkout '{checkout}' is not a directory")
    sheet = load_facts(ref)
    specs = load_locators(ref)
    unlocated = sorted(set(sheet.facts) - set(specs))
    if unlocated:
        raise ParityError(f"{locators_path(ref)} has no locator for: {', '.join(unlocated)}")
    stale = sorted(set(specs) - set(sheet.facts))
    if stale:
        raise ParityError(f"{locators_path(ref)} locates facts that facts.yaml lacks: {', '.join(stale)}")
    files: dict[str, SourceFile] = {}
    checks = [_check(fact, specs[name], checkout, files) for name, fact in sheet.facts.items()]
    return RefsReport(sheet=sheet, checkout=checkout, facts=checks)
