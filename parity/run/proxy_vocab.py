"""The proxy's vocabulary: every token id the legs' runs feed the model, measured through TRL's preparation.

Pass every materialized variant that will share the proxy model (both legs; bisect adds the aligned corners).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from parity.run.proxy import SPARE_ROWS, ProxyVocab, generation_prompt_ids, special_ids
from parity.run.train import leg_datasets
from parity.trl_bridge import prepare_rows


def leg_token_ids(m: Any, opts: Any) -> set[int]:
    """Every id one leg's run feeds the model: train rows, both eval-loss sets, generation prompts, specials."""
    train, evals = leg_datasets(m, opts)
    ids = special_ids(m.tokenizer)
    for name, dataset in (("train", train), *evals.items()):
        if len(dataset):
            for row in prepare_rows(dataset.to_list(), m.tokenizer, m.sft_config, name).input_ids:
                ids.update(row)
    ids.update(generation_prompt_ids(m, opts.eval_samples or 0))
    return ids


def proxy_vocab(ms: Iterable[Any], opts: Any, spare: int = SPARE_ROWS) -> ProxyVocab:
    """The union of the legs' token ids (pass every materialized variant that will share the model)."""
    ids: set[int] = set()
    for m in ms:
        ids |= leg_token_ids(m, opts)
    return ProxyVocab(tuple(sorted(ids)), spare)
