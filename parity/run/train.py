"""One leg of a matched run: the recipe's materialized SFTConfig, data and LoRA config through trl.SFTTrainer.

Every optimizer step is logged (loss, learning rate, grad norm, tokens) to `<leg>.jsonl` in the run directory.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.materialize import Materialized
from parity.plain import plain
from parity.run import proxy
from parity.run.config import leg_sft_config, micro_batching
from parity.run.evaluate import eval_prompt, generate
from parity.run.examples import example_counter
from parity.run.files import append_jsonl, read_jsonl, truncate_jsonl, write_json_atomic
from parity.run.model import load_model
from parity.run.options import RunOptions
from parity.run.prepared import PreparedMemo, trainer_class
from parity.run.throughput import model_shape, throughput

log = logging.getLogger("parity")
StepHook = Callable[[str, int, int, dict[str, Any]], None]
"""on_step(leg, step, max_steps, record)."""
STEP_KEYS = ("loss", "learning_rate", "grad_norm", "entropy", "mean_token_accuracy", "epoch")


@dataclass
class LegSpec:
    """Everything a leg needs, JSON-ready so `accelerate launch -m parity.run.worker` can run it."""

    leg: str
    run_dir: str
    recipe_yaml: str
    data: str
    world_size: int
    model_source: str
    tiny: bool
    options: dict[str, Any] = field(default_factory=dict)

    def run_options(self) -> RunOptions:
        """The run options the spec was made from (already resolved: device defaults filled in)."""
        return RunOptions.from_leg(self.options)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> LegSpec:
        return cls(**json.loads(text))


def leg_spec(
    leg: str, run_dir: Path, recipe_yaml: Path, opts: RunOptions, model_source: str, tiny: bool
) -> LegSpec:
    return LegSpec(
        leg, str(run_dir), str(recipe_yaml), opts.data, opts.world_size, model_source, tiny, opts.to_leg()
    )


def _step_logger(leg: str, steps_path: Path, evals_path: Path, tokens_seen: int, on_step: StepHook | None):
    from transformers import TrainerCallback

    class StepLogger(TrainerCallback):
        """Writes one JSONL record per optimizer step and one per evaluation."""

        def __init__(self) -> None:
            self.tokens_seen = tokens_seen
            self.last_num_tokens = 0.0

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            if "loss" in logs:
                num_tokens = float(logs.get("num_tokens", self.last_num_tokens))
                tokens = int(round(num_tokens - self.last_num_tokens))
                self.last_num_tokens = num_tokens
                self.tokens_seen += tokens
                record = {"step": state.global_step, **{k: logs[k] for k in STEP_KEYS if k in logs}}
                record.update(tokens=tokens, tokens_seen=self.tokens_seen)
                append_jsonl(steps_path, record)
                if on_step:
                    on_step(leg, state.global_step, state.max_steps, record)
            elif any(k.startswith("eval_") and k.endswith("_loss") for k in logs):
                losses = {
                    k[5:-5]: v for k, v in logs.items() if k.startswith("eval_") and k.endswith("_loss")
                }
                append_jsonl(evals_path, {"step": state.global_step, "loss": losses})

    return StepLogger()


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """torch.use_deterministic_algorithms for the leg, restoring the previous setting afterwards."""
    import os

    import torch

    if not enabled:
        yield
        return
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


def _quiet() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def checkpoint_step(path: str | None) -> int:
    return int(Path(path).name.rsplit("-", 1)[-1]) if path else 0


def last_checkpoint(leg_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(leg_dir)) if leg_dir.is_dir() else None


def leg_datasets(m: Materialized, opts: RunOptions):
    """Train rows (bounded by --samples) and the eval-loss sets: the recipe's own eval split and the shared held-out."""
    import datasets

    train_rows = m.train_rows if opts.samples is None else m.train_rows[: opts.samples]
    evals = {}
    if m.eval_rows:
        evals["own"] = datasets.Dataset.from_list(m.eval_rows[: opts.eval_rows])
    if m.raw.test:
        rows = m.raw.test[: opts.eval_rows]
        # a captured recipe contributes only the held-out rows its own code produced (none are re-built here)
        shared = (
            m.conversational_raw(rows)
            if m.captured is None
            else [e.trained_row for e in m.captured_examples(rows) if e.same_row and e.trained_row]
        )
        if shared:
            evals["shared"] = datasets.Dataset.from_list(shared)
    return datasets.Dataset.from_list(train_rows), evals


