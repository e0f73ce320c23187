"""`run_pair`: align two recipes, check the alignment with a pre-flight diff, train both legs, write the report.

The library form of `parity run`; the CLI only parses options and prints what this returns.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.align import AlignedPair, align, aligned_yaml, save_aligned
from parity.axes import parse_align_axes
from parity.errors import ParityError
from parity.materialize import Materialized, materialize
from parity.models import shared_weights_note
from parity.plain import plain
from parity.registry import resolve_recipe
from parity.run.files import (
    INCOMPLETE,
    mark_complete,
    mark_incomplete,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from parity.run.model import build_tiny
from parity.run.options import RunOptions, cuda_available
from parity.run.preflight import Preflight, PreflightFailed, preflight
from parity.run.report import write_report
from parity.run.summary import build_summary
from parity.run.train import execute_leg, leg_spec, read_steps

log = logging.getLogger("parity")
LEGS = ("a", "b")


class RunInterrupted(Exception):
    """A leg stopped before its last step; the run directory keeps INCOMPLETE and `--resume` continues it."""

    def __init__(self, run_dir: Path, leg: str, step: int, max_steps: int) -> None:
        super().__init__(
            f"leg {leg.upper()} stopped at step {step} of {max_steps}; continue with --resume ({run_dir})"
        )
        self.run_dir, self.leg, self.step = run_dir, leg, step


@dataclass
class RunSummary:
    """summary.json of a finished run, and where the run directory is."""

    run_dir: Path
    data: dict[str, Any]

    @property
    def verdict(self) -> str:
        return self.data["verdict"]

    @property
    def max_abs_loss_gap(self) -> float | None:
        return self.data["max_abs_loss_gap"]

    @property
    def first_divergent_step(self) -> int | None:
        return self.data["first_divergent_step"]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]


@dataclass
class Hooks:
    """Optional observers of a run (the CLI's console output and progress display)."""

    on_aligned: Callable[[AlignedPair, Path], None] | None = None
    on_preflight: Callable[[Preflight], None] | None = None
    on_leg_start: Callable[[str, str], None] | None = None
    on_step: Callable[[str, int, int, dict[str, Any]], None] | None = None


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "recipe"


def default_run_dir(a: str, b: str, axes: list[str]) -> Path:
    return Path("reports") / f"run-{safe_name(a)}-vs-{safe_name(b)}-{'+'.join(axes) or 'none'}"


def run_pair(
    a_ref: str,
    b_ref: str,
    align: str | list[str] | None = None,
    to: str = "b",
    *,
    callbacks: Sequence[Any] = (),
    hooks: Hooks | None = None,
    **options: Any,
) -> RunSummary:
    """Align, pre-flight, train A and B under matched conditions and report; options are RunOptions fields."""
    names = {f.name for f in dataclasses.fields(RunOptions)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"run_pair() got unknown options: {', '.join(unknown)}")
    for key in ("set_a", "set_b"):
        options[key] = list(options.get(key) or [])
    for key in ("out", "save_aligned"):
        if options.get(key) is not None:
            options[key] = Path(options[key])
    opts = RunOptions(align=parse_align_axes(align), to=to, **options).resolved()
    return _run(a_ref, b_ref, opts, list(callbacks), hooks or Hooks())


def _run(a_ref: str, b_ref: str, opts: RunOptions, callbacks: list[Any], hooks: Hooks) -> RunSummary:
    recipe_a = resolve_recipe(a_ref, opts.set_a)
    recipe_b = resolve_recipe(b_ref, opts.set_b)
    pair = align(recipe_a, recipe_b, opts.align, opts.to)
    run_dir = opts.out or default_run_dir(recipe_a.name, recipe_b.name, opts.align)
    if opts.save_aligned is not None:
        save_aligned(pair, opts.save_aligned, a_ref, b_ref, opts.set_a, opts.set_b)
    if hooks.on_aligned:
        hooks.on_aligned(pair, run_dir)
    ma = materialize(pair.aligned_a, opts.data, opts.world_size, opts.preflight_samples)
    mb = materialize(pair.aligned_b, opts.data, opts.world_size, opts.preflight_samples)
    _check_devices(opts)
    _prepare_run_dir(run_dir, opts)
    check = preflight(ma, mb, opts.align, opts.world_size)
    write_json_atomic(run_dir / "preflight.json", check.to_dict())
    if hooks.on_preflight:
        hooks.on_preflight(check)
    if check.failed and not opts.force:
        raise PreflightFailed(check, run_dir)
    mark_incomplete(run_dir)
    write_json_atomic(
        run_dir / "plan.json", {"fingerprint": plain(opts.fingerprint()), "alignment": pair.to_dict()}
    )
    recipe_paths = _write_leg_recipes(run_dir, pair, a_ref, b_ref, opts)
    note = shared_weights_note(pair.aligned_a, pair.aligned_b, str(opts.model))
    if note:
        log.warning(note)
    tiny = opts.model in ("tiny", "proxy")
    model_source = str(_tiny_model(run_dir, [ma, mb], opts)) if tiny else str(opts.model)
    specs = {leg: leg_spec(leg, run_dir, recipe_paths[leg], opts, model_source, tiny) for leg in LEGS}
    materialized = {"a": ma, "b": mb}
    results = _run_legs(run_dir, specs, materialized, opts, callbacks, hooks)
    for note in sorted({note for result in results.values() for note in result.get("notes", [])}):
        log.warning(note)
    for leg, result in results.items():
        if not result["completed"]:
            raise RunInterrupted(run_dir, leg, result["global_step"], result["max_steps"])
    summary = build_summary(run_dir, pair, check, materialized, results, opts)
    steps = {leg: read_steps(run_dir, leg) for leg in LEGS}
    write_report(run_dir, summary, steps)
    mark_complete(run_dir)
    return RunSummary(run_dir, summary)


def _check_devices(opts: RunOptions) -> None:
    """Multi-GPU and --parallel runs need the GPUs (checked before anything is written); CPU runs use gloo."""
    if opts.world_size == 1 and not opts.parallel:
        return
    import torch

    if not torch.cuda.is_available():
        return

    from parity.run.launch import gpu_sets

    gpu_sets(opts.world_size, opts.parallel, torch.cuda.device_count(), opts.num_machines)


def _prepare_run_dir(run_dir: Path, opts: RunOptions) -> None:
    """A fresh run clears the previous one's outputs; --resume checks it continues the same run."""
    if opts.resume and run_dir.is_dir():
        if (run_dir / "summary.json").is_file() and not (run_dir / INCOMPLETE).exists():
            raise ParityError(
                f"--resume: {run_dir} holds a finished run (summary.json, no INCOMPLETE marker)"
            )
        plan = run_dir / "plan.json"
        if plan.is_file() and read_json(plan)["fingerprint"] != plain(opts.fingerprint()):
            raise ParityError(
                f"--resume: {run_dir} was started with different options; rerun without --resume"
            )
        return
    if opts.resume:
        log.warning("--resume: %s does not exist; starting a fresh run", run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for leg in LEGS:
        shutil.rmtree(run_dir / leg, ignore_errors=True)
        for suffix in (".jsonl", ".eval.jsonl", ".result.json", ".log"):
            (run_dir / f"{leg}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(run_dir / "init-model", ignore_errors=True)
    for name in ("summary.json", "report.html", "curves.png", "preflight.json", "plan.json"):
        (run_dir / name).unlink(missing_ok=True)


def _write_leg_recipes(
    run_dir: Path, pair: AlignedPair, a_ref: str, b_ref: str, opts: RunOptions
) -> dict[str, Path]:
    """Each leg's aligned recipe as YAML in the run directory (what a worker process resolves)."""
    paths = {}
    for leg, ref, user, applied, recipe in (
        ("a", a_ref, opts.set_a, pair.applied_a, pair.aligned_a),
        ("b", b_ref, opts.set_b, pair.applied_b, pair.aligned_b),
    ):
        path = run_dir / f"{leg}.recipe.yaml"
        write_text_atomic(
            path, aligned_yaml(ref, recipe.name, user, applied, f"Leg {leg.upper()} of this run.")
        )
        paths[leg] = path
    return paths


def _tiny_model(run_dir: Path, ms: list[Materialized], opts: RunOptions) -> Path:
    import transformers

    transformers.utils.logging.disable_progress_bar()
    directory = run_dir / "init-model"
    if opts.resume and (directory / "config.json").is_file():
        return directory
    if opts.model == "proxy":
        from parity.run.proxy import build_proxy
        from parity.run.proxy_vocab import proxy_vocab

        return build_proxy(ms[0].tokenizer, proxy_vocab(ms, opts), opts.seed, directory)
    return build_tiny([m.tokenizer for m in ms], opts.seed, directory)


def _run_legs(
    run_dir: Path,
    specs: dict[str, Any],
    materialized: dict[str, Materialized],
    opts: RunOptions,
    callbacks: list[Any],
    hooks: Hooks,
) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for leg in LEGS:
        done = run_dir / f"{leg}.result.json"
        if opts.resume and done.is_file() and read_json(done).get("completed"):
            results[leg] = read_json(done)
        else:
            pending.append(leg)
    if opts.world_size == 1 and not opts.parallel:
        for leg in pending:
            if hooks.on_leg_start:
                hooks.on_leg_start(leg, materialized[leg].recipe.name)
            results[leg] = execute_leg(specs[leg], materialized[leg], callbacks, hooks.on_step)
            if not results[leg]["completed"]:
                break
        return results
    results.update(_launch_legs(run_dir, specs, materialized, pending, opts, hooks))
    return results


def _launch_legs(
    run_dir: Path,
    specs: dict[str, Any],
    materialized: dict[str, Materialized],
    pending: list[str],
    opts: RunOptions,
    hooks: Hooks,
) -> dict[str, dict[str, Any]]:
    """Start pending legs through `accelerate launch` (multi-GPU, or --parallel)."""
    import torch

    from parity.run.launch import (
        MachineOptions,
        leg_launch_info,
        leg_result,
        plan_launches,
        run_launches,
        write_configs,
    )

    machines = MachineOptions(
        opts.num_machines, opts.machine_rank, opts.main_process_ip, opts.main_process_port
    )
    legs = {leg: leg_launch_info(specs[leg], materialized[leg], opts, run_dir) for leg in LEGS}
    visible = torch.cuda.device_count()
    launches = [
        x
        for x in plan_launches(
            legs, opts.world_size, opts.parallel, visible, machines, str(run_dir), cpu=not cuda_available()
        )
        if x.leg in pending
    ]
    write_configs(launches)
    for launch in launches:
        if hooks.on_leg_start:
            hooks.on_leg_start(launch.leg, materialized[launch.leg].recipe.name)
    step_hook = (lambda leg, step, record: hooks.on_step(leg, step, 0, record)) if hooks.on_step else None
    codes = run_launches(launches, opts.parallel, run_dir, step_hook)
    return {leg: leg_result(f"leg {leg.upper()}", leg, code, run_dir) for leg, code in codes.items()}
