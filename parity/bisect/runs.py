"""Bisect runs, one leg each, cached on disk by what they train: side, aligned axis set, data-order seed.

With A aligned to B on a set S only leg A changes, so B is trained once per seed and shared by every S; an A
variant whose recipe trains exactly what B trains (same recipe twice, everything aligned) reuses B's leg.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parity.align import align, aligned_yaml
from parity.axes import ALIGN_AXES
from parity.errors import ParityError
from parity.plain import plain
from parity.run.files import read_json, write_json_atomic, write_text_atomic
from parity.run.options import RunOptions

RUN_FILE = "run.json"
TRAINED_SECTIONS = ("model", "tokenizer", "template", "data", "prompt", "training", "peft", "launch", "eval")
"""Recipe sections that decide what a leg trains and how it is scored (not its name or provenance)."""
METRICS = ("eval_loss", "accuracy")
CPU_THREADS = 1
"""Intra-op threads while a tiny or proxy leg trains on CPU: their matrices are too small to split, and on a
busy machine idle threads spin (proxy_bench, one step of llmhalluc / revise at micro-batch 16: 11.6 / 4.06
CPU-s with 2 threads, 2.84 / 0.36 with 1)."""
CACHE_KEYS = (
    "data",
    "world_size",
    "model",
    "max_steps",
    "epochs",
    "samples",
    "micro_batch",
    "seed",
    "eval_rows",
)


def ordered(axes: frozenset[str] | set[str] | list[str]) -> list[str]:
    return [axis for axis in ALIGN_AXES if axis in axes]


def set_label(axes: frozenset[str] | set[str] | list[str]) -> str:
    return "+".join(ordered(axes)) or "none"


def seed_overrides(seed: int) -> list[str]:
    """Data-order seed k > 0 sets training.data_seed on both legs (model init and training.seed stay)."""
    return [] if seed == 0 else [f"training.data_seed={seed}"]


@dataclass
class LegRun:
    """One trained (or cached) leg: its metrics and its per-step loss curve."""

    key: str
    side: str
    aligned: list[str]
    seed: int
    metrics: dict[str, Any]
    curve: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "leg": self.side,
            "aligned": self.aligned,
            "seed": self.seed,
            "metrics": self.metrics,
            "seconds": self.seconds,
            "curve": self.curve,
        }


def trained_content(recipe: Any) -> dict[str, Any]:
    return {name: plain(getattr(recipe, name)) for name in TRAINED_SECTIONS}


def fingerprint(a_ref: str, b_ref: str, set_a: list[str], set_b: list[str], opts: RunOptions) -> str:
    """Short hash of everything that changes a leg's outcome apart from its side, aligned set and seed."""
    doc = {
        "a": _ref_text(a_ref),
        "b": _ref_text(b_ref),
        "set_a": set_a,
        "set_b": set_b,
        **{k: getattr(opts, k) for k in CACHE_KEYS},
        "eval_samples": opts.eval_samples,
        "max_new_tokens": opts.max_new_tokens,
    }
    return hashlib.sha256(json.dumps(plain(doc), sort_keys=True).encode()).hexdigest()[:10]


def _ref_text(ref: str) -> str:
    """A recipe file's content (edits invalidate the cache), or the registered name."""
    path = Path(ref)
    return path.read_text(encoding="utf-8") if path.is_file() else ref


