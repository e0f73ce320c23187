"""One run of the recipe's command in the temporary copy: the hook directory and launcher shims in place,
hub-offline variables, its own HOME and caches, a timeout that kills the whole process group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOOK_DIR = Path(__file__).resolve().parent / "hook"
"""Put first on the subprocess's PYTHONPATH: its sitecustomize installs the redirects."""
EXIT_CAPTURED = 86
EXIT_FAILED = 87
LAUNCHER_SHIMS = ("accelerate", "torchrun", "deepspeed", "nvidia-smi")
_KEPT_VARIABLES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "SHELL", "TERM")
_GRACE_SECONDS = 5.0
"""How long a command that marked its capture may keep running (a launcher parent still exiting)."""
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class RunOutcome:
    """How one run ended: 'captured', 'failed' (a redirect or the recipe stopped it), 'ended', 'timeout' or
    'cancelled' (another world size failed);
    wall seconds and the CPU seconds (user + system) of the command's process tree."""

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


def subprocess_environment(
    temp_root: Path,
    checkout_copy: Path,
    shims: Path,
    python: Path,
    config_path: Path,
    env: dict[str, str],
    run_dir: Path | None = None,
) -> dict[str, str]:
    """A clean environment: offline hub, disabled trackers, a private HOME and caches, the hooks first.

    The seeded hub cache is shared; HOME, TMPDIR and the datasets cache belong to `run_dir` (default
    `temp_root`), so runs side by side never see each other's files."""
    run_dir = run_dir or temp_root
    home = run_dir / "home"
    hf_home = temp_root / "hf"
    datasets_cache = hf_home / "datasets" if run_dir == temp_root else run_dir / "datasets-cache"
    environment = {key: os.environ[key] for key in _KEPT_VARIABLES if key in os.environ}
    environment.update(
        {
            "PATH": os.pathsep.join(
                [str(shims), str(python.parent), environment.get("PATH", "/usr/bin:/bin")]
            ),
            "PYTHONPATH": os.pathsep.join([str(HOOK_DIR), str(checkout_copy)]),
            "PARITY_CAPTURE_CONFIG": str(config_path),
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "TMPDIR": str(run_dir / "tmp"),
            "MPLCONFIGDIR": str(home / ".cache" / "matplotlib"),
            "HF_HOME": str(hf_home),
            "HF_DATASETS_CACHE": str(datasets_cache),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "WANDB_DISABLED": "true",
            "WANDB_MODE": "disabled",
            "WANDB_DIR": str(run_dir / "tmp"),
            "DISABLE_MLFLOW_INTEGRATION": "TRUE",
            "TOKENIZERS_PARALLELISM": "false",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    for folder in (home, run_dir / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    environment.update(env)
    return environment


def _kill_group(process: subprocess.Popen) -> None:
    """Stop every process the command started (TERM, then KILL after a short wait)."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


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


def run_command(
    command: list[str],
    cwd: Path,
    environment: dict[str, str],
    state_dir: Path,
    timeout: float,
    log: Path,
    cancel: threading.Event | None = None,
) -> RunOutcome:
    """Run the command until it exits, or the hook has marked the trainer captured (or a failure) and the
    command has not exited within a short grace, the timeout, or `cancel` (another run failed) is set.
    An exited command is not waited on."""
    started, started_at = time.monotonic(), time.time()
    if cancel is not None and cancel.is_set():
        return RunOutcome("cancelled", None, 0.0, "another world size failed first")
    stopped, failed = state_dir / "stopped.json", state_dir / "failure.json"
    cpu_seconds = None
    with open(log, "ab") as log_file:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
                _kill_group(process)
                return RunOutcome("cancelled", None, time.monotonic() - started, "another world size failed")
            if time.monotonic() - started > timeout:
                _kill_group(process)
                return RunOutcome(
                    "timeout", None, time.monotonic() - started, f"timed out after {timeout:g} s"
                )
            time.sleep(_POLL_SECONDS)
        _kill_group(process)
    seconds = time.monotonic() - started
    if failed.exists():
        message = json.loads(failed.read_text())["message"]
        return RunOutcome("failed", process.returncode, seconds, message, cpu_seconds, started_at)
    if stopped.exists():
        return RunOutcome("captured", process.returncode, seconds, "", cpu_seconds, started_at)
    return RunOutcome("ended", process.returncode, seconds, _last_error_line(log), cpu_seconds, started_at)


def _last_error_line(log: Path) -> str:
    """The last line of the log that names an error (the recipe's own failure), if any."""
    lines = log.read_text(errors="replace").splitlines()
    for line in reversed(lines[-200:]):
        stripped = line.strip()
        if stripped and ("Error" in stripped or "error:" in stripped.lower()):
            return stripped[:300]
    return ""
