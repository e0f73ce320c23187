"""PEFT probe: LoRA or full fine-tuning, the LoRA fields, and the trainable parameter count resolved by peft's
own wrapping of the Llama-3.2-1B architecture on the meta device (real target resolution, no weights)."""

from __future__ import annotations

import json
import warnings
from functools import cache
from typing import Any

from parity.architectures import LLAMA_3_2_1B, meta_model
from parity.findings import Finding
from parity.materialize import Materialized
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
"""LoraConfig fields that change which parameters train or how many: a difference is high."""
SCALING_FIELDS = {"lora_alpha", "lora_dropout", "alpha_pattern", "use_rslora", "init_lora_weights"}
"""Fields that change the update's scale or regularisation: medium. Every other field: low."""
IGNORED_FIELDS = {"peft_version"}


_base_params: list[int] = []
"""Parameter count of the unwrapped architecture, once measured (saves a second meta-device build)."""


@cache
def count_parameters(lora_json: str | None) -> dict[str, Any]:
    """Trainable and total parameters of Llama-3.2-1B, full or wrapped with the LoraConfig given as JSON.

    Parameters are counted once each (model.parameters() deduplicates the tied embedding / lm_head weight)."""
    if lora_json is None and _base_params:
        total = _base_params[0]  # counted on an earlier build of the same architecture, before wrapping
        return {
            "trainable_params": total,
            "total_params": total,
            "trainable_fraction": 1.0,
            "targeted_modules": 0,
            "target_names": [],
        }
    model = meta_model()
    if not _base_params:
        _base_params.append(sum(p.numel() for p in model.parameters()))
    targets: list[str] = []
    if lora_json is not None:
        import torch
        from peft import LoraConfig, get_peft_model

        # the adapter weights are created on the meta device too (peft would allocate and initialise them in
        # CPU memory, then move them to the base layer's meta device): same modules and shapes, no work
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            model = get_peft_model(model, LoraConfig(**json.loads(lora_json)))
        targets = sorted(model.targeted_module_names)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_fraction": round(trainable / total, 6),
        "targeted_modules": len(targets),
        "target_names": sorted({name.rsplit(".", 1)[-1] for name in targets}),
    }


def _lora_json(lora: Any) -> str | None:
    """A hashable form of a LoraConfig: the fields set to non-default values, as the recipe gave them."""
    if lora is None:
        return None
    from peft import LoraConfig

    default = config_values(LoraConfig())
    fields = {k: v for k, v in config_values(lora).items() if k not in IGNORED_FIELDS and v != default.get(k)}
    return json.dumps(fields, sort_keys=True)


@measurement("peft")
def measure(m: Materialized) -> dict[str, Any]:
    """PEFT method, LoRA settings and trainable parameter counts on the real architecture."""
    lora = m.lora_config
    fields = (
        {k: v for k, v in config_values(lora).items() if k not in IGNORED_FIELDS}
        if lora is not None
        else None
    )
    return {
        "method": "lora" if lora is not None else "full",
        "architecture": LLAMA_3_2_1B,
        "lora": fields,
        **count_parameters(_lora_json(lora)),
    }


def _describe(name: str, v: dict[str, Any]) -> str:
    count = (
        f"{v['trainable_params']:,} trainable params ({v['trainable_fraction']:.2%} of {v['total_params']:,})"
    )
    if v["method"] == "full":
        return f"{name} fine-tunes all weights, {count}"
    lora = v["lora"]
    return f"{name} trains LoRA r={lora['r']} on {lora['target_modules']}, {count}"


def lora_findings(a: Materialized, b: Materialized, va: dict, vb: dict) -> list[Finding]:
    findings = []
    counts = {
        "trainable_params": [va["trainable_params"], vb["trainable_params"]],
        "target_names": [va["target_names"], vb["target_names"]],
    }
    for name in sorted(set(va["lora"]) | set(vb["lora"])):
        xa, xb = va["lora"].get(name), vb["lora"].get(name)
        if xa == xb:
            continue
        if (
            name == "target_modules"
            and va["target_names"] == vb["target_names"]
            and va["targeted_modules"] == vb["targeted_modules"]
        ):
            severity, note = "info", "both resolve to the same modules"
        elif name in TRAINED_SET_FIELDS:
            severity, note = "high", "changes the trained parameters"
        else:
            severity, note = (
                ("medium", "changes the update's scale") if name in SCALING_FIELDS else ("low", "")
            )
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
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
