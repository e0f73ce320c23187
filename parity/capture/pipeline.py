"""`capture(options)`: run a recipe's own command up to the construction of its trainer, once per world size,
and write the captured recipe directory atomically (cached by content)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.capture import manifest as manifest_parts
from parity.capture.cache import cache_key
from parity.capture.checkout import CheckoutPlan, plan_copy
from parity.capture.frameworks.manifest import framework_manifest
from parity.capture.hubcache import seed_hub_cache
from parity.capture.inputs import check_inputs
from parity.capture.integrity import changes
from parity.capture.interpreter import Interpreter, resolve_interpreter
from parity.capture.logs import (
    LOG_LIMIT,
    MESSAGE_LIMIT,
    BoundedLog,
    last_exception,
    printable,
    redact,
    tail_lines,
)
from parity.capture.options import CaptureOptions, normalized, secret_values, validate
from parity.capture.outdir import check_out, failed_log_path, looks_like_capture
from parity.capture.output import write_capture
from parity.capture.processes import interrupts_raise
from parity.capture.runner import (
    EXIT_CAPTURED,
    EXIT_FAILED,
    LAUNCHER_SHIMS,
    RunOutcome,
    run_command,
    search_path,
    subprocess_environment,
    write_shims,
)
from parity.capture.workspace import (
    SOCKET_PATH_LIMIT,
    make_temp_root,
    remove_tree,
    run_tmp,
    socket_path_too_long,
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
        "train_step": options.train_step,
    }


def _socket_cause(log: Path, tmpdir: Path, reason: str) -> str | None:
    """The AF_UNIX limit named as the cause when a run's sockets did not fit under its TMPDIR."""
    too_long = any("AF_UNIX path too long" in line for line in tail_lines(log))
    if too_long or (
        reason.startswith(("EOFError", "ConnectionRefusedError")) and socket_path_too_long(tmpdir)
    ):
        return (
            f"a socket path under the run's TMPDIR {tmpdir} ({len(str(tmpdir))} characters) exceeds the "
            f"{SOCKET_PATH_LIMIT}-byte AF_UNIX limit (the recipe reported {reason or 'no error'}): "
            "set TMPDIR to a shorter folder, e.g. /tmp"
        )
    return None


def _failure_message(
    outcome: RunOutcome, options: CaptureOptions, run: _Run, kept_log: str, temp_root: Path
) -> str:
    """One printable line: what stopped the run, the fix where parity knows it, and where the full log is."""
    if outcome.status == "timeout":
        text = f"capture {outcome.message}, the recipe's processes were ended"
    elif outcome.status in ("failed", "not-started"):
        text = outcome.message
    else:
        reason = last_exception(run.log)
        cause = _socket_cause(run.log, run_tmp(temp_root, run.world_size), reason)
        command = printable(" ".join(options.command), limit=200)
        detail = f": {cause or reason}" if cause or reason else ""
        text = f"`{command}` ended (exit {outcome.returncode}) without constructing a trainer{detail}"
    text = printable(redact(text, secret_values(options.env)), limit=MESSAGE_LIMIT)
    return f"{text} {printable(f'(world size {run.world_size}; {kept_log})')}"


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _cached(out: Path, key: str) -> dict[str, Any] | None:
    """The manifest of the capture at `out` when it was made from the same inputs and no file of it changed."""
    if not out.is_dir() or not looks_like_capture(out):
        return None
    manifest = _read_json(out / "manifest.json")
    if not isinstance(manifest, dict) or manifest.get("cache_key") != key:
        return None
    return None if changes(out, manifest) else manifest


def _check_command(options: CaptureOptions, python: Path | None) -> None:
    """A ParityError when the command's program cannot be found or run (checked before anything runs)."""
    word = options.command[0]
    name = options.name("command")
    if "/" in word:
        path = Path(word) if os.path.isabs(word) else options.checkout / word
        if not path.exists():
            raise ParityError(
                f"{name}: command not found: {word} (it runs in a copy of the checkout, so a relative path "
                "starts at the checkout's root)"
            )
        if path.is_dir() or not os.access(path, os.X_OK):
            raise ParityError(
                f"{name}: {word} is not executable; make it executable, or run it through its interpreter "
                f"(e.g. -- bash {word})"
            )
        return
    if python is None or word in (*LAUNCHER_SHIMS, "python", "python3"):
        return
    if shutil.which(word, path=search_path(Path("/nonexistent"), python)) is None:
        raise ParityError(
            f"{name}: command not found: {word} (not on PATH: the capture's PATH is the launcher shims, "
            f"{python.parent}, then yours)"
        )


