"""Config probe: DeepDiff of the resolved trl.SFTConfig values of both recipes (fields no other probe owns),
plus a lint of upstream config keys that nothing reads, with the closest real field they were meant to be."""

from __future__ import annotations

import dataclasses
import inspect
import re
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepdiff import DeepDiff

from parity.axes import field_axis, field_probe, field_severity
from parity.effective import CONTEXT_FIELDS
from parity.errors import ParityError, closest
from parity.findings import Finding
from parity.materialize import Materialized
from parity.overrides import RENAMED_TRAINING_KEYS, lora_config_fields, sft_config_fields
from parity.plain import config_values, plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.spec import SECTIONS
from parity.trl_bridge import resolve_completion_only_loss

make_finding = FindingMaker("config")

LIBRARY_DEFAULT = "default:trl.SFTConfig"


@cache
def model_loader_kwargs() -> frozenset[str]:
    """Keyword arguments transformers' from_pretrained accepts: its signature plus the names it pops from kwargs."""
    from transformers import PreTrainedModel

    method = PreTrainedModel.from_pretrained
    named = {
        p.name
        for p in inspect.signature(method).parameters.values()
        if p.kind is p.KEYWORD_ONLY or p.default is not p.empty
    }
    popped = set(re.findall(r"kwargs\.pop\(\s*[\"'](\w+)[\"']", inspect.getsource(method)))
    return frozenset(n for n in named | popped if not n.startswith("_"))


def field_source(m: Materialized, name: str) -> str:
    """Who set an SFTConfig field: the recipe's provenance, 'recipe', or the library default."""
    if name in m.recipe.training:
        return m.recipe.provenance.get(f"training.{name}", "recipe")
    return LIBRARY_DEFAULT


def unread_keys(m: Materialized) -> dict[str, Any]:
    """Upstream config keys no consumer reads: not mapped by the adapter, not renamed, not a library field."""
    upstream = m.recipe.upstream
    known = sft_config_fields() | lora_config_fields() | model_loader_kwargs()
    return {
        key: value
        for key, value in sorted(upstream.config.items())
        if key not in upstream.consumed and key not in RENAMED_TRAINING_KEYS and key not in known
    }


def effective_field(m: Materialized, name: str) -> Any:
    """The value training uses for an SFTConfig field (completion_only_loss resolved as SFTTrainer does)."""
    if name == "completion_only_loss" and m.sample_rows:
        return resolve_completion_only_loss(m.sft_config, m.sample_rows[0])
    return plain(getattr(m.sft_config, name))


def recipe_value(m: Materialized, key: str) -> Any:
    """The recipe's value at a dotted key (`model.attn_implementation`, `peft.lora.r`); None where unset."""
    section, _, rest = key.partition(".")
    if section not in SECTIONS or not rest:
        raise ParityError(f"upstream.meant of '{m.recipe.name}' names '{key}', which is not a recipe key")
    value = getattr(m.recipe, section)
    for part in rest.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif dataclasses.is_dataclass(value) and part in {f.name for f in dataclasses.fields(value)}:
            value = getattr(value, part)
        else:
            raise ParityError(f"upstream.meant of '{m.recipe.name}' names '{key}', which is not a recipe key")
    return value


def lint_entry(m: Materialized, key: str, value: Any) -> dict[str, Any]:
    """What an unread key was probably meant to be, and whether the real field says otherwise."""
    sft_fields = sft_config_fields()
    meant = m.recipe.upstream.meant.get(key)
    if meant is not None and meant.removeprefix("training.") in sft_fields:
        meant = meant.removeprefix("training.")
    nearest = meant or closest(key, sft_fields | lora_config_fields())
    entry: dict[str, Any] = {"key": key, "written": plain(value), "closest": nearest, "closest_in": None}
    if nearest is None:
        return {**entry, "severity": "medium"}
    if "." in nearest or nearest not in sft_fields | lora_config_fields():
        effective = plain(recipe_value(m, nearest))
        source = m.recipe.provenance.get(nearest, "library default" if effective is None else "recipe")
        entry.update(
            closest_in="recipe",
            closest_configured=effective,
            closest_effective=effective,
            closest_source=source,
        )
        return {**entry, "severity": "medium"}
    if nearest in sft_fields:
        effective = effective_field(m, nearest)
        entry.update(
            closest_in="trl.SFTConfig",
            closest_configured=plain(getattr(m.sft_config, nearest)),
            closest_effective=effective,
            closest_source=field_source(m, nearest),
        )
        return {**entry, "severity": "high" if effective != plain(value) else "medium"}
    return {**entry, "closest_in": "peft.LoraConfig", "severity": "medium"}


