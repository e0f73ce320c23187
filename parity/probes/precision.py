"""Precision probe: mixed-precision flags, load dtype, attention kernel, gradient checkpointing and DeepSpeed as
effective for the world size, with library defaults read from the installed transformers."""

from __future__ import annotations

import importlib.util
import inspect
import re
from functools import cache
from typing import Any

from parity.axes import field_axis, field_severity, probe_fields
from parity.findings import Finding
from parity.materialize import Materialized
from parity.models import default_attn_implementation
from parity.plain import config_values, plain
from parity.plan import table_world_sizes
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.probes.env import installed_instead

make_finding = FindingMaker("precision")

PRECISION_FIELDS = probe_fields("precision")


@cache
def default_load_dtype() -> str:
    """The dtype from_pretrained uses when none is given, as its docstring in the installed transformers states (a
    capture that ran another transformers is not read from it: see `load_dtype`)."""
    from transformers import PreTrainedModel

    doc = inspect.getdoc(PreTrainedModel.from_pretrained) or ""
    match = re.search(r"dtype \(.*?defaults to `\"?([\w.]+)\"?`\)", doc)
    return match.group(1) if match else "library default"


def flash_attn_importable() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def default_not_read(m: Materialized) -> dict[str, Any] | None:
    """For a capture that ran another transformers: a library default left unread (the installed one's would be
    another version's answer); None where the installed transformers is the one to read."""
    elsewhere = installed_instead(m, "transformers")
    if not elsewhere:
        return None
    return {"requested": None, "effective": None, "label": f"library default, not read ({elsewhere})"}


def load_dtype(m: Materialized) -> dict[str, Any]:
    """Requested dtype and the dtype the weights load in ('auto' resolves to the checkpoint's config dtype)."""
    requested = m.recipe.model.torch_dtype
    if requested is None and (unread := default_not_read(m)):
        return unread
    asked = requested if requested is not None else default_load_dtype()
    if asked == "auto":
        stored = m.model_facts.checkpoint_dtype
        return {
            "requested": requested,
            "effective": stored,
            "label": f"auto (checkpoint dtype: {stored or 'unknown'})",
        }
    name = str(asked).removeprefix("torch.")
    return {"requested": requested, "effective": name, "label": name}


def attention(m: Materialized) -> dict[str, Any]:
    """Requested attention kernel and the one transformers uses (its default for the architecture when none is
    asked for; None where the architecture is unknown)."""
    requested = m.recipe.model.attn_implementation
    if requested is None and (unread := default_not_read(m)):
        return unread
    effective = requested if requested is not None else default_kernel(m)
    label = effective if requested is not None else f"{effective or 'unknown'} (library default)"
    return {"requested": requested, "effective": effective, "label": label}


@measurement("precision")
def measure(m: Materialized, world_sizes: tuple[int, ...]) -> dict[str, Any]:
    """Precision flags, load dtype, attention kernel and DeepSpeed per world size."""
    flags = config_values(m.sft_config)
    by_world = []
    for n in table_world_sizes(m.world_size, world_sizes):
        plan = m.launch_plan(n)
        by_world.append(
            {
                "world_size": n,
                "deepspeed_config": plan.deepspeed_config,
                "deepspeed_stage": plan.deepspeed_stage,
            }
        )
    return {
        "flags": {name: flags[name] for name in PRECISION_FIELDS},
        "torch_dtype": load_dtype(m),
        "attn_implementation": attention(m),
        "deepspeed_config": m.launch.deepspeed_config,
        "deepspeed_stage": m.launch.deepspeed_stage,
        "deepspeed_declared": m.recipe.launch.deepspeed_config,
        "deepspeed_by_world_size": by_world,
    }


def _is_flash(kernel: str | None) -> bool:
    return bool(kernel) and "flash" in kernel


def findings_for(a: Materialized, b: Materialized, va: dict, vb: dict) -> list[Finding]:
    names = a.recipe.name, b.recipe.name
    findings = []
    for name in PRECISION_FIELDS:
        xa, xb = va["flags"][name], vb["flags"][name]
        if xa != xb:
            findings.append(
                make_finding(
                    f"training.{name}",
                    field_severity(name),
                    xa,
                    xb,
                    f"{name}: {names[0]} {xa!r} vs {names[1]} {xb!r}",
                    align=field_axis(name),
                )
            )
    da, db = va["torch_dtype"], vb["torch_dtype"]
    if da["requested"] != db["requested"]:
        same = da["effective"] is not None and da["effective"] == db["effective"]
        findings.append(
            make_finding(
                "model.torch_dtype",
                "info" if same else "medium",
                da["requested"],
                db["requested"],
                f"load dtype: {names[0]} {da['label']} vs {names[1]} {db['label']}"
                + (" (both load the same dtype)" if same else ""),
                {"a": da, "b": db, "default_load_dtype": default_load_dtype()},
            )
        )
    ka, kb = va["attn_implementation"], vb["attn_implementation"]
    if ka["requested"] != kb["requested"]:
        flash_split = _is_flash(ka["effective"]) != _is_flash(kb["effective"])
        same = ka["effective"] == kb["effective"]
        findings.append(
            make_finding(
                "model.attn_implementation",
                "info" if same else "medium" if flash_split else "low",
                ka["requested"],
                kb["requested"],
                f"attention kernel: {names[0]} {ka['label']} vs {names[1]} {kb['label']}"
                + (" (the same kernel)" if same else ""),
                {"a": ka, "b": kb, "flash_attn_importable_here": flash_attn_importable()},
            )
        )
    if (va["deepspeed_config"], va["deepspeed_stage"]) != (vb["deepspeed_config"], vb["deepspeed_stage"]):
        findings.append(
            make_finding(
                "launch.deepspeed_config",
                "medium",
                va["deepspeed_config"],
                vb["deepspeed_config"],
                f"DeepSpeed at world size {a.world_size}: {names[0]} {_ds(va)} vs {names[1]} {_ds(vb)}",
                {
                    "stage": [va["deepspeed_stage"], vb["deepspeed_stage"]],
                    "min_gpus": [a.recipe.launch.deepspeed_min_gpus, b.recipe.launch.deepspeed_min_gpus],
                },
            )
        )
    return findings


def _ds(v: dict[str, Any]) -> str:
    return f"{v['deepspeed_config']} (ZeRO stage {v['deepspeed_stage']})" if v["deepspeed_config"] else "off"


def default_kernel(m: Materialized) -> str | None:
    """The attention kernel transformers picks for the recipe's architecture when none is asked for (None:
    the architecture is unknown)."""
    return default_attn_implementation(m.model_facts.key) if m.model_facts.known else None


def _library_default(a: Materialized, b: Materialized) -> Any:
    """transformers' default attention kernel: one value when both architectures share it, else per side."""
    ka, kb = default_kernel(a), default_kernel(b)
    return ka if ka == kb else {"a": ka, "b": kb}


@PROBES.register("precision")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Precision and memory settings of both recipes and where they differ."""
    return compare(a, b, measure(a, ctx.world_sizes), measure(b, ctx.world_sizes), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    values = {
        "a": va,
        "b": vb,
        "library": {
            "default_load_dtype": default_load_dtype(),
            "default_attn_implementation": _library_default(a, b),
            "flash_attn_importable": flash_attn_importable(),
        },
    }
    return ProbeResult(findings=findings_for(a, b, va, vb), values=plain(values))
