"""`capture(options)`: run a recipe's own command up to the construction of its trainer, once per world size,
and write the captured recipe directory atomically (cached by content)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.capture import manifest as manifest_parts
from parity.capture.cache import cache_key
from parity.capture.checkout import copy_checkout
from parity.capture.frameworks.manifest import framework_manifest
from parity.capture.hubcache import seed_hub_cache
from parity.capture.options import CaptureOptions, validate
from parity.capture.output import write_capture
from parity.capture.runner import (
    EXIT_CAPTURED,
    EXIT_FAILED,
    RunOutcome,
    run_command,
    subprocess_environment,
    write_shims,
)
from parity.errors import ParityError


class CaptureError(ParityError):
    """A capture that stopped: one line naming what to do, with the path of the full log."""


@dataclass(frozen=True)
class CaptureResult:
    """Where the capture is, its manifest, whether it came from the cache, and how long the call took."""

    path: Path
    manifest: dict[str, Any]
    cached: bool
    seconds: float


@dataclass(frozen=True)
class _Interpreter:
    python: Path
    description: dict[str, Any]


def resolve_interpreter(choice: str, checkout: Path, stubs: tuple[str, ...] = ()) -> _Interpreter:
    """The interpreter the recipe runs under: parity's own, the checkout's pinned environment (the stubbed
    modules not installed), or a path."""
    if choice == "current":
        return _Interpreter(Path(sys.executable), {"requested": "current", "executable": sys.executable})
    if choice == "pinned":
        try:
            from parity.capture.environment import build_environment
        except ImportError:
            raise ParityError(
                "--python pinned: the environment builder is not available in this parity"
            ) from None
        environment = build_environment(checkout, skip=tuple(stubs))
        return _Interpreter(
            Path(environment.python),
            {
                "requested": "pinned",
                "executable": str(environment.python),
                "installed": getattr(environment, "installed", None),
                "exclude_newer": getattr(environment, "exclude_newer", None),
                "notes": getattr(environment, "notes", None),
                "cached": getattr(environment, "cached", None),
                "bytecode": getattr(environment, "bytecode", None),
            },
        )
    if choice.startswith("framework:"):
        from parity.capture.frameworks.environments import build_framework_environment

        environment = build_framework_environment(choice)
        return _Interpreter(
            Path(environment.python),
            {
                "requested": choice,
                "executable": str(environment.python),
                "installed": environment.installed,
                "exclude_newer": environment.exclude_newer,
                "notes": environment.notes,
                "cached": environment.cached,
                "bytecode": environment.bytecode,
            },
        )
    path = Path(os.path.abspath(os.path.expanduser(choice)))
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ParityError(f"--python {choice}: not an executable interpreter (use current, pinned or a path)")
    return _Interpreter(path, {"requested": choice, "executable": str(path)})


def _failed_log_path(out: Path) -> Path:
    return out.with_name(out.name + ".capture-failed.log")


def _write_dotenv(copy: Path, env: dict[str, str]) -> str | None:
    """Append the --env variables to the copy's .env (a script may `source .env`), creating it if needed."""
    if not env:
        return None
    dotenv = copy / ".env"
    existed = dotenv.is_file()
    lines = [f"{key}={json.dumps(value)}" for key, value in env.items()]
    previous = dotenv.read_text() if existed else ""
    separator = "" if not previous or previous.endswith("\n") else "\n"
    dotenv.write_text(previous + separator + "\n".join(lines) + "\n")
    return "appended to the copy's .env" if existed else "written as the copy's .env"


def _run_config(
    options: CaptureOptions,
    temp_root: Path,
    copy: Path,
    state_dir: Path,
    world_size: int,
    mode: str,
    served: dict,
) -> dict[str, Any]:
    return {
        "state_dir": str(state_dir),
        "hub_store": str(state_dir / "hub"),
        "hf_home": str(temp_root / "hf"),
        "world_size": world_size,
        "mode": mode,
        "data": {name: str(Path(folder).resolve()) for name, folder in options.data.items()},
        "models": {name: entry["source"] for name, entry in served.items()},
        "stubs": list(options.stubs),
        "exit_captured": EXIT_CAPTURED,
        "exit_failed": EXIT_FAILED,
        "checkout_copy": str(copy),
        "temp_root": str(temp_root),
        "rows": options.rows,
    }