class RunCache:
    """Trains legs on demand into DIR/runs/<key>/ and reuses any leg already there."""

    def __init__(
        self, a_ref: str, b_ref: str, opts: RunOptions, out: Path, set_a: list[str], set_b: list[str]
    ) -> None:
        self.a_ref, self.b_ref, self.opts, self.out = a_ref, b_ref, opts, out
        self.set_a, self.set_b = list(set_a), list(set_b)
        self.hash = fingerprint(a_ref, b_ref, self.set_a, self.set_b, opts)
        self.model_source: str | None = None
        self.trained = 0
        self.reused = 0
        self.on_leg: Any = None
        self._materialized: dict[str, Any] = {}
        self.prepared: Any = None
        """PreparedMemo shared by the legs trained in this process (TRL's preparation of equal rows runs once)."""

    def recipes(self, seed: int):
        from parity.registry import resolve_recipe

        extra = seed_overrides(seed)
        return (
            resolve_recipe(self.a_ref, [*self.set_a, *extra]),
            resolve_recipe(self.b_ref, [*self.set_b, *extra]),
        )

    def variant(self, side: str, aligned: frozenset[str], seed: int):
        """The recipe a leg trains, its user overrides and the alignment overrides applied to it."""
        recipe_a, recipe_b = self.recipes(seed)
        extra = seed_overrides(seed)
        if side == "b":
            return recipe_b, self.b_ref, [*self.set_b, *extra], {}
        pair = align(recipe_a, recipe_b, ordered(aligned), "b")
        return pair.aligned_a, self.a_ref, [*self.set_a, *extra], pair.applied_a

    def key(self, side: str, aligned: frozenset[str], seed: int) -> str:
        label = "b" if side == "b" else f"a-{set_label(aligned)}"
        return f"{label}-s{seed}-{self.hash}"

    def prepare_model(self, corner_sets: list[frozenset[str]]) -> str:
        """The shared initial model: a hub id/path as given, else the tiny or proxy model built once in DIR."""
        if self.opts.model not in ("tiny", "proxy"):
            self.model_source = str(self.opts.model)
            return self.model_source
        directory = self.out / f"init-model-{self.opts.model}-{self.hash}"
        if not (directory / "config.json").is_file():
            from parity.run.model import build_tiny
            from parity.run.proxy import build_proxy
            from parity.run.proxy_vocab import proxy_vocab
            from parity.run.train import _quiet

            _quiet()

            ms = [self._materialize(self.variant("b", frozenset(), 0)[0])]
            ms += [self._materialize(self.variant("a", s, 0)[0]) for s in corner_sets]
            if self.opts.model == "proxy":
                build_proxy(ms[0].tokenizer, proxy_vocab(ms, self.opts), self.opts.seed, directory)
            else:
                build_tiny([m.tokenizer for m in ms], self.opts.seed, directory)
        self.model_source = str(directory)
        return self.model_source

    def _materialize(self, recipe):
        """Materialized once per trained content within this bisect (variants often coincide)."""
        from parity.materialize import materialize

        key = json.dumps(trained_content(recipe), sort_keys=True)
        if key not in self._materialized:
            self._materialized[key] = materialize(
                recipe, self.opts.data, self.opts.world_size, self.opts.preflight_samples
            )
        return self._materialized[key]

    def _prepared(self):
        from parity.run.prepared import PreparedMemo

        if self.prepared is None:
            self.prepared = PreparedMemo()
        return self.prepared

    def leg(self, side: str, aligned: frozenset[str], seed: int = 0) -> LegRun:
        """The leg's run, from DIR/runs/<key>/run.json when it is there, else trained now."""
        key = self.key(side, aligned, seed)
        run_dir = self.out / "runs" / key
        done = run_dir / RUN_FILE
        if done.is_file():
            data = read_json(done)
            self.reused += 1
            metrics = data["metrics"]
            if metrics.get("accuracy") is not None and "accuracy_n" not in metrics:
                metrics = self._rescored(data, side, aligned, seed)
            return LegRun(key, side, data["aligned"], seed, metrics, data["curve"], data["seconds"], True)
        recipe, ref, user, applied = self.variant(side, aligned, seed)
        if side == "a" and trained_content(recipe) == trained_content(self.variant("b", aligned, seed)[0]):
            same = self.leg("b", frozenset(), seed)
            run = dataclasses.replace(same, key=key, side=side, aligned=ordered(aligned), cached=False)
            write_json_atomic(done, {**run.to_dict(), "same_as": same.key})
            return run
        if self.on_leg:
            self.on_leg(key)
        started = time.perf_counter()
        result, curve = self._train(run_dir, side, recipe, ref, user, applied)
        run = LegRun(
            key,
            side,
            ordered(aligned),
            seed,
            leg_metrics(result, recipe),
            [{"step": r["step"], "loss": r.get("loss")} for r in curve],
            round(time.perf_counter() - started, 2),
        )
        write_json_atomic(done, run.to_dict())
        self.trained += 1
        return run

    def _rescored(
        self, data: dict[str, Any], side: str, aligned: frozenset[str], seed: int
    ) -> dict[str, Any]:
        """Metrics of a leg cached by an older parity (accuracy under B's extractor, no k/n), scored again from
        its generations under the leg's own extractor."""
        source = self.out / "runs" / data.get("same_as", self.key(side, aligned, seed))
        leg = "b" if "same_as" in data else side
        metrics = leg_metrics(read_json(source / f"{leg}.result.json"), self.variant(side, aligned, seed)[0])
        write_json_atomic(
            self.out / "runs" / self.key(side, aligned, seed) / RUN_FILE, {**data, "metrics": metrics}
        )
        return metrics

    def _train(self, run_dir: Path, side: str, recipe, ref: str, user: list[str], applied: dict[str, Any]):
        from parity.run.train import execute_leg, leg_spec, read_steps

        run_dir.mkdir(parents=True, exist_ok=True)
        recipe_path = run_dir / f"{side}.recipe.yaml"
        note = f"Leg {side.upper()} of a bisect run ({run_dir.name})."
        write_text_atomic(recipe_path, aligned_yaml(ref, recipe.name, user, applied, note))
        assert self.model_source is not None, "prepare_model() first"
        spec = leg_spec(
            side, run_dir, recipe_path, self.opts, self.model_source, self.opts.model in ("tiny", "proxy")
        )
        if self.opts.world_size == 1:
            with cpu_threads(CPU_THREADS if spec.tiny else None):
                result = execute_leg(spec, self._materialize(recipe), prepared=self._prepared())
        else:
            result = launch_leg(spec, self._materialize(recipe), self.opts, run_dir)
        if not result.get("completed"):
            raise ParityError(f"bisect leg {run_dir.name} stopped before its last step")
        return result, read_steps(run_dir, side)


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `count` on CPU for the block (None, or on a GPU: unchanged)."""
    import torch

    if count is None or torch.cuda.is_available():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def launch_leg(spec: Any, m: Any, opts: RunOptions, run_dir: Path) -> dict[str, Any]:
    """One leg through `accelerate launch` (several processes: GPUs, or gloo on CPU)."""
    import torch

    from parity.run.launch import (
        MachineOptions,
        leg_launch_info,
        leg_result,
        plan_launches,
        run_launches,
        write_configs,
    )
    from parity.run.options import cuda_available

    launches = plan_launches(
        {spec.leg: leg_launch_info(spec, m, opts, run_dir)},
        opts.world_size,
        False,
        torch.cuda.device_count(),
        MachineOptions(),
        str(run_dir),
        cpu=not cuda_available(),
    )
    write_configs(launches)
    codes = run_launches(launches, False, run_dir)
    return leg_result(f"bisect leg {run_dir.name}", spec.leg, codes[spec.leg], run_dir)


def leg_metrics(result: dict[str, Any], recipe) -> dict[str, Any]:
    """Final eval loss on the shared held-out split, and greedy accuracy as the leg's own recipe scores it: its
    eval prompt produced the answers, its extractor reads them (strict mode, else flexible), k of n correct."""
    from parity.run.evaluate import score

    losses = result.get("final_eval_loss") or {}
    metrics: dict[str, Any] = {"eval_loss": losses.get("shared", losses.get("own")), "accuracy": None}
    generations = result.get("generations") or []
    if generations:
        scores = score([g["output"] for g in generations], [g["gold_raw"] for g in generations], recipe)
        mode = next((name for name in ("strict", "flexible") if name in scores), None)
        if mode is not None:
            metrics.update(
                accuracy=scores[mode]["accuracy"],
                accuracy_correct=scores[mode]["correct"],
                accuracy_n=scores[mode]["n"],
                accuracy_mode=mode,
            )
    return metrics
