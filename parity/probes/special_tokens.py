"""Special-token probe: tokens in TRL's prepared input_ids that the base checkpoint never trained (added tokens
other than the ones pre-training used, known only where the model table records them: vendor_refs/models/; ids
at or past the model config's vocab_size have no row at all), whether labels ask the model to predict them, and
whether their embedding / LM-head rows train (full fine-tuning, or peft's own wrapping under LoRA)."""

from __future__ import annotations

from functools import cache
from typing import Any

from parity.findings import Finding
from parity.materialize import Materialized
from parity.models import ModelFacts, lora_key, peft_meta_model
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement

make_finding = FindingMaker("special_tokens")


def untrained_ids(tokenizer: Any, facts: ModelFacts) -> dict[int, str]:
    """Added-token ids of the tokenizer whose rows the base model never trained, with their text (none where the
    checkpoint's pre-training tokens are unknown: no claim without the fact)."""
    trained = facts.trained_special_tokens
    if trained is None:
        return {}
    return {i: str(t) for i, t in tokenizer.added_tokens_decoder.items() if str(t) not in trained}


@cache
def embedding_modules(key: str) -> tuple[str, ...]:
    """Names of the input-embedding and LM-head modules of the architecture of config `key` (e.g. embed_tokens,
    lm_head; empty where the architecture is unknown)."""
    model = peft_meta_model(key, None).model
    if model is None:
        return ()
    wanted = [model.get_input_embeddings(), model.get_output_embeddings()]
    names = [next((n for n, mod in model.named_modules() if mod is w), "") for w in wanted if w is not None]
    return tuple(dict.fromkeys(n.rsplit(".", 1)[-1] for n in names if n))


@cache
def trainable_rows(key: str, lora_json: str | None) -> dict[str, Any] | None:
    """Which embedding rows of the architecture train: all of them under full fine-tuning, under LoRA what peft's
    wrapping makes trainable (modules_to_save / LoRA on the embeddings or LM head: all rows;
    trainable_token_indices: those ids). None where the architecture is unknown or peft refuses the LoraConfig."""
    modules = embedding_modules(key)
    if lora_json is None:
        return {"all_rows": True, "token_indices": [], "trainable_modules": list(modules)}
    model = peft_meta_model(key, lora_json).model
    if model is None:
        return None
    embedding_params = [
        (module, name)
        for name, p in model.named_parameters()
        if p.requires_grad
        for module in modules
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
    trained_modules = sorted({module for module, _ in embedding_params})
    return {"all_rows": full_rows, "token_indices": sorted(indices), "trainable_modules": trained_modules}


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


def ids_past(rows: list[list[int]], vocab_size: int | None) -> set[int]:
    """Ids at or past the model's vocab_size in the rows (no embedding row exists for them)."""
    if vocab_size is None:
        return set()
    return {i for row in rows if row and max(row) >= vocab_size for i in row if i >= vocab_size}


@measurement("special_tokens")
def measure(m: Materialized) -> dict[str, Any]:
    """Untrained tokens in the prepared sample, in its labels, and which of them stay frozen in training."""
    facts = m.model_facts
    known = facts.trained_special_tokens is not None
    untrained = untrained_ids(m.tokenizer, facts)
    vocab_size = facts.vocab_size
    past = ids_past(m.prepared.input_ids, vocab_size)
    text = {
        **untrained,
        **dict(zip(sorted(past), m.tokenizer.convert_ids_to_tokens(sorted(past)), strict=True)),
    }
    present = ids_at_least(m.prepared.input_ids, untrained) | past
    in_labels = ids_at_least(m.prepared.labels, present) if present else set()
    rows = trainable_rows(facts.key, lora_key(m.lora_config)) if present else None
    frozen = sorted(
        i for i in present if rows is not None and not rows["all_rows"] and i not in rows["token_indices"]
    )
    name = lambda ids: [f"{text[i]} ({i})" for i in sorted(ids)]  # noqa: E731
    return {
        "checkpoint_known": known,
        "untrained_in_tokenizer": len(untrained) if known else None,
        "model_vocab_size": vocab_size,
        "emitted": name(present),
        "emitted_ids": sorted(present),
        "in_labels": name(in_labels),
        "past_vocab": name(past),
        "trainable_rows": rows,
        "frozen": name(frozen),
        "pad_token": m.tokenizer.pad_token,
        "pad_untrained": m.tokenizer.pad_token_id in untrained if known else None,
    }


def _emitted_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    if va["emitted"] == vb["emitted"]:
        return None
    predicted = bool(va["in_labels"] or vb["in_labels"])
    what = (
        "tokens the base model never trained"
        if va["checkpoint_known"] and vb["checkpoint_known"]
        else "tokens the base model never trained (where its pre-training tokens are known) or has no embedding row "
        "for (ids at or past its vocab_size)"
    )
    return make_finding(
        "special_tokens.untrained_emitted",
        "high" if predicted else "medium",
        va["emitted"],
        vb["emitted"],
        f"{what} appear in the prepared rows: {a.recipe.name} {va['emitted'] or 'none'}, "
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