def _changes(diff: DeepDiff) -> dict[str, list[dict[str, Any]]]:
    by_field: dict[str, list[dict[str, Any]]] = {}
    for kind, levels in diff.tree.items():
        for level in levels:
            path = level.path(output_format="list")
            entry = {"path": level.path(), "change": kind, "a": plain(level.t1), "b": plain(level.t2)}
            by_field.setdefault(str(path[0]), []).append(entry)
    return {name: sorted(items, key=lambda e: e["path"]) for name, items in sorted(by_field.items())}


def _describe(m: Materialized, name: str) -> str:
    source = field_source(m, name)
    return "library default" if source == LIBRARY_DEFAULT else f"set by the recipe ({source})"


def field_findings(a: Materialized, b: Materialized, va: dict, vb: dict) -> tuple[list[Finding], list[dict]]:
    from deepdiff import DeepDiff  # imported here: it costs ~1 s at start-up

    diff = DeepDiff(
        va, vb, exclude_paths=[f"root['{name}']" for name in sorted(CONTEXT_FIELDS)], verbose_level=2
    )
    findings: list[Finding] = []
    differing: list[dict] = []
    for name, changes in _changes(diff).items():
        owner = field_probe(name)
        differing.append({"field": name, "probe": owner, "a": va.get(name), "b": vb.get(name)})
        if owner != "config":
            continue
        findings.append(
            make_finding(
                f"training.{name}",
                field_severity(name),
                va.get(name),
                vb.get(name),
                f"{name}: {va.get(name)!r} ({_describe(a, name)}) vs {vb.get(name)!r} ({_describe(b, name)})",
                {
                    "a_source": field_source(a, name),
                    "b_source": field_source(b, name),
                    "changes": changes,
                },
                align=field_axis(name),
            )
        )
    return findings, differing


def lint_findings(a: Materialized, b: Materialized, lint_a: dict, lint_b: dict) -> list[Finding]:
    missing = object()
    findings = []
    for key in sorted(set(lint_a) | set(lint_b)):
        ea, eb = lint_a.get(key), lint_b.get(key)
        if (ea or {}).get("written", missing) == (eb or {}).get("written", missing):
            continue
        entry = ea or eb
        owners = [m.recipe.name for m, e in ((a, ea), (b, eb)) if e is not None]
        severity = "high" if "high" in ((ea or {}).get("severity"), (eb or {}).get("severity")) else "medium"
        nearest = entry["closest"]
        if nearest is None:
            tail = "no real field is close"
        elif "closest_effective" in entry:
            tail = (
                f"closest real field '{nearest}' is {entry['closest_configured']!r} ({entry['closest_source']}), "
                f"effective {entry['closest_effective']!r}"
            )
        else:
            tail = f"closest real field '{nearest}' ({entry['closest_in']})"
        findings.append(
            make_finding(
                f"upstream.{key}",
                severity,
                ea["written"] if ea else None,
                eb["written"] if eb else None,
                f"{' and '.join(owners)} upstream config sets '{key}: {entry['written']!r}' but nothing reads it; {tail}",
                {"a": ea, "b": eb, "closest": nearest},
            )
        )
    return findings


@measurement("config")
def measure(m: Materialized) -> dict[str, Any]:
    """Every resolved SFTConfig field, and what each unread upstream key was probably meant to be."""
    return {
        "fields": config_values(m.sft_config),
        "lint": {k: lint_entry(m, k, v) for k, v in unread_keys(m).items()},
    }


@PROBES.register("config")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Field differences owned by no other probe, and unread upstream keys."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    findings, differing = field_findings(a, b, va["fields"], vb["fields"])
    lint_a, lint_b = va["lint"], vb["lint"]
    findings += lint_findings(a, b, lint_a, lint_b)
    values = {
        side: {
            "unread_keys": sorted(lint),
            "lint": lint,
            "set_by_recipe": {name: field_source(m, name) for name in sorted(m.recipe.training)},
        }
        for side, m, lint in (("a", a, lint_a), ("b", b, lint_b))
    }
    values["differing_fields"] = differing
    return ProbeResult(findings=findings, values=plain(values))
