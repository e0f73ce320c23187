"""PEFT probe: LoRA or full fine-tuning, the LoRA fields, and the trainable parameter count resolved by peft's
own wrapping of the recipe's base architecture on the meta device (parity.models: real target resolution)."""

from __future__ import annotations

from functools import cache
from typing import Any

from parity.findings import Finding
from parity.materialize import Materialized
from parity.models import lora_key, peft_meta_model
from parity.plain import config_values, plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement

make_finding = FindingMaker("peft")

TRAINED_SET_FIELDS = {
    "r",
    "target_modules",
    "exclude_modules",
    "modules_to_save",
    "layers_to_transform",
    "bias",
    "use_dora",
    "target_parameters",
    "rank_pattern",
    "trainable_token_indices",
}
"""LoraConfig fields that change which parameters train or how many: high where the trained counts differ."""
SCALING_FIELDS = {"lora_alpha", "lora_dropout", "alpha_pattern", "use_rslora", "init_lora_weights"}
"""Fields that change the update's scale or regularisation: medium. Every other field: low."""
IGNORED_FIELDS = {"peft_version"}
EMPTY_MEANS_NONE = {
    "target_parameters",
    "exclude_modules",
    "modules_to_save",
    "layers_to_transform",
    "rank_pattern",
    "alpha_pattern",
    "trainable_token_indices",
}
"""Fields where peft treats None and an empty list / mapping alike (nothing set)."""
NONE_MEANS_FALSE = {"fan_in_fan_out"}
"""Switches peft reads by truth value (peft.utils.other.transpose: `if not fan_in_fan_out`): None is off."""
UNKNOWN_COUNTS = {
    "trainable_params": None,
    "total_params": None,
    "trainable_fraction": None,
    "targeted_modules": None,
    "target_names": None,
}


@cache
def count_parameters(key: str, lora_json: str | None) -> dict[str, Any]:
    """Trainable and total parameters of the architecture of config `key`, full or wrapped with the LoraConfig
    given as JSON; every count None where the architecture is unknown, with peft's error where it refuses the
    LoraConfig (e.g. target modules the architecture lacks).

    Parameters are counted once each (model.parameters() deduplicates a tied embedding / lm_head weight)."""
    build = peft_meta_model(key, lora_json)
    if build.model is None:
        return {**UNKNOWN_COUNTS, **({"error": build.error} if build.error else {})}
    model = build.model
    targets = sorted(model.targeted_module_names) if lora_json is not None else []
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_fraction": round(trainable / total, 6),
        "targeted_modules": len(targets),
        "target_names": sorted({name.rsplit(".", 1)[-1] for name in targets}),
    }


@measurement("peft")
def measure(m: Materialized) -> dict[str, Any]:
    """PEFT method, LoRA settings and trainable parameter counts on the recipe's base architecture."""
    lora = m.lora_config
    fields = (
        {k: v for k, v in config_values(lora).items() if k not in IGNORED_FIELDS}
        if lora is not None
        else None
    )
    return {
        "method": "lora" if lora is not None else "full",
        "architecture": m.model_facts.model_id,
        "lora": fields,
        **count_parameters(m.model_facts.key, lora_key(lora)),
    }


def _describe(name: str, v: dict[str, Any]) -> str:
    if v["trainable_params"] is None:
        count = f"trainable params unknown ({v.get('error') or 'the base model config is unknown'})"
    else:
        count = f"{v['trainable_params']:,} trainable params ({v['trainable_fraction']:.2%} of {v['total_params']:,})"
    if v["method"] == "full":
        return f"{name} fine-tunes all weights, {count}"
    lora = v["lora"]
    return f"{name} trains LoRA r={lora['r']} on {lora['target_modules']}, {count}"


def same_setting(name: str, xa: Any, xb: Any) -> bool:
    """Two values of a LoraConfig field that peft treats alike (None and an empty list for target_parameters, None
    and False for fan_in_fan_out)."""
    if name in EMPTY_MEANS_NONE and not xa and not xb:
        return True
    if name in NONE_MEANS_FALSE and xa in (None, False) and xb in (None, False):
        return True
    return xa == xb


def same_trained_parameters(va: dict, vb: dict) -> bool | None:
    """Whether both recipes train the same parameters by peft's counts (None: a count is unknown)."""
    if va["trainable_params"] is None or vb["trainable_params"] is None:
        return None
    keys = ("trainable_params", "targeted_modules", "target_names")
    return all(va[k] == vb[k] for k in keys)


def _severity(name: str, same_modules: bool, same_parameters: bool | None) -> tuple[str, str]:
    if name == "target_modules" and same_modules:
        return "info", "both resolve to the same modules"
    if name in TRAINED_SET_FIELDS:
        if same_parameters:
            return "low", "the same parameters train"
        return "high", "changes the trained parameters"
    return ("medium", "changes the update's scale") if name in SCALING_FIELDS else ("low", "")


def lora_findings(a: Materialized, b: Materialized, va: dict, vb: dict) -> list[Finding]:
    findings = []
    counts = {
        "trainable_params": [va["trainable_params"], vb["trainable_params"]],
        "target_names": [va["target_names"], vb["target_names"]],
    }
    same_parameters = same_trained_parameters(va, vb)
    same_modules = bool(same_parameters is not None and va["target_names"] == vb["target_names"])
    same_modules = same_modules and va["targeted_modules"] == vb["targeted_modules"]
    for name in sorted(set(va["lora"]) | set(vb["lora"])):
        xa, xb = va["lora"].get(name), vb["lora"].get(name)
        if same_setting(name, xa, xb):
            continue
        severity, note = _severity(name, same_modules, same_parameters)
        findings.append(
            make_finding(
                f"peft.lora.{name}",
                severity,
                xa,
                xb,
                f"LoRA {name}: {a.recipe.name} {xa!r} vs {b.recipe.name} {xb!r}"
                + (f" ({note})" if note else ""),
                counts,
            )
        )
    return findings


def _refused_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    """peft refuses one recipe's LoraConfig on its base model (e.g. target modules the architecture lacks):
    that recipe's training stops at get_peft_model."""
    ea, eb = va.get("error"), vb.get("error")
    if ea == eb:
        return None
    parts = [
        f"{m.recipe.name} ({m.model_facts.architecture or m.model_facts.model_id}): {error or 'accepted'}"
        for m, error in ((a, ea), (b, eb))
    ]
    return make_finding(
        "peft.refused",
        "high",
        ea,
        eb,
        "peft.get_peft_model refuses the LoraConfig on the base model, so training stops there: "
        + "; ".join(parts),
        {
            "target_modules": [
                (va["lora"] or {}).get("target_modules"),
                (vb["lora"] or {}).get("target_modules"),
            ]
        },
    )


@PROBES.register("peft")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Method and LoRA differences, with trainable parameter counts on the real architecture."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    findings = []
    if va["method"] != vb["method"]:
        findings.append(
            make_finding(
                "peft.method",
                "high",
                a.recipe.peft.method,
                b.recipe.peft.method,
                f"{_describe(a.recipe.name, va)}; {_describe(b.recipe.name, vb)}",
                {
                    "trainable_params": [va["trainable_params"], vb["trainable_params"]],
                    "trainable_fraction": [va["trainable_fraction"], vb["trainable_fraction"]],
                    "total_params": [va["total_params"], vb["total_params"]],
                },
            )
        )
    elif va["method"] == "lora":
        findings += lora_findings(a, b, va, vb)
    refused = _refused_finding(a, b, va, vb)
    if refused is not None:
        findings.append(refused)
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
