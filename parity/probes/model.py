"""Probe `model`: the base model each recipe trains (id, revision, architecture, size, vocabulary), read from the
model's own config.json by parity.models; a fact one side lacks is no difference."""

from __future__ import annotations

from typing import Any

from parity.materialize import Materialized
from parity.models import DEFAULT_REVISION, same_id
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.textdiff import pair_names

AXIS = "model"
make_finding = FindingMaker(AXIS)
IDENTITY = ("name_or_path", "revision")
"""What the recipe names: a different id or revision is a different checkpoint."""
FACTS = ("architecture", "parameters", "vocab_size")
"""What config.json says: compared only where both sides know it."""


@measurement(AXIS)
def measure(m: Materialized) -> dict[str, Any]:
    """The base model's id and revision as the recipe names them, and its facts (None: unknown)."""
    facts = m.model_facts
    return plain(
        {
            "name_or_path": m.recipe.model.name_or_path,
            "revision": m.recipe.model.revision,
            **{k: v for k, v in facts.summary().items() if k not in ("model_id", "revision")},
        }
    )


def differing(va: dict[str, Any], vb: dict[str, Any]) -> list[str]:
    """Identity fields that differ, then facts known on both sides that differ."""
    names = [] if same_id(va["name_or_path"], vb["name_or_path"]) else ["name_or_path"]
    if (va["revision"] or DEFAULT_REVISION) != (vb["revision"] or DEFAULT_REVISION):
        names.append("revision")
    names += [k for k in FACTS if va[k] is not None and vb[k] is not None and va[k] != vb[k]]
    return names


def describe(v: dict[str, Any]) -> str:
    """'Qwen3ForCausalLM, 596,049,920 parameters, vocabulary 151,936' (unknown facts said so)."""
    if v["architecture"] is None:
        return "config.json unknown"
    parts = [v["architecture"]]
    if v["parameters"] is not None:
        parts.append(f"{v['parameters']:,} parameters")
    if v["vocab_size"] is not None:
        parts.append(f"vocabulary {v['vocab_size']:,}")
    return ", ".join(parts)


def label(v: dict[str, Any]) -> str:
    return v["name_or_path"] + (f"@{v['revision']}" if v["revision"] else "")


@PROBES.register(AXIS)
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Whether both recipes start from the same base model."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """One finding when the base models differ (id, revision, architecture, size or vocabulary)."""
    names = pair_names(a.recipe.name, b.recipe.name)
    fields = differing(va, vb)
    findings = []
    if fields:
        same_shape = not any(k in fields for k in FACTS) and va["architecture"] is not None
        findings.append(
            make_finding(
                "model.base",
                "high",
                label(va),
                label(vb),
                f"the base models differ ({', '.join(fields)}): {names[0]} trains {label(va)} ({describe(va)}), "
                f"{names[1]} trains {label(vb)} ({describe(vb)})"
                + (
                    "; the architectures match, the checkpoints' weights may still differ"
                    if same_shape
                    else ""
                ),
                {
                    "differs": fields,
                    **{
                        side: {k: v[k] for k in (*IDENTITY, *FACTS, "source")}
                        for side, v in (("a", va), ("b", vb))
                    },
                },
            )
        )
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