def context_notes(m: Materialized, on_gpu: bool) -> list[str]:
    """Recipe behaviours a bounded matched run does not reproduce, said once each."""
    notes = []
    if m.recipe.launch.early_stopping_patience is not None:
        notes.append(
            f"{m.recipe.name}: early stopping (patience {m.recipe.launch.early_stopping_patience}) not applied in matched runs"
        )
    if m.launch.deepspeed_config and not Path(m.launch.deepspeed_config).is_file():
        notes.append(
            f"{m.recipe.name}: DeepSpeed config {m.launch.deepspeed_config} not found here; launched without DeepSpeed"
        )
    return notes


def execute_leg(
    spec: LegSpec,
    m: Materialized | None = None,
    callbacks: Sequence[Any] = (),
    on_step: StepHook | None = None,
    prepared: PreparedMemo | None = None,
) -> dict[str, Any]:
    """Train one leg (resuming from its last checkpoint with --resume), evaluate it, write `<leg>.result.json`.
    `prepared`: TRL's dataset preparation shared with earlier legs of this process that prepare the same rows."""
    import datasets
    import torch
    from transformers.trainer_callback import PrinterCallback

    _quiet()
    opts = spec.run_options()
    if m is None:
        from parity.materialize import materialize
        from parity.registry import resolve_recipe

        m = materialize(resolve_recipe(spec.recipe_yaml), spec.data, spec.world_size, opts.preflight_samples)
    on_gpu = torch.cuda.is_available()
    run_dir = Path(spec.run_dir)
    leg_dir = run_dir / spec.leg
    steps_path, evals_path = run_dir / f"{spec.leg}.jsonl", run_dir / f"{spec.leg}.eval.jsonl"
    checkpoint = last_checkpoint(leg_dir) if opts.resume else None
    if checkpoint:
        kept = truncate_jsonl(steps_path, checkpoint_step(checkpoint))
        truncate_jsonl(evals_path, checkpoint_step(checkpoint))
        tokens_seen = kept[-1]["tokens_seen"] if kept else 0
    else:
        if opts.resume and read_jsonl(steps_path):
            log.warning(
                "--resume: leg %s has no checkpoint (use --save-every); it restarts from step 0",
                spec.leg.upper(),
            )
        shutil.rmtree(leg_dir, ignore_errors=True)
        for path in (steps_path, evals_path):
            path.unlink(missing_ok=True)
        tokens_seen = 0
    train_dataset, eval_sets = leg_datasets(m, opts)
    config, overrides = leg_sft_config(m, opts, leg_dir, on_gpu, has_eval=bool(eval_sets))
    model, notes = load_model(spec.model_source, m.recipe, on_gpu, spec.tiny, opts.seed)
    logger = _step_logger(spec.leg, steps_path, evals_path, tokens_seen, on_step)
    batches_path = run_dir / f"{spec.leg}.batches.jsonl"
    if not checkpoint:
        batches_path.unlink(missing_ok=True)
    with _deterministic(opts.deterministic), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer = trainer_class(prepared)(
            model=model,
            args=config,
            train_dataset=train_dataset,
            eval_dataset=eval_sets or None,
            processing_class=m.tokenizer,
            peft_config=copy.deepcopy(m.lora_config),
            callbacks=[logger, example_counter(batches_path), *callbacks],
        )
        trainer.remove_callback(PrinterCallback)
        remap = proxy.attach(trainer, spec.model_source, m, opts)
        started = time.perf_counter()
        trainer.train(resume_from_checkpoint=checkpoint)
        train_seconds = time.perf_counter() - started
        completed = trainer.state.global_step >= trainer.state.max_steps
        final_eval: dict[str, float] = {}
        generations: list[dict[str, Any]] = []
        if completed:
            if eval_sets:
                metrics = trainer.evaluate()
                final_eval = {
                    k[5:-5]: v for k, v in metrics.items() if k.startswith("eval_") and k.endswith("_loss")
                }
            if trainer.is_world_process_zero() and opts.eval_samples:
                generations = _generations(trainer.model, m, opts, remap)
    micro = micro_batching(m.launch, opts.micro_batch)
    speed = leg_throughput(trainer, logger, tokens_seen, batches_path, checkpoint, train_seconds, on_gpu)
    result = {
        "leg": spec.leg,
        "recipe": m.recipe.name,
        "completed": completed,
        "global_step": trainer.state.global_step,
        "max_steps": trainer.state.max_steps,
        "resumed_from": checkpoint_step(checkpoint) if checkpoint else None,
        "train_seconds": round(train_seconds, 3),
        "steps_per_second": round(
            (trainer.state.global_step - checkpoint_step(checkpoint)) / train_seconds, 4
        )
        if train_seconds > 0
        else None,
        "batch": {
            "recipe_per_device": m.launch.per_device_train_batch_size,
            "recipe_accumulation": m.launch.gradient_accumulation_steps,
            "micro_batch": micro.per_device,
            "accumulation": micro.accumulation,
            "processes": micro.processes,
            "global_batch": micro.global_batch,
            "recipe_global_batch": m.launch.global_batch,
        },
        "throughput": speed,
        "train_rows": len(train_dataset),
        "eval_rows": {name: len(ds) for name, ds in eval_sets.items()},
        "context_overrides": plain(overrides),
        "notes": notes + context_notes(m, on_gpu),
        "final_eval_loss": final_eval,
        "generations": generations,
    }
    if trainer.is_world_process_zero():
        write_json_atomic(run_dir / f"{spec.leg}.result.json", result)
    del trainer, model
    datasets.disable_progress_bars()
    return result


