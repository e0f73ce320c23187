"""Version-semantics probe: training fields a recipe's declared library pins and the running libraries treat
differently. The older side of each change is cited data (vendor_refs/libraries/version_facts.yaml); the running
side is measured from the installed classes (which fields the real SFTConfig has, what they resolve to)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from parity.findings import SEVERITY_RANK, Finding
from parity.materialize import Materialized
from parity.overrides import sft_config_fields
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.probes.env import measured_version
from parity.vendor import VENDOR_REFS_DIR

make_finding = FindingMaker("versions")
FACTS = VENDOR_REFS_DIR / "libraries" / "version_facts.yaml"


@dataclass(frozen=True)
class VersionFact:
    """One change of training semantics between two releases of a library."""

    library: str
    field: str
    kind: str
    changed_in: str
    effect: str
    relevant_when: tuple[str, ...]
    new_field: str | None = None
    cases: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"versions.{self.library}.{self.field.replace(' ', '_')}"


@cache
def version_facts() -> tuple[VersionFact, ...]:
    """The cited table of version changes."""
    raw = yaml.safe_load(FACTS.read_text(encoding="utf-8"))
    return tuple(
        VersionFact(
            library=entry["library"],
            field=entry["field"],
            kind=entry["kind"],
            changed_in=str(entry["changed_in"]),
            effect=" ".join(entry["effect"].split()),
            relevant_when=tuple(entry["relevant_when"]),
            new_field=entry.get("new_field"),
            cases=tuple(" ".join(str(c).split()) for c in entry.get("cases", ())),
        )
        for entry in raw["facts"]
    )


def admits_before(pin: str, changed_in: str) -> bool | None:
    """Whether the pin allows a release older than `changed_in` (None: unparsable pin). The candidates are the
    versions the pin names, and 0 for pins with no lower bound."""
    try:
        spec = SpecifierSet(pin)
        boundary = Version(changed_in)
    except (InvalidSpecifier, InvalidVersion):
        return None
    candidates = []
    for text in [s.version for s in spec] + ["0"]:
        try:
            candidates.append(Version(text))
        except InvalidVersion:
            continue
    return any(c < boundary and spec.contains(c, prereleases=True) for c in candidates)


def relevance(m: Materialized, fact: VersionFact) -> list[str]:
    """Why the change matters to this recipe (empty: it does not)."""
    reasons = []
    if "upstream_key" in fact.relevant_when and fact.field in m.recipe.upstream.config:
        reasons.append(f"upstream config writes {fact.field}={m.recipe.upstream.config[fact.field]!r}")
    if "training_key" in fact.relevant_when and fact.new_field in m.recipe.training:
        reasons.append(f"recipe sets {fact.new_field}={m.recipe.training[fact.new_field]!r}")
    if "always" in fact.relevant_when:
        reasons.append(f"every {fact.library} training run")
    return reasons


def running_semantics(m: Materialized, fact: VersionFact) -> dict[str, Any]:
    """What the installed library does with the field: whether the old and new names exist on the real
    SFTConfig, the new field's value, and for warmup the step count the Trainer derives from it."""
    if fact.kind == "behaviour":
        return {}
    fields = sft_config_fields()
    out: dict[str, Any] = {"old_field_exists": fact.field in fields}
    if fact.new_field is not None:
        out["new_field_exists"] = fact.new_field in fields
        out["new_field_value"] = plain(getattr(m.sft_config, fact.new_field, None))
    if fact.new_field == "warmup_steps":
        total = m.step_plan().total_steps
        out["warmup_steps_here"] = m.sft_config.get_warmup_steps(total)
        out["total_steps"] = total
    return out


@measurement("versions")
def measure(m: Materialized) -> dict[str, Any]:
    """Each cited change whose older semantics the recipe's pins allow while a newer release runs here (for a captured
    recipe: ran in its capture, whose recorded versions are its pins, so its measured behaviour needs no citation)."""
    entries = {}
    for fact in version_facts():
        pin = m.recipe.env.get(fact.library)
        running, _ = measured_version(m, fact.library)
        if pin is None or running is None:
            continue
        older = admits_before(pin, fact.changed_in)
        newer_here = Version(running) >= Version(fact.changed_in)
        reasons = relevance(m, fact)
        if not (older and newer_here and reasons):
            continue
        semantics = running_semantics(m, fact)
        carried = fact.kind != "renamed" or (
            bool(semantics.get("new_field_exists")) and fact.new_field in m.recipe.training
        )
        entries[fact.key] = {
            "library": fact.library,
            "field": fact.field,
            "kind": fact.kind,
            "declared": pin,
            "running": running,
            "changed_in": fact.changed_in,
            "reasons": reasons,
            "running_semantics": semantics,
            "value_carried": bool(carried),
            "severity": "low" if carried else "medium",
            "effect": fact.effect,
            "cases": list(fact.cases),
        }
    return entries


def _side(name: str, entry: dict | None) -> str:
    if entry is None:
        return f"{name}: not affected"
    return (
        f"{name} declares {entry['library']}{entry['declared']} (allows releases before {entry['changed_in']}), "
        f"{entry['running']} runs here ({'; '.join(entry['reasons'])})"
    )


@PROBES.register("versions")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """One finding per cited change that affects the recipes differently (one of them only, or through different
    pins): both declared versions, the running one and the effect."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    findings: list[Finding] = []
    for fact in version_facts():
        ea, eb = va.get(fact.key), vb.get(fact.key)
        if ea == eb:
            continue
        severity = min((e["severity"] for e in (ea, eb) if e), key=SEVERITY_RANK.__getitem__)
        findings.append(
            make_finding(
                fact.key,
                severity,
                f"{fact.library}{ea['declared']}" if ea else None,
                f"{fact.library}{eb['declared']}" if eb else None,
                f"{fact.library} {fact.field} ({fact.kind} in {fact.changed_in}): {_side(a.recipe.name, ea)}; "
                f"{_side(b.recipe.name, eb)}. Effect: {fact.effect}",
                {"a": ea, "b": eb, "cases": list(fact.cases)},
            )
        )
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