def capture(options: CaptureOptions) -> CaptureResult:
    """Capture a recipe by running its own command; returns the cached result for an unchanged recipe.

    SIGINT or SIGTERM meanwhile ends every process of the recipe, removes the temporary files and raises
    parity.capture.processes.Interrupted."""
    started = time.monotonic()
    options = normalized(options)
    validate(options)
    _check_command(options, None)
    with interrupts_raise():
        check_out(options)
        plan = plan_copy(options.checkout, name=options.name("checkout"))
        key = cache_key(options, plan.content_hash())
        cached = None if options.force else _cached(options.out, key)
        if cached is not None:
            return CaptureResult(options.out, cached, True, time.monotonic() - started)
        check_inputs(options)
        interpreter = resolve_interpreter(
            options.python, options.checkout, options.stubs, options.name("python")
        )
        _check_command(options, interpreter.python)
        temp_root = make_temp_root(avoid=[options.checkout, options.out])
        try:
            manifest = _capture_runs(options, key, interpreter, temp_root, started, plan)
        finally:
            remove_tree(temp_root)
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
    options: CaptureOptions, temp_root: Path, world_size: int, mode: str, served: dict, plan: CheckoutPlan
) -> tuple[_Run, str | None]:
    """A fresh copy of the checkout and private folders for one world size (nothing shared with another run
    but the seeded hub cache and the shims), and its configuration for the hook."""
    run_dir = temp_root / "runs" / f"world-size-{world_size}"
    state_dir = temp_root / "state" / f"world-size-{world_size}"
    state_dir.mkdir(parents=True)
    copy = run_dir / "checkout"
    plan.copy_to(copy)
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
    run: _Run, options: CaptureOptions, temp_root: Path, python: Path, schedule: _Schedule, log_bytes: int
) -> tuple[RunOutcome, int | None]:
    """Run one world size (its output kept within `log_bytes`); its outcome and the world size whose datasets
    cache it started from."""
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
        tmpdir=run_tmp(temp_root, run.world_size),
    )
    run.log.write_text(f"===== parity capture: world size {run.world_size} ({run.mode}) =====\n")
    log = BoundedLog(run.log, head=log_bytes // 2, tail=log_bytes // 2)
    try:
        outcome = run_command(
            list(options.command),
            run.run_dir / "checkout",
            environment,
            run.state_dir,
            options.timeout,
            log,
            cancel=schedule.cancel,
        )
    finally:
        log.close(secret_values(options.env))
    if outcome.status != "captured":
        schedule.cancel.set()
    else:
        schedule.ended(run.world_size, cache)
    return outcome, seeded_from


def _join_logs(runs: list[_Run], log: Path) -> None:
    """The runs' (bounded) logs one after another, copied in chunks."""
    with open(log, "wb") as joined:
        for run in runs:
            if run.log.is_file():
                with open(run.log, "rb") as part:
                    shutil.copyfileobj(part, joined)


def _keep_failed_log(log: Path, out: Path) -> str:
    """Keep a failed capture's log in parity's cache folder; how the error line names it."""
    target = failed_log_path(out)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, target)
    except OSError as err:
        return f"log not kept: cannot write {target.parent} ({err.strerror or err})"
    return f"full log: {target}"


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


def _run_all(
    planned: list[_Run], options: CaptureOptions, temp_root: Path, python: Path, jobs: int
) -> list[tuple[RunOutcome, int | None]]:
    """Every run, `jobs` side by side; an exception here (Ctrl-C, SIGTERM) first stops every run, and returns
    only once each has ended its processes."""
    schedule = _Schedule()
    log_bytes = LOG_LIMIT // len(planned)
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        futures = [
            pool.submit(_execute, run, options, temp_root, python, schedule, log_bytes) for run in planned
        ]
        return [future.result() for future in futures]
    except BaseException:
        schedule.cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _capture_runs(
    options: CaptureOptions,
    key: str,
    interpreter: Interpreter,
    temp_root: Path,
    started: float,
    plan: CheckoutPlan,
) -> dict[str, Any]:
    """Run every world size (the first in full, the others for their training arguments), up to
    `concurrent_runs` side by side, each from a fresh copy; then write the capture."""
    served = seed_hub_cache(temp_root / "hf", options.tokenizers)
    write_shims(temp_root / "bin", interpreter.python)
    planned = []
    dotenv = None
    for index, world_size in enumerate(options.world_sizes):
        mode = "full" if index == 0 else "args"
        run, dotenv = _prepare_run(options, temp_root, world_size, mode, served, plan)
        planned.append(run)
    jobs = concurrent_runs(len(planned))
    results = _run_all(planned, options, temp_root, interpreter.python, jobs)
    log = temp_root / "log.txt"
    _join_logs(planned, log)
    for run, (outcome, _) in zip(planned, results, strict=True):
        if outcome.status not in ("captured", "cancelled"):
            kept = _keep_failed_log(log, options.out)
            raise CaptureError(_failure_message(outcome, options, run, kept, temp_root))
    runs = [
        _run_record(run, outcome, seeded_from, jobs)
        for run, (outcome, seeded_from) in zip(planned, results, strict=True)
    ]
    manifest = manifest_parts.build_manifest(
        options,
        key,
        interpreter.description,
        served,
        dotenv,
        runs,
        time.monotonic() - started,
        plan.content_hash(),
        plan.left_out,
    )
    manifest.update(framework_manifest(options, runs))
    sealed = write_capture(options.out, runs, manifest, log, secret_values(options.env))
    failed_log_path(options.out).unlink(missing_ok=True)
    return sealed
