"""The model both legs start from: a tiny random Llama (same weights for A and B) or real pretrained weights.

The tiny model is built once from the seed and saved in the run directory; each leg loads that copy.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from parity.errors import ParityError

log = logging.getLogger("parity")

TINY = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "tie_word_embeddings": True,
    "max_position_embeddings": 4096,
}
"""Llama-architecture shape of `--model tiny`; the vocabulary is the recipes' tokenizer's."""


def build_tiny(tokenizers: list[Any], seed: int, directory: Path) -> Path:
    """Random-init the tiny model from `seed` and save it to `directory` (shared by both legs)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    first = tokenizers[0]
    config = LlamaConfig(
        vocab_size=max(len(t) for t in tokenizers),
        pad_token_id=first.pad_token_id,
        bos_token_id=first.bos_token_id,
        eos_token_id=first.eos_token_id,
        **TINY,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    return directory


def attention_for(requested: str | None, on_gpu: bool) -> tuple[str | None, str | None]:
    """The attention kernel to load with, and a one-line note when the recipe's request cannot be honoured."""
    if requested in (None, "sdpa", "eager"):
        return requested, None
    if requested and requested.startswith("flash_attention"):
        if on_gpu and importlib.util.find_spec("flash_attn") is not None:
            return requested, None
        where = "on CPU" if not on_gpu else "flash_attn is not installed"
        return "sdpa", f"attention: recipe asks for {requested}; {where}, using sdpa"
    return requested, None


RANDOM_ARCHITECTURES = {"random-llama-3.2-1b": "meta-llama/Llama-3.2-1B"}
"""--model values that build a real architecture (its config.json in the model table, parity.models) with random
weights from --seed (no download; for GPU throughput): every leg builds the same weights and loads them in the
recipe's dtype and attention kernel."""


def random_model(config: Any, seed: int, dtype: Any = None) -> Any:
    """LlamaForCausalLM(config) initialised from `seed` on the CPU generator (the same weights in every leg and
    process), cast to `dtype`."""
    import torch
    from transformers import LlamaForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.to(dtype) if dtype is not None else model


def load_kwargs(recipe: Any, on_gpu: bool, tiny: bool) -> tuple[dict[str, Any], list[str]]:
    """from_pretrained keyword arguments for a leg (dtype, attention kernel) and notes on what differs from the
    recipe's request: the recipe's dtype and kernel on a GPU (flash-attn only where it is installed), float32 on
    CPU; the tiny and proxy models always float32."""
    import torch

    if tiny:
        return {"dtype": torch.float32}, []
    notes: list[str] = []
    kwargs: dict[str, Any] = {}
    attn, note = attention_for(recipe.model.attn_implementation, on_gpu)
    if note:
        notes.append(note)
    if attn:
        kwargs["attn_implementation"] = attn
    dtype = recipe.model.torch_dtype if on_gpu else "float32"
    if dtype and dtype != "auto":
        kwargs["dtype"] = getattr(torch, dtype)
    if not on_gpu and recipe.model.torch_dtype not in (None, "float32"):
        notes.append(f"dtype: recipe loads {recipe.model.torch_dtype}; float32 on CPU")
    return kwargs, notes


def load_model(source: str, recipe: Any, on_gpu: bool, tiny: bool, seed: int = 0) -> tuple[Any, list[str]]:
    """Load the leg's starting weights; returns the model and notes about what differs from the recipe's request."""
    from transformers import AutoModelForCausalLM

    from parity.models import table_config

    kwargs, notes = load_kwargs(recipe, on_gpu, tiny)
    if source in RANDOM_ARCHITECTURES:
        config = table_config(RANDOM_ARCHITECTURES[source], kwargs.get("attn_implementation"))
        return random_model(config, seed, kwargs.get("dtype")), notes
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as err:
        raise ParityError(f"--model {source}: cannot load ({str(err).strip().splitlines()[0]})") from None
    return model, notes
