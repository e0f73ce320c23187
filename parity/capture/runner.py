"""One run of the recipe's command in the temporary copy: the hook directory and launcher shims in place,
hub-offline and telemetry-off variables, its own HOME and caches, its output streamed to a bounded log, and
every process it starts ended when it ends (captured, failed, timed out, cancelled or interrupted)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from parity.capture.logs import BoundedLog, OutputPump
from parity.capture.processes import (
    INTERRUPT_GRACE_SECONDS,
    LEFTOVER_GRACE_SECONDS,
    RUN_MARKER,
    ProcessTree,
)

HOOK_DIR = Path(__file__).resolve().parent / "hook"
"""Put first on the subprocess's PYTHONPATH: its sitecustomize installs the redirects."""
EXIT_CAPTURED = 86
EXIT_FAILED = 87
LAUNCHER_SHIMS = ("accelerate", "torchrun", "deepspeed", "nvidia-smi")
_KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL", "TERM")
HUB_OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
TRACKERS_OFF = {"WANDB_DISABLED": "true", "WANDB_MODE": "disabled", "DISABLE_MLFLOW_INTEGRATION": "TRUE"}
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "AXOLOTL_DO_NOT_TRACK": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "GRADIO_ANALYTICS_ENABLED": "False",
}
"""Usage reporting switched off: the do-not-track convention (huggingface_hub reads DO_NOT_TRACK and
DISABLE_TELEMETRY too), Axolotl's posthog telemetry, vLLM's and Ray's usage stats, Gradio's analytics."""
_GRACE_SECONDS = 5.0
"""How long a command that marked its capture may keep running (a launcher parent still exiting)."""
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class RunOutcome:
    """How one run ended: 'captured', 'failed' (a redirect or the recipe stopped it), 'ended', 'timeout',
    'not-started' (the command could not be executed) or 'cancelled' (another world size failed, or parity was
    interrupted); wall seconds and the CPU seconds (user + system) of the command's process tree."""

    status: str
    returncode: int | None
    seconds: float
    message: str = ""
    cpu_seconds: float | None = None
    started_at: float | None = None
    """Wall-clock time (time.time()) the command started, to place the hook's event times in the run."""


