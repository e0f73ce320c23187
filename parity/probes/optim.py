"""Optimizer probe: the optimizer class and keyword arguments the HF Trainer builds from the recipe's SFTConfig
(`Trainer.get_optimizer_cls_and_kwargs`), which parameters weight decay reaches (`Trainer.get_decay_parameter_names`
on the recipe's base architecture on the meta device, LoRA-wrapped when the recipe uses LoRA), gradient
clipping, NEFTune, label smoothing and dropout (the model config's own dropout fields)."""

from __future__ import annotations

from functools import cache
from typing import Any

from parity.axes import field_axis, field_severity, probe_fields
from parity.findings import Finding
from parity.materialize import Materialized
from parity.models import lora_key, peft_meta_model
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement

make_finding = FindingMaker("optim")


def optimizer_build(sft_config: Any) -> dict[str, Any]:
    """Optimizer class and constructor kwargs as the Trainer resolves them (an optimizer whose package is not
    installed here, e.g. bitsandbytes for 8-bit, is reported by name with the import error)."""
    from transformers import Trainer

    try:
        cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(sft_config)
    except (ImportError, ValueError, RuntimeError) as err:
        return {"class": None, "kwargs": {}, "unavailable": str(err).splitlines()[0]}
    kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "kwargs": plain(kwargs), "unavailable": None}


@cache
def decay_split(key: str, lora_json: str | None) -> dict[str, Any] | None:
    """Trainable parameters of the architecture of config `key` (LoRA-wrapped when a LoraConfig is given as JSON)
    split by whether the Trainer's `get_decay_parameter_names` applies weight decay to them (None: unknown)."""
    from transformers import Trainer

    model = peft_meta_model(key, lora_json).model
    if model is None:
        return None
    decay = set(Trainer.get_decay_parameter_names(None, model))
    trainable = [(name, p.numel()) for name, p in model.named_parameters() if p.requires_grad]
    decayed = [(name, n) for name, n in trainable if name in decay]
    exempt = sorted({_kind(name) for name, _ in trainable if name not in decay})
    return {
        "trainable_tensors": len(trainable),
        "decayed_tensors": len(decayed),
        "decayed_params": sum(n for _, n in decayed),
        "exempt_params": sum(n for name, n in trainable if name not in decay),
        "exempt_kinds": exempt,
    }


def _kind(name: str) -> str:
    """'base_model.model.model.layers.3.input_layernorm.weight' -> 'input_layernorm.weight'."""
    return ".".join(name.split(".")[-2:])


@measurement("optim")
def measure(m: Materialized) -> dict[str, Any]:
    """Optimizer, its arguments, where weight decay applies, clipping, NEFTune, label smoothing and dropout."""
    config = m.sft_config
    weight_decay = float(config.weight_decay)
    facts = m.model_facts
    split = decay_split(facts.key, lora_key(m.lora_config)) if weight_decay > 0 else None
    lora = m.lora_config
    return {
        "fields": {name: plain(getattr(config, name)) for name in probe_fields("optim")},
        "optimizer": optimizer_build(config),
        "weight_decay": weight_decay,
        "decay": split,
        "max_grad_norm": plain(config.max_grad_norm),
        "neftune_noise_alpha": plain(config.neftune_noise_alpha),
        "label_smoothing_factor": plain(config.label_smoothing_factor),
        "dropout": {
            "attention_dropout": plain(facts.value("attention_dropout")) if facts.known else None,
            **plain(facts.dropout or {}),
            "lora_dropout": plain(lora.lora_dropout) if lora is not None else None,
        },
    }