def _failure_message(outcome: RunOutcome, options: CaptureOptions, world_size: int, log: Path) -> str:
    where = f"(world size {world_size}; full log: {log})"
    if outcome.status == "failed":
        return f"{outcome.message} {where}"
    if outcome.status == "timeout":
        return f"capture {outcome.message}, the process group was killed {where}"
    reason = f": {outcome.message}" if outcome.message else ""
    command = " ".join(options.command)
    return f"`{command}` ended (exit {outcome.returncode}) without constructing a trainer{reason} {where}"


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _cached(out: Path, key: str) -> dict[str, Any] | None:
    manifest = _read_json(out / "manifest.json") if out.is_dir() else {}
    return manifest if manifest.get("cache_key") == key else None


def capture(options: CaptureOptions) -> CaptureResult:
    """Capture a recipe by running its own command; returns the cached result for an unchanged recipe."""
    started = time.monotonic()
    validate(options)
    key = cache_key(options)
    cached = None if options.force else _cached(options.out, key)
    if cached is not None:
        return CaptureResult(options.out, cached, True, time.monotonic() - started)
    interpreter = resolve_interpreter(options.python, options.checkout, options.stubs)
    temp_root = Path(tempfile.mkdtemp(prefix="parity-capture-"))
    try:
        manifest = _capture_runs(options, key, interpreter, temp_root, started)
    finally:
        shutil.rmtree(temp_root, ignore_errors=True)
    return CaptureResult(options.out, manifest, False, time.monotonic() - started)


def concurrent_runs(world_sizes: int) -> int:
    """How many world sizes run side by side: PARITY_CAPTURE_JOBS, else one per CPU (at most one per size)."""
    asked = os.environ.get("PARITY_CAPTURE_JOBS", "").strip()
    if asked:
        if not asked.isdigit() or int(asked) < 1:
            raise ParityError(f"PARITY_CAPTURE_JOBS={asked}: expected a positive whole number")
        return min(int(asked), world_sizes)
    return max(1, min(os.cpu_count() or 1, world_sizes))


@dataclass(frozen=True)
class _Run:
    """One world size's run: its mode, its own checkout copy and folders, and how it ended."""

    world_size: int
    mode: str
    run_dir: Path
    state_dir: Path
    log: Path


def _prepare_run(
    options: CaptureOptions, temp_root: Path, world_size: int, mode: str, served: dict
) -> tuple[_Run, str | None]:
    """A fresh copy of the checkout and private folders for one world size (nothing shared with another run
    but the seeded hub cache and the shims), and its configuration for the hook."""
    run_dir = temp_root / "runs" / f"world-size-{world_size}"
    state_dir = temp_root / "state" / f"world-size-{world_size}"
    state_dir.mkdir(parents=True)
    copy = run_dir / "checkout"
    copy_checkout(options.checkout, copy)
    dotenv = _write_dotenv(copy, options.env)
    config = _run_config(options, temp_root, copy, state_dir, world_size, mode, served)
    (state_dir / "config.json").write_text(json.dumps(config))
    return _Run(world_size, mode, run_dir, state_dir, run_dir / "log.txt"), dotenv


class _Schedule:
    """What runs side by side share: the stop signal (a run failed) and the datasets caches of runs that ended."""

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self._lock = threading.Lock()
        self._ended: list[tuple[int, Path]] = []

    def seed_datasets_cache(self, target: Path) -> int | None:
        """Copy the datasets cache of the run that ended last into `target`; its world size, or None."""
        with self._lock:
            source = self._ended[-1] if self._ended else None
        if source is None or not source[1].is_dir():
            return None
        shutil.copytree(source[1], target, symlinks=True)
        return source[0]

    def ended(self, world_size: int, cache: Path) -> None:
        with self._lock:
            self._ended.append((world_size, cache))


