"""SFTConfig field differences for the probes that own fields in the axis table (no probe registers here).
A probe that owns fields reports each differing one as `training.<field>`, aligned by the field's axis."""

from __future__ import annotations

from typing import Any

from parity.axes import field_axis, field_severity, probe_fields
from parity.findings import Finding
from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import FindingMaker


def owned_values(m: Materialized, probe: str) -> dict[str, Any]:
    """The values of the SFTConfig fields `probe` reports, read from the recipe's materialized SFTConfig."""
    return {name: plain(getattr(m.sft_config, name)) for name in probe_fields(probe)}


def owned_field_findings(
    make_finding: FindingMaker, names: tuple[str, str], va: dict[str, Any], vb: dict[str, Any]
) -> list[Finding]:
    """One finding per differing field of `owned_values` (va/vb), named after the recipes."""
    return [
        make_finding(
            f"training.{name}",
            field_severity(name),
            va[name],
            vb[name],
            f"{name} differs: {names[0]} {va[name]!r}, {names[1]} {vb[name]!r}",
            align=field_axis(name),
        )
        for name in va
        if va[name] != vb[name]
    ]