def _field_findings(a: Materialized, b: Materialized, va: dict, vb: dict) -> list[Finding]:
    findings = []
    for name in va["fields"]:
        xa, xb = va["fields"][name], vb["fields"][name]
        if xa == xb:
            continue
        evidence: dict[str, Any] = {}
        if name in ("optim", "optim_args", "adam_beta1", "adam_beta2", "adam_epsilon"):
            evidence["optimizer"] = {"a": va["optimizer"], "b": vb["optimizer"]}
        if name == "weight_decay":
            evidence["decay"] = {"a": va["decay"], "b": vb["decay"]}
        findings.append(
            make_finding(
                f"training.{name}",
                field_severity(name),
                xa,
                xb,
                f"{name}: {a.recipe.name} {xa!r} vs {b.recipe.name} {xb!r}" + _effect(name, va, vb),
                evidence,
                align=field_axis(name),
            )
        )
    return findings


def _effect(name: str, va: dict, vb: dict) -> str:
    if name == "optim":
        return f" (Trainer builds {_optimizer_text(va['optimizer'])} vs {_optimizer_text(vb['optimizer'])})"
    if name == "weight_decay":
        parts = [
            f"{v['decay']['decayed_params']:,} params decayed" if v["decay"] else "no decay" for v in (va, vb)
        ]
        return f" ({parts[0]} vs {parts[1]})"
    return ""


def _optimizer_text(build: dict[str, Any]) -> str:
    if build["class"] is None:
        return f"nothing here ({build['unavailable']})"
    flags = [name for name in ("fused", "foreach") if build["kwargs"].get(name)]
    return build["class"] + (f" ({', '.join(flags)})" if flags else "")


def _decay_set_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    """Both recipes decay, but not the same parameters (e.g. LoRA adapters only vs every non-norm weight)."""
    da, db = va["decay"], vb["decay"]
    if da is None or db is None or da["decayed_params"] == db["decayed_params"]:
        return None
    return make_finding(
        "optim.decayed_parameters",
        "medium",
        da["decayed_params"],
        db["decayed_params"],
        f"weight decay reaches {da['decayed_params']:,} parameters in {a.recipe.name} vs "
        f"{db['decayed_params']:,} in {b.recipe.name} (norms and biases exempt: "
        f"{da['exempt_params']:,} vs {db['exempt_params']:,})",
        {"a": da, "b": db},
        align="peft",
    )


def _model_dropout(dropout: dict[str, Any]) -> dict[str, Any]:
    """The model config's dropout fields that are known (None: the config is unknown)."""
    return {k: v for k, v in dropout.items() if k != "lora_dropout" and v is not None}


def _dropout_text(dropout: dict[str, Any]) -> str:
    model = _model_dropout(dropout)
    parts = [f"{k.removesuffix('_dropout')} {v}" for k, v in model.items()] or ["model unknown"]
    lora = dropout["lora_dropout"]
    return ", ".join([*parts, f"LoRA {lora if lora is not None else 'none'}"])


def _dropout_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    """Dropout on the trained path differs where no other probe reports it: the model config's dropout fields
    (where both configs are known), or LoRA dropout when only one recipe uses LoRA (two LoRA recipes: the peft
    probe compares it)."""
    da, db = va["dropout"], vb["dropout"]
    ma, mb = _model_dropout(da), _model_dropout(db)
    model_differs = bool(ma) and bool(mb) and ma != mb
    both_lora = da["lora_dropout"] is not None and db["lora_dropout"] is not None
    lora_differs = not both_lora and da["lora_dropout"] != db["lora_dropout"]
    if not (model_differs or lora_differs):
        return None
    return make_finding(
        "optim.dropout",
        "low",
        da,
        db,
        f"dropout while training: {a.recipe.name} {_dropout_text(da)}; {b.recipe.name} {_dropout_text(db)}",
        align="peft" if lora_differs else "model",
    )


@PROBES.register("optim")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Optimizer field differences with what the Trainer builds from them, and the decayed parameter sets."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    findings = _field_findings(a, b, va, vb)
    for extra in (_decay_set_finding(a, b, va, vb), _dropout_finding(a, b, va, vb)):
        if extra is not None:
            findings.append(extra)
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
