"""`parity refs verify`: re-extract the pinned facts of vendor_refs/<ref> from a local upstream checkout.

Files are only read and parsed (ast, shlex, yaml, json, tomllib); nothing in the checkout is imported or run,
except with `--capture` (parity.refs.capture_check), which runs the recipe's own code up to its trainer.
Layers: source (one parsed file) -> locators by kind -> verify (RefsReport) -> format (its text)."""

from parity.refs.config_locators import parse_key_path
from parity.refs.facts import FactCheck, RefsReport, Status
from parity.refs.format import format_refs_report
from parity.refs.locators import LOCATORS, Locator, locator
from parity.refs.source import Located, NotLocated, SourceFile, parse_shell, read_source
from parity.refs.values import scalar, values_equal
from parity.refs.verify import load_locators, locators_path, verify_ref

__all__ = [
    "LOCATORS",
    "FactCheck",
    "Located",
    "Locator",
    "NotLocated",
    "RefsReport",
    "SourceFile",
    "Status",
    "format_refs_report",
    "load_locators",
    "locator",
    "locators_path",
    "parse_key_path",
    "parse_shell",
    "read_source",
    "scalar",
    "values_equal",
    "verify_ref",
]
