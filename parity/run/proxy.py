"""`--model proxy`: the tiny Llama with a compact vocabulary, the token ids that occur in either leg's data.

Ids are remapped after TRL's collator (labels -100 kept), so preparation, masks, batches and schedule are TRL's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.errors import ParityError

VOCAB_FILE = "proxy-vocab.json"
SPARE_ROWS = 256
"""Embedding rows beyond the measured vocabulary, for ids that only one leg's data holds (aligned variants)."""
IGNORE = -100


@dataclass(frozen=True)
class ProxyVocab:
    """Real token ids kept by the proxy (sorted; row i of the embedding is ids[i]) and the spare rows after them."""

    ids: tuple[int, ...]
    spare: int = SPARE_ROWS

    @property
    def size(self) -> int:
        return len(self.ids) + self.spare

    def to_json(self) -> str:
        return json.dumps({"ids": list(self.ids), "spare": self.spare})

    @classmethod
    def read(cls, directory: str | Path) -> ProxyVocab | None:
        """The vocabulary saved beside a proxy model, or None for any other model."""
        path = Path(directory) / VOCAB_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(tuple(data["ids"]), data["spare"])


def special_ids(tokenizer: Any) -> set[int]:
    """bos, eos, pad and every other special token id the tokenizer declares."""
    ids = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, *tokenizer.all_special_ids}
    return {i for i in ids if i is not None}


def generation_prompt_ids(m: Any, rows: int) -> set[int]:
    """Ids of the eval prompts the leg answers by greedy generation (first `rows` held-out questions)."""
    from parity.run.evaluate import eval_prompt

    chat = bool(m.recipe.eval.apply_chat_template and m.tokenizer.chat_template)
    prompts = [eval_prompt(m.recipe, row, m.tokenizer) for row in m.raw.test[:rows]]
    ids: set[int] = set()
    for prompt in prompts:
        ids.update(m.tokenizer(prompt, add_special_tokens=not chat)["input_ids"])
    return ids


def build_proxy(tokenizer: Any, vocab: ProxyVocab, seed: int, directory: Path) -> Path:
    """Random-init the tiny Llama with vocab.size rows from `seed`; save it with its vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from parity.run.model import TINY

    row = {real: i for i, real in enumerate(vocab.ids)}
    config = LlamaConfig(
        vocab_size=vocab.size,
        pad_token_id=row.get(tokenizer.pad_token_id),
        bos_token_id=row.get(tokenizer.bos_token_id),
        eos_token_id=row.get(tokenizer.eos_token_id),
        **TINY,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    (directory / VOCAB_FILE).write_text(vocab.to_json(), encoding="utf-8")
    return directory


class Remap:
    """Real id <-> proxy row for one leg: the shared vocabulary, then this leg's extra ids in the spare rows."""

    def __init__(self, vocab: ProxyVocab, leg_ids: Iterable[int]) -> None:
        import torch

        extras = sorted(set(leg_ids) - set(vocab.ids))
        if len(extras) > vocab.spare:
            raise ParityError(
                f"--model proxy: {len(extras)} token ids are outside the proxy vocabulary "
                f"(spare rows: {vocab.spare}); use --model tiny"
            )
        self.real = torch.tensor([*vocab.ids, *extras], dtype=torch.long)
        self.lookup = torch.full((int(self.real.max()) + 1,), -1, dtype=torch.long)
        self.lookup[self.real] = torch.arange(len(self.real))
        self.extras = extras

    def to_proxy(self, ids: Any) -> Any:
        """Real ids -> proxy rows (IGNORE stays IGNORE); an id the leg never declared is an error."""
        import torch

        keep = ids != IGNORE
        known = keep & (ids < len(self.lookup))
        mapped = torch.where(known, self.lookup[ids.clamp(0, len(self.lookup) - 1)], -1)
        if bool((keep & (mapped < 0)).any()):
            missing = sorted(set(ids[keep & (mapped < 0)].tolist()))[:5]
            raise ParityError(f"--model proxy: token ids {missing} are not in the proxy vocabulary")
        return torch.where(keep, mapped, ids)

    def to_real(self, rows: Any) -> Any:
        return self.real[rows]

    def row(self, real_id: int | None) -> int | None:
        return None if real_id is None else int(self.lookup[real_id])


class RemappingCollator:
    """TRL's collator, then input_ids and labels moved to proxy rows (masks, lengths and positions untouched)."""

    def __init__(self, collator: Any, remap: Remap) -> None:
        self.collator = collator
        self.remap = remap

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(features)
        for key in ("input_ids", "labels"):
            if key in batch:
                batch[key] = self.remap.to_proxy(batch[key])
        return batch


def dataset_ids(dataset: Any) -> set[int]:
    ids: set[int] = set()
    for row in dataset["input_ids"]:
        ids.update(row)
    return ids


def attach(trainer: Any, model_source: str, m: Any, opts: Any) -> Remap | None:
    """For a proxy model, remap the trainer's batches (train and eval); None for any other model."""
    vocab = ProxyVocab.read(model_source)
    if vocab is None:
        return None
    ids = special_ids(m.tokenizer) | dataset_ids(trainer.train_dataset)
    evals = trainer.eval_dataset or {}
    for dataset in evals.values() if isinstance(evals, dict) else [evals]:
        ids |= dataset_ids(dataset)
    ids |= generation_prompt_ids(m, opts.eval_samples or 0)
    remap = Remap(vocab, ids)
    trainer.data_collator = RemappingCollator(trainer.data_collator, remap)
    return remap
