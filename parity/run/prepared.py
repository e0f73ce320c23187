"""TRL's dataset preparation done once for the legs of one process that prepare the same rows the same way (bisect
seeds differ in `data_seed`, variants in learning rate or LoRA): later legs get TRL's Dataset of the first."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

LOOP_ONLY_FIELDS = frozenset(
    {
        "output_dir",
        "logging_dir",
        "run_name",
        "report_to",
        "data_seed",
        "learning_rate",
        "lr_scheduler_type",
        "lr_scheduler_kwargs",
        "warmup_ratio",
        "warmup_steps",
        "weight_decay",
        "adam_beta1",
        "adam_beta2",
        "adam_epsilon",
        "optim",
        "optim_args",
        "max_grad_norm",
        "max_steps",
        "num_train_epochs",
        "logging_steps",
        "logging_strategy",
        "logging_first_step",
        "save_strategy",
        "save_steps",
        "save_total_limit",
        "eval_strategy",
        "eval_steps",
        "per_device_train_batch_size",
        "per_device_eval_batch_size",
        "gradient_accumulation_steps",
    }
)
"""SFTConfig fields only the training loop reads (the schedule, the optimizer, batching, logging, output paths):
left out of the key. Every other field is in it, so a field TRL's preparation starts to read only costs hits."""
WRAPPER_STATE_SKIPPED = ("_tokenizer", "deprecation_warnings", "_in_target_context_manager")
"""Tokenizer attributes outside the key: the Rust backend (keyed by its serialized content) and bookkeeping."""


def rows_digest(dataset: Any) -> str:
    """Content hash of a datasets.Dataset's rows (columns and values, in order)."""
    text = json.dumps(dataset.to_list(), sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def config_digest(args: Any) -> str:
    """Hash of the SFTConfig fields preparation may read (all but LOOP_ONLY_FIELDS)."""
    values = {k: v for k, v in args.to_dict().items() if k not in LOOP_ONLY_FIELDS}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=repr).encode()).hexdigest()


class PreparedMemo:
    """Prepared datasets by (rows, tokenizer, trainer's template and loss mask, SFTConfig, packing); `hits` and
    `misses` count the calls, `saved_cpu_s` the CPU seconds TRL spent on the entries that were hit, once per hit.
    One per process: the Datasets it hands out are shared, read-only, by the legs."""

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self.hits = 0
        self.misses = 0
        self.saved_cpu_s = 0.0
        self._cost: dict[str, float] = {}
        self._backends: dict[int, tuple[Any, str]] = {}

    def tokenizer_digest(self, tokenizer: Any) -> str:
        """The tokenizer's Python state and its Rust backend's serialized content (computed once per backend)."""
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            core = repr(tokenizer)
        else:
            if id(backend) not in self._backends:
                digest = hashlib.sha256(backend.to_str().encode()).hexdigest()
                self._backends[id(backend)] = (backend, digest)
            core = self._backends[id(backend)][1]
        state = {k: v for k, v in vars(tokenizer).items() if k not in WRAPPER_STATE_SKIPPED}
        wrapper = json.dumps(state, sort_keys=True, default=repr)
        return hashlib.sha256(f"{type(tokenizer).__qualname__}|{core}|{wrapper}".encode()).hexdigest()

    def key(self, trainer: Any, dataset: Any, tokenizer: Any, args: Any, packing: bool, name: str) -> str:
        parts = [
            rows_digest(dataset),
            self.tokenizer_digest(tokenizer),
            config_digest(args),
            json.dumps([packing, name, trainer.completion_only_loss, trainer.chat_template], default=repr),
        ]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()


def trainer_class(memo: PreparedMemo | None) -> type:
    """trl.SFTTrainer, or with a memo a subclass whose dataset preparation goes through it (TRL's own code runs
    on a miss; formatting functions, vision data and iterable datasets always run it)."""
    import datasets
    from trl import SFTTrainer

    if memo is None:
        return SFTTrainer

    class MemoSFTTrainer(SFTTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
            prepare = super()._prepare_dataset
            if formatting_func is not None or not isinstance(dataset, datasets.Dataset):
                return prepare(dataset, processing_class, args, packing, formatting_func, dataset_name)
            key = memo.key(self, dataset, processing_class, args, packing, dataset_name)
            if key in memo.entries:
                memo.hits += 1
                memo.saved_cpu_s += memo._cost[key]
            else:
                memo.misses += 1
                started = time.process_time()
                memo.entries[key] = prepare(
                    dataset, processing_class, args, packing, formatting_func, dataset_name
                )
                memo._cost[key] = time.process_time() - started
            return memo.entries[key]

    return MemoSFTTrainer