def leg_throughput(
    trainer: Any,
    logger: Any,
    tokens_before: int,
    batches_path: Path,
    checkpoint: str | None,
    seconds: float,
    on_gpu: bool,
) -> dict[str, Any]:
    """Tokens per second of this session's steps (and MFU on a GPU of known peak), from the step logger's token
    counts and the examples the data loader gave (`<leg>.batches.jsonl`)."""
    import torch

    first = checkpoint_step(checkpoint)
    examples = sum(r["examples"] for r in read_jsonl(batches_path) if r["step"] > first)
    name = torch.cuda.get_device_name(0) if on_gpu else None
    processes = trainer.accelerator.num_processes
    return throughput(
        logger.tokens_seen - tokens_before, examples, seconds, model_shape(trainer.model), processes, name
    )


def _generations(
    model: Any, m: Materialized, opts: RunOptions, remap: proxy.Remap | None = None
) -> list[dict[str, Any]]:
    rows = m.raw.test[: opts.eval_samples]
    chat = bool(m.recipe.eval.apply_chat_template and m.tokenizer.chat_template)
    prompts = [eval_prompt(m.recipe, row, m.tokenizer) for row in rows]
    references = [conversation.completion for conversation in m.conversations(rows)]
    batch = max(1, opts.micro_batch or 8)
    outputs = generate(model, m.tokenizer, prompts, opts.max_new_tokens, batch, chat, remap)
    return [
        {"index": i, "prompt": p, "output": o, "gold_raw": reference}
        for i, (p, o, reference) in enumerate(zip(prompts, outputs, references, strict=True))
    ]


def read_steps(run_dir: Path, leg: str) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / f"{leg}.jsonl")


def read_evals(run_dir: Path, leg: str) -> list[dict[str, Any]]:
    return read_jsonl(run_dir / f"{leg}.eval.jsonl")