def write_shims(folder: Path, python: Path) -> None:
    """Executables first on PATH: the launchers, nvidia-smi, and python/python3 as the capture interpreter."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in LAUNCHER_SHIMS:
        script = f"#!{python}\nfrom parity_capture_hook.launchers import shim_main\n\nshim_main()\n"
        (folder / name).write_text(script)
        (folder / name).chmod(0o755)
    for name in ("python", "python3"):
        (folder / name).write_text(f'#!/bin/sh\nexec "{python}" "$@"\n')
        (folder / name).chmod(0o755)


def search_path(shims: Path, python: Path) -> str:
    """The PATH of a capture run: the shims, the interpreter's folder, then the user's PATH."""
    return os.pathsep.join([str(shims), str(python.parent), os.environ.get("PATH", "/usr/bin:/bin")])


def subprocess_environment(
    temp_root: Path,
    checkout_copy: Path,
    shims: Path,
    python: Path,
    config_path: Path,
    env: dict[str, str],
    run_dir: Path | None = None,
    tmpdir: Path | None = None,
) -> dict[str, str]:
    """A clean environment: offline hub, disabled trackers and telemetry, a private HOME and caches, the hooks
    first; the recipe's --env on top (validated never to replace one of these).

    The seeded hub cache is shared; HOME, TMPDIR and the datasets cache belong to `run_dir` (default
    `temp_root`), so runs side by side never see each other's files."""
    run_dir = run_dir or temp_root
    tmpdir = tmpdir or run_dir / "tmp"
    home = run_dir / "home"
    hf_home = temp_root / "hf"
    datasets_cache = hf_home / "datasets" if run_dir == temp_root else run_dir / "datasets-cache"
    environment = {key: os.environ[key] for key in _KEPT_VARIABLES if key in os.environ}
    environment.update(
        {
            "PATH": search_path(shims, python),
            "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), str(checkout_copy)]),
            "PARITY_CAPTURE_CONFIG": str(config_path),
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "TMPDIR": str(tmpdir),
            "MPLCONFIGDIR": str(home / ".cache" / "matplotlib"),
            "HF_HOME": str(hf_home),
            "HF_DATASETS_CACHE": str(datasets_cache),
            **HUB_OFFLINE,
            **TRACKERS_OFF,
            **TELEMETRY_OFF,
            "WANDB_DIR": str(tmpdir),
            "TOKENIZERS_PARALLELISM": "false",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    for folder in (home, tmpdir):
        folder.mkdir(parents=True, exist_ok=True)
    environment.update(env)
    return environment


def _reap(process: subprocess.Popen) -> float | None:
    """If the command's process has exited: reap it, set its return code and return the CPU seconds of its
    tree (the processes it waited for included); None while it runs."""
    try:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if pid == 0:
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _start(
    command: list[str], cwd: Path, environment: dict[str, str], log: BoundedLog
) -> tuple[subprocess.Popen, ProcessTree, OutputPump]:
    """Start the command in a new session, marked with a fresh token, its output piped into `log`."""
    token = secrets.token_hex(8)
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**environment, RUN_MARKER: token},
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=write_end,
            start_new_session=True,
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return process, ProcessTree(process.pid, token), OutputPump(read_end, log)


def run_command(
    command: list[str],
    cwd: Path,
    environment: dict[str, str],
    state_dir: Path,
    timeout: float,
    log: BoundedLog,
    cancel: threading.Event | None = None,
) -> RunOutcome:
    """Run the command until it exits, or the hook has marked the trainer captured (or a failure) and the
    command has not exited within a short grace, the timeout, or `cancel` is set (another run failed, or
    parity was interrupted). However it ends, every process it started is ended and the log closed."""
    started, started_at = time.monotonic(), time.time()
    if cancel is not None and cancel.is_set():
        return RunOutcome("cancelled", None, 0.0, "another world size failed first")
    stopped, failed = state_dir / "stopped.json", state_dir / "failure.json"
    try:
        process, tree, pump = _start(command, cwd, environment, log)
    except OSError as err:
        return RunOutcome("not-started", None, 0.0, f"cannot run `{command[0]}`: {err.strerror or err}")
    cpu_seconds = None
    status = None
    try:
        marked_at = None
        while True:
            cpu_seconds = _reap(process)
            if process.returncode is not None:
                break
            if marked_at is None and (stopped.exists() or failed.exists()):
                marked_at = time.monotonic()
            if marked_at is not None and time.monotonic() - marked_at > _GRACE_SECONDS:
                break
            if cancel is not None and cancel.is_set():
                status = "cancelled"
                break
            if time.monotonic() - started > timeout:
                status = "timeout"
                break
            time.sleep(_POLL_SECONDS)
    finally:
        tree.end(INTERRUPT_GRACE_SECONDS if status or process.returncode is None else LEFTOVER_GRACE_SECONDS)
        if process.returncode is None:
            cpu_seconds = _reap(process)
        if process.returncode is None:
            process.wait()
        tree.close()
        pump.finish()
    seconds = time.monotonic() - started
    if status == "cancelled":
        return RunOutcome("cancelled", None, seconds, "another world size failed")
    if status == "timeout":
        return RunOutcome("timeout", None, seconds, f"timed out after {timeout:g} s")
    if failed.exists():
        message = json.loads(failed.read_text())["message"]
        return RunOutcome("failed", process.returncode, seconds, message, cpu_seconds, started_at)
    if stopped.exists():
        return RunOutcome("captured", process.returncode, seconds, "", cpu_seconds, started_at)
    return RunOutcome("ended", process.returncode, seconds, "", cpu_seconds, started_at)
