"""One run of the recipe's command in the temporary copy: the hook directory and launcher shims in place,
hub-offline variables, its own HOME and caches, a timeout that kills the whole process group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
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


@dataclass(frozen=True)
class RunOutcome:
    """How one run ended: 'captured', 'failed' (a redirect or the recipe stopped it), 'ended' or 'timeout'."""

    status: str
    returncode: int | None
    seconds: float
    message: str = ""


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
    temp_root: Path, checkout_copy: Path, shims: Path, python: Path, config_path: Path, env: dict[str, str]
) -> dict[str, str]:
    """A clean environment: offline hub, disabled trackers, a private HOME and caches, the hooks first."""
    home = temp_root / "home"
    hf_home = temp_root / "hf"
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
            "TMPDIR": str(temp_root / "tmp"),
            "MPLCONFIGDIR": str(home / ".cache" / "matplotlib"),
            "HF_HOME": str(hf_home),
            "HF_DATASETS_CACHE": str(hf_home / "datasets"),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "WANDB_DISABLED": "true",
            "WANDB_MODE": "disabled",
            "WANDB_DIR": str(temp_root / "tmp"),
            "DISABLE_MLFLOW_INTEGRATION": "TRUE",
            "TOKENIZERS_PARALLELISM": "false",
            "CUDA_VISIBLE_DEVICES": "",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    for folder in (home, temp_root / "tmp"):
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


def run_command(
    command: list[str], cwd: Path, environment: dict[str, str], state_dir: Path, timeout: float, log: Path
) -> RunOutcome:
    """Run the command until the hook marks the trainer captured (or a failure, an exit, the timeout)."""
    started = time.monotonic()
    stopped, failed = state_dir / "stopped.json", state_dir / "failure.json"
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
            try:
                process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if marked_at is None and (stopped.exists() or failed.exists()):
                marked_at = time.monotonic()
            if marked_at is not None and time.monotonic() - marked_at > _GRACE_SECONDS:
                break
            if time.monotonic() - started > timeout:
                _kill_group(process)
                return RunOutcome(
                    "timeout", None, time.monotonic() - started, f"timed out after {timeout:g} s"
                )
        _kill_group(process)
    seconds = time.monotonic() - started
    if failed.exists():
        return RunOutcome("failed", process.returncode, seconds, json.loads(failed.read_text())["message"])
    if stopped.exists():
        return RunOutcome("captured", process.returncode, seconds)
    return RunOutcome("ended", process.returncode, seconds, _last_error_line(log))


def _last_error_line(log: Path) -> str:
    """The last line of the log that names an error (the recipe's own failure), if any."""
    lines = log.read_text(errors="replace").splitlines()
    for line in reversed(lines[-200:]):
        stripped = line.strip()
        if stripped and ("Error" in stripped or "error:" in stripped.lower()):
            return stripped[:300]
    return ""
