"""Base-model architectures built from their config alone (meta device: no weights, no download).

Llama-3.2-1B facts: /work/shared/upstream-facts.md "The base model" (hidden 2048, 16 layers, 32 heads, 8 KV
heads, intermediate 8192, vocabulary 128,256, tied embeddings, rope theta 500000 with llama3 rope scaling), as
the model's config.json on the hub (meta-llama/Llama-3.2-1B) states them, including its dtype bfloat16 and its
BOS / EOS ids 128000 / 128001 (<|begin_of_text|> / <|end_of_text|>).
"""

from __future__ import annotations

from functools import cache
from typing import Any

LLAMA_3_2_1B = "meta-llama/Llama-3.2-1B"
CHECKPOINT_DTYPE = {LLAMA_3_2_1B.lower(): "bfloat16"}
"""dtype recorded in the checkpoint's config.json (what from_pretrained(dtype='auto') loads)."""


def llama_3_2_1b_config(attn_implementation: str | None = None) -> Any:
    """transformers.LlamaConfig of meta-llama/Llama-3.2-1B."""
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=2048,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        intermediate_size=8192,
        vocab_size=128256,
        tie_word_embeddings=True,
        rope_theta=500000,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        max_position_embeddings=131072,
        bos_token_id=128000,
        eos_token_id=128001,
        dtype=CHECKPOINT_DTYPE[LLAMA_3_2_1B.lower()],
        attn_implementation=attn_implementation,
    )


def meta_model(attn_implementation: str | None = None) -> Any:
    """LlamaForCausalLM for Llama-3.2-1B on the meta device (parameters have shapes, no storage)."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        return LlamaForCausalLM(llama_3_2_1b_config(attn_implementation))


@cache
def default_attn_implementation() -> str:
    """The attention kernel transformers picks when none is asked for, read from a model built here."""
    return str(meta_model().config._attn_implementation)


def checkpoint_dtype(name_or_path: str) -> str | None:
    """The dtype a known base checkpoint stores (None when the model is not one of ours)."""
    return CHECKPOINT_DTYPE.get(name_or_path.lower())
