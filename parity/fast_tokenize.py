"""A batched fast path for TRL's prompt/completion preparation, bit-identical to `SFTTrainer._prepare_dataset`.

Same steps in the same order: render the prompt alone (with generation prompt) and prompt+completion through
the tokenizer's chat template (one batched `apply_chat_template` call each, which renders every conversation
on its own), tokenize both (batched, without special tokens, as `apply_chat_template` does), completion starts
at their common prefix, labels masked by completion_only_loss, truncation by max_length and truncation_mode,
fully masked rows dropped. tests/test_fast_tokenize.py and benchmarks/diff_bench.py prove the output identical
to TRL's on every row; anything outside these cases falls back to TRL."""

from __future__ import annotations

from typing import Any

from trl.data_utils import common_prefix_length

from parity.labels import IGNORE_INDEX


def supports_fast_path(rows: list[dict], sft_config: Any) -> bool:
    """True for the configurations this path reproduces exactly; everything else goes through TRL."""
    if not rows:
        return False
    first = rows[0]
    conversational_pc = (
        set(first) == {"prompt", "completion"}
        and isinstance(first["prompt"], list)
        and isinstance(first["completion"], list)
    )
    return (
        conversational_pc
        and not sft_config.packing
        and not sft_config.assistant_only_loss
        and not sft_config.shuffle_dataset
        and sft_config.truncation_mode in ("keep_start", "keep_end")
    )


def prepare_fast(
    rows: list[dict], tokenizer: Any, sft_config: Any, completion_only_loss: bool
) -> dict[str, list]:
    """input_ids and labels for conversational prompt/completion rows, as TRL would produce them, plus where each
    untruncated completion starts (TRL's common-prefix split), which the loss_mask probe reuses."""
    prompts = tokenizer.apply_chat_template(
        [r["prompt"] for r in rows], tokenize=False, add_generation_prompt=True
    )
    full = tokenizer.apply_chat_template([r["prompt"] + r["completion"] for r in rows], tokenize=False)
    prompt_ids = encode_texts(tokenizer, prompts)
    full_ids = encode_texts(tokenizer, full)
    max_length = sft_config.max_length
    keep_end = sft_config.truncation_mode == "keep_end"
    out: dict[str, list] = {"input_ids": [], "labels": [], "completion_start": []}
    for p_ids, ids in zip(prompt_ids, full_ids, strict=True):
        start = completion_start(p_ids, ids)
        labels = [IGNORE_INDEX] * start + ids[start:] if completion_only_loss else list(ids)
        if max_length is not None:
            if len(ids) > max_length:  # a shorter row is its own truncation: no copy
                cut = slice(-max_length, None) if keep_end else slice(None, max_length)
                ids, labels = ids[cut], labels[cut]
            if fully_masked(labels):
                continue
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["completion_start"].append(start)
    return out


def completion_start(prompt_ids: list[int], ids: list[int]) -> int:
    """TRL's `common_prefix_length(prompt_ids, ids)`: the whole prompt when ids start with it (one slice
    comparison in C, the usual case), else TRL's own element-by-element count."""
    n = len(prompt_ids)
    return n if ids[:n] == prompt_ids else common_prefix_length(prompt_ids, ids)


def fully_masked(labels: list[int]) -> bool:
    """True when no label is trained (TRL drops such a row); an empty row counts as fully masked, and a row whose
    last label is trained needs no count."""
    return not labels or (labels[-1] == IGNORE_INDEX and labels.count(IGNORE_INDEX) == len(labels))


def encode_texts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Token ids without special tokens, as `tokenizer(texts, add_special_tokens=False)` gives them; through the
    Rust backend's batch encoder directly when that is the same (no Python-side wrapping)."""
    if not texts:
        return []
    backend = direct_backend(tokenizer)
    if backend is not None:
        return [encoding.ids for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def direct_backend(tokenizer: Any) -> Any:
    """The tokenizer's Rust backend when calling it directly gives what the tokenizer's own call gives, else None.
    transformers leaves the padding and truncation of its last call set on the backend (a padded generation
    batch, say); its own calls reset them, direct calls would pad or truncate."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return None
    return backend if backend.padding is None and backend.truncation is None else None
