"""Env probe: the library pins each recipe's upstream declares, against each other and against the versions
installed here (packaging's SpecifierSet decides whether a running version satisfies a pin). A captured recipe ran
in its own environment: its versions are the ones its capture recorded, never the ones installed here."""

from __future__ import annotations

from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from parity.installed import running_version
from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement

make_finding = FindingMaker("env")


def measured_version(m: Materialized, package: str) -> tuple[str | None, str]:
    """The version of `package` a recipe is measured under and where it ran: "capture" (the version its own
    environment had, from the capture's manifest) for a captured recipe, else "here" (installed in parity's)."""
    if m.captured is not None:
        return m.captured.captured.manifest.get("versions", {}).get(package), "capture"
    return running_version(package), "here"


def installed_instead(m: Materialized, package: str) -> str | None:
    """For a captured recipe that ran another version of `package` than the one installed here, what stands in
    when parity computes something with the installed library ('the installed trl 1.16.0 (the capture ran
    0.18.1)'); None for any other recipe or the same version."""
    ran, where = measured_version(m, package)
    here = running_version(package)
    if where != "capture" or ran == here:
        return None
    return f"the installed {package} {here} (the capture ran {ran or f'no {package}'})"


def satisfied(pin: str, running: str | None) -> bool | None:
    """Whether the running version meets the pin (None when the package is absent or the pin unparsable)."""
    if running is None:
        return None
    try:
        return SpecifierSet(pin).contains(Version(running).public, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return None


@measurement("env")
def measure(m: Materialized) -> dict[str, Any]:
    """The recipe's pins and whether the environment it is measured under meets them (for a captured recipe: the
    environment its capture ran in)."""
    out = {}
    for package, pin in sorted(m.recipe.env.items()):
        running, ran_in = measured_version(m, package)
        out[package] = {"pin": pin, "running": running, "satisfied": satisfied(pin, running)}
        if ran_in == "capture":
            out[package]["ran_in"] = "capture"
    return out


def _pin_text(name: str, entry: dict[str, Any] | None) -> str:
    if entry is None:
        return f"{name} does not pin it"
    if entry.get("ran_in") == "capture":
        return f"{name} ran {entry['running']} in its capture"
    if entry["running"] is None:
        return f"{name} pins {entry['pin']} (not installed here)"
    state = {True: "satisfied", False: "violated", None: "not checkable"}[entry["satisfied"]]
    return f"{name} pins {entry['pin']} ({state})"


@PROBES.register("env")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Pin differences between the recipes, and pins the running environment meets for one recipe but not the other."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    names = a.recipe.name, b.recipe.name
    findings = []
    for package in sorted(set(va) | set(vb)):
        ea, eb = va.get(package), vb.get(package)
        pin_a, pin_b = (ea or {}).get("pin"), (eb or {}).get("pin")
        if pin_a != pin_b:
            findings.append(
                make_finding(
                    f"env.{package}",
                    "low",
                    pin_a,
                    pin_b,
                    f"{package}: {_pin_text(names[0], ea)}, {_pin_text(names[1], eb)}",
                    {
                        "running": running_version(package),
                        "a_ran_in": (ea or {}).get("ran_in", "here"),
                        "b_ran_in": (eb or {}).get("ran_in", "here"),
                    },
                )
            )
        ok_a, ok_b = (ea or {}).get("satisfied"), (eb or {}).get("satisfied")
        if ok_a == ok_b:
            continue
        for name, entry in ((names[0], ea), (names[1], eb)):
            if entry is not None and entry["satisfied"] is False:
                findings.append(
                    make_finding(
                        f"env.{package}.running",
                        "info",
                        ok_a,
                        ok_b,
                        f"{name} pins {package}{entry['pin']} but {package} {entry['running']} runs here; "
                        "materialization uses the running version",
                        {"recipe": name, "pin": entry["pin"], "running": entry["running"]},
                    )
                )
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