def _execute(
    run: _Run, options: CaptureOptions, temp_root: Path, python: Path, schedule: _Schedule
) -> tuple[RunOutcome, int | None]:
    """Run one world size; its outcome and the world size whose datasets cache it started from."""
    cache = run.run_dir / "datasets-cache"
    seeded_from = None if schedule.cancel.is_set() else schedule.seed_datasets_cache(cache)
    environment = subprocess_environment(
        temp_root,
        run.run_dir / "checkout",
        temp_root / "bin",
        python,
        run.state_dir / "config.json",
        options.env,
        run_dir=run.run_dir,
    )
    run.log.write_text(f"===== parity capture: world size {run.world_size} ({run.mode}) =====\n")
    outcome = run_command(
        list(options.command),
        run.run_dir / "checkout",
        environment,
        run.state_dir,
        options.timeout,
        run.log,
        cancel=schedule.cancel,
    )
    if outcome.status != "captured":
        schedule.cancel.set()
    else:
        schedule.ended(run.world_size, cache)
    return outcome, seeded_from


def _join_logs(runs: list[_Run], log: Path) -> None:
    with open(log, "wb") as joined:
        for run in runs:
            if run.log.is_file():
                joined.write(run.log.read_bytes())


CAPTURED_AS = {
    "full": "ran to the end of Trainer.__init__; the trainer's arguments, data, collator and model written",
    "args": "the same command run again at this world size (its own launch logic and argument parsing), "
    "stopped at the entry of Trainer.__init__: training arguments only, no data prepared",
}
"""How a world size was captured, as the manifest says it."""


def _run_record(run: _Run, outcome: RunOutcome, seeded_from: int | None, jobs: int) -> dict[str, Any]:
    """What one world size's run left in its state directory, and how it was captured."""
    events = manifest_parts.read_events(run.state_dir)
    training_args = _read_json(run.state_dir / "training_args.json")
    trainer = _read_json(run.state_dir / "trainer.json")
    cache = "empty"
    if seeded_from is not None:
        cache = f"a copy of world size {seeded_from}'s (datasets reuses what its fingerprints match)"
    return {
        "world_size": run.world_size,
        "state_dir": run.state_dir,
        "seconds": outcome.seconds,
        "cpu_seconds": outcome.cpu_seconds,
        "started_at": outcome.started_at,
        "stopped_time": _read_json(run.state_dir / "stopped.json").get("time"),
        "writing_seconds": _read_json(run.state_dir / "writing_seconds.json"),
        "captured_as": {
            "mode": run.mode,
            "how": CAPTURED_AS[run.mode],
            "stopped_at": trainer.get("stopped_at"),
            "checkout": "a fresh copy of the checkout",
            "datasets_cache": cache,
            "side_by_side": jobs,
        },
        "events": events,
        "training_args": training_args,
        "launch": manifest_parts.launch_row(run.world_size, events, training_args),
        "versions": _read_json(run.state_dir / "versions.json"),
        "trainer": trainer,
        "datasets": _read_json(run.state_dir / "datasets.json"),
    }


def _capture_runs(
    options: CaptureOptions, key: str, interpreter: _Interpreter, temp_root: Path, started: float
) -> dict[str, Any]:
    """Run every world size (the first in full, the others for their training arguments), up to
    `concurrent_runs` side by side, each from a fresh copy; then write the capture."""
    served = seed_hub_cache(temp_root / "hf", options.tokenizers)
    write_shims(temp_root / "bin", interpreter.python)
    planned = []
    dotenv = None
    for index, world_size in enumerate(options.world_sizes):
        run, dotenv = _prepare_run(options, temp_root, world_size, "full" if index == 0 else "args", served)
        planned.append(run)
    jobs = concurrent_runs(len(planned))
    schedule = _Schedule()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(_execute, run, options, temp_root, interpreter.python, schedule) for run in planned
        ]
        results = [future.result() for future in futures]
    outcomes = [outcome for outcome, _ in results]
    log = temp_root / "log.txt"
    _join_logs(planned, log)
    for run, outcome in zip(planned, outcomes, strict=True):
        if outcome.status not in ("captured", "cancelled"):
            failed_log = _failed_log_path(options.out)
            failed_log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, failed_log)
            raise CaptureError(_failure_message(outcome, options, run.world_size, failed_log))
    runs = [
        _run_record(run, outcome, seeded_from, jobs)
        for run, (outcome, seeded_from) in zip(planned, results, strict=True)
    ]
    manifest = manifest_parts.build_manifest(
        options, key, interpreter.description, served, dotenv, runs, time.monotonic() - started
    )
    manifest.update(framework_manifest(options, runs))
    write_capture(options.out, runs, manifest, log)
    _failed_log_path(options.out).unlink(missing_ok=True)
    return manifest
