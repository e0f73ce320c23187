"""Special-token probe: tokens in TRL's prepared input_ids that the base checkpoint never trained (added tokens
other than the ones pre-training used, vendor_refs/models/trained_special_tokens.yaml; ids past the model's
vocab_size have no row at all), whether labels ask the model to predict them, and whether their embedding /
LM-head rows train (full fine-tuning, or peft's own wrapping of the meta-device architecture under LoRA)."""

from __future__ import annotations

import json
import warnings
from functools import cache
from typing import Any

import yaml

from parity.architectures import llama_3_2_1b_config, meta_model
from parity.findings import Finding
from parity.materialize import Materialized
from parity.plain import config_values, plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.vendor import VENDOR_REFS_DIR

make_finding = FindingMaker("special_tokens")
FACTS = VENDOR_REFS_DIR / "models" / "trained_special_tokens.yaml"
EMBEDDING_MODULES = ("embed_tokens", "lm_head")


@cache
def trained_specials(model: str) -> frozenset[str] | None:
    """Added tokens the checkpoint's pre-training used (None: the checkpoint is not in the fact table)."""
    table = yaml.safe_load(FACTS.read_text(encoding="utf-8"))
    entry = table.get(model.lower())
    return frozenset(entry["trained"]) if entry else None


def untrained_ids(tokenizer: Any, model: str) -> dict[int, str]:
    """Added-token ids of the tokenizer whose rows the base model never trained, with their text."""
    trained = trained_specials(model) or frozenset()
    return {i: str(t) for i, t in tokenizer.added_tokens_decoder.items() if str(t) not in trained}


@cache
def trainable_rows(lora_json: str | None) -> dict[str, Any]:
    """Which embedding rows of Llama-3.2-1B train: all of them under full fine-tuning, under LoRA what peft's
    wrapping makes trainable (modules_to_save / LoRA on embed_tokens or lm_head: all rows; trainable_token_indices:
    those ids)."""
    if lora_json is None:
        return {"all_rows": True, "token_indices": [], "trainable_modules": list(EMBEDDING_MODULES)}
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(meta_model(), LoraConfig(**json.loads(lora_json)))
    embedding_params = [
        (module, name)
        for name, p in model.named_parameters()
        if p.requires_grad
        for module in EMBEDDING_MODULES
        if f".{module}." in name
    ]
    indices = {
        i
        for module in model.modules()
        if isinstance(getattr(module, "token_indices", None), dict)
        for ids in module.token_indices.values()
        for i in ids
    }
    full_rows = any(".token_adapter." not in name for _, name in embedding_params)
    modules = sorted({module for module, _ in embedding_params})
    return {"all_rows": full_rows, "token_indices": sorted(indices), "trainable_modules": modules}


def _lora_json(lora: Any) -> str | None:
    if lora is None:
        return None
    from peft import LoraConfig

    default = config_values(LoraConfig())
    fields = {k: v for k, v in config_values(lora).items() if k != "peft_version" and v != default.get(k)}
    return json.dumps(fields, sort_keys=True)


def ids_at_least(rows: list[list[int]], wanted: dict[int, str] | set[int]) -> set[int]:
    """Which of `wanted` occur in the rows; only rows reaching the smallest wanted id are scanned (added tokens
    sit at the top of the vocabulary, so most rows are skipped by their max)."""
    if not wanted:
        return set()
    floor = min(wanted)
    found: set[int] = set()
    for row in rows:
        if row and max(row) >= floor:
            found.update(i for i in row if i in wanted)
    return found


@measurement("special_tokens")
def measure(m: Materialized) -> dict[str, Any]:
    """Untrained tokens in the prepared sample, in its labels, and which of them stay frozen in training."""
    model = m.recipe.model.name_or_path
    untrained = untrained_ids(m.tokenizer, model)
    vocab_size = llama_3_2_1b_config().vocab_size
    present = ids_at_least(m.prepared.input_ids, untrained)
    in_labels = ids_at_least(m.prepared.labels, present) if present else set()
    rows = trainable_rows(_lora_json(m.lora_config)) if present else None
    frozen = sorted(
        i for i in present if rows is not None and not rows["all_rows"] and i not in rows["token_indices"]
    )
    name = lambda ids: [f"{untrained[i]} ({i})" for i in sorted(ids)]  # noqa: E731
    return {
        "checkpoint_known": trained_specials(model) is not None,
        "untrained_in_tokenizer": len(untrained),
        "model_vocab_size": vocab_size,
        "emitted": name(present),
        "emitted_ids": sorted(present),
        "in_labels": name(in_labels),
        "past_vocab": name(i for i in present if i >= vocab_size),
        "trainable_rows": rows,
        "frozen": name(frozen),
        "pad_token": m.tokenizer.pad_token,
        "pad_untrained": m.tokenizer.pad_token_id in untrained,
    }


def _emitted_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    if va["emitted"] == vb["emitted"]:
        return None
    predicted = bool(va["in_labels"] or vb["in_labels"])
    return make_finding(
        "special_tokens.untrained_emitted",
        "high" if predicted else "medium",
        va["emitted"],
        vb["emitted"],
        f"tokens the base model never trained appear in the prepared rows: {a.recipe.name} {va['emitted'] or 'none'}, "
        f"{b.recipe.name} {vb['emitted'] or 'none'}"
        + (
            f"; labels ask the model to predict {va['in_labels'] or 'none'} vs {vb['in_labels'] or 'none'}"
            if predicted
            else ""
        ),
        {
            "in_labels": {"a": va["in_labels"], "b": vb["in_labels"]},
            "past_vocab": {"a": va["past_vocab"], "b": vb["past_vocab"]},
            "model_vocab_size": va["model_vocab_size"],
        },
        align="template",
    )


def _frozen_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    if va["frozen"] == vb["frozen"]:
        return None
    return make_finding(
        "special_tokens.frozen_untrained",
        "high",
        va["frozen"],
        vb["frozen"],
        f"untrained tokens whose embedding / LM-head rows stay frozen in training: {a.recipe.name} "
        f"{va['frozen'] or 'none'}, {b.recipe.name} {vb['frozen'] or 'none'} (LoRA trains them only through "
        "modules_to_save or trainable_token_indices)",
        {"trainable_rows": {"a": va["trainable_rows"], "b": vb["trainable_rows"]}},
        align="peft" if va["emitted"] == vb["emitted"] else "template",
    )


@PROBES.register("special_tokens")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Untrained tokens each recipe's data carries, and whether its training updates their rows."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    findings = [f for f in (_emitted_finding(a, b, va, vb), _frozen_finding(a, b, va, vb)) if f is not None]
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
