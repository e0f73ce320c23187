"""Multi-process legs: `accelerate launch` commands with a generated config file, built by pure functions.

On GPUs `--parallel` gives A and B disjoint GPU sets (CUDA_VISIBLE_DEVICES); on CPU the processes talk over gloo.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from parity.capture.processes import interrupts_raise
from parity.errors import ParityError
from parity.run.files import read_json, read_jsonl, write_text_atomic


@dataclass(frozen=True)
class MachineOptions:
    """Multi-machine options passed through to accelerate."""

    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None


@dataclass(frozen=True)
class LegLaunch:
    """How one leg is started: the command, its extra environment and its accelerate config."""

    leg: str
    command: list[str]
    env: dict[str, str]
    config: dict[str, Any]
    config_path: str
    gpus: list[int] = field(default_factory=list)


def gpu_sets(
    world_size: int, parallel: bool, visible: int, num_machines: int = 1, cpu: bool = False
) -> dict[str, list[int]]:
    """GPU ids (on this machine) each leg sees: the same set in turn, or disjoint sets with --parallel (none on
    CPU, where processes are not tied to devices)."""
    if world_size % num_machines:
        raise ParityError(f"--world-size {world_size} is not divisible by --num-machines {num_machines}")
    if cpu:
        return {"a": [], "b": []}
    per_machine = world_size // num_machines
    needed = per_machine * (2 if parallel else 1)
    if needed > visible:
        what = "2 x " if parallel else ""
        raise ParityError(
            f"--world-size {world_size}{' --parallel' if parallel else ''} needs {what}{per_machine} visible GPUs per machine, found {visible}"
        )
    first = list(range(per_machine))
    return {"a": first, "b": list(range(per_machine, 2 * per_machine)) if parallel else first}


def mixed_precision(sft_config: Any) -> str:
    return "bf16" if sft_config.bf16 else "fp16" if sft_config.fp16 else "no"


def accelerate_config(
    processes: int, precision: str, gpus: list[int], machines: MachineOptions, cpu: bool = False
) -> dict[str, Any]:
    """An accelerate config file's content for one leg; `gpus` are physical ids (accelerate exports them as
    CUDA_VISIBLE_DEVICES for its workers).

    On CPU, accelerate starts several processes only through its torchrun launcher, the one behind
    distributed_type MULTI_GPU; `use_cpu: true` then makes each process's Accelerator run MULTI_CPU over gloo
    (its own `--cpu` flag would start a single process unless MPI is configured). Port 0: a free port."""
    if processes < machines.num_machines:
        raise ParityError(
            f"a leg launching {processes} process(es) cannot span --num-machines {machines.num_machines}"
        )
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU" if processes > 1 else "NO",  # torchrun launcher (also on CPU)
        "num_processes": processes,
        "num_machines": machines.num_machines,
        "machine_rank": machines.machine_rank,
        "mixed_precision": precision,
        "gpu_ids": ",".join(str(g) for g in gpus[: max(1, processes // machines.num_machines)]) or "all",
        "use_cpu": cpu,
        "rdzv_backend": "static",
        "same_network": True,
        "main_training_function": "main",
    }
    if machines.main_process_ip:
        config["main_process_ip"] = machines.main_process_ip
    if machines.main_process_port:
        config["main_process_port"] = machines.main_process_port
    elif cpu and machines.num_machines == 1:
        config["main_process_port"] = 0
    return config


def cpu_env(processes: int, cpus: int | None = None) -> dict[str, str]:
    """Environment of CPU worker processes: no GPU, gloo through accelerate, the cores split between them."""
    threads = max(1, (cpus or os.cpu_count() or 1) // max(1, processes))
    return {"CUDA_VISIBLE_DEVICES": "", "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": str(threads)}


def leg_command(spec_path: str, config_path: str, python: str = sys.executable) -> list[str]:
    """`accelerate launch --config_file CFG -m parity.run.worker SPEC`, through this interpreter."""
    return [
        python,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        config_path,
        "-m",
        "parity.run.worker",
        spec_path,
    ]


def plan_launches(
    legs: dict[str, dict[str, Any]],
    world_size: int,
    parallel: bool,
    visible_gpus: int,
    machines: MachineOptions,
    run_dir: str,
    python: str = sys.executable,
    cpu: bool = False,
) -> list[LegLaunch]:
    """Commands for the legs in `legs` (holding 'processes', 'precision' and 'spec_path'); `cpu`: gloo processes."""
    sets = gpu_sets(world_size, parallel, visible_gpus, machines.num_machines, cpu)
    launches = []
    for leg in [leg for leg in ("a", "b") if leg in legs]:
        info = legs[leg]
        config = accelerate_config(info["processes"], info["precision"], sets[leg], machines, cpu)
        config_path = str(Path(run_dir) / f"{leg}.accelerate.yaml")
        if cpu:
            env = cpu_env(info["processes"])
        else:
            env = {"CUDA_VISIBLE_DEVICES": ",".join(str(g) for g in sets[leg])}
        launches.append(
            LegLaunch(
                leg, leg_command(info["spec_path"], config_path, python), env, config, config_path, sets[leg]
            )
        )
    return launches


def write_configs(launches: list[LegLaunch]) -> None:
    for launch in launches:
        write_text_atomic(Path(launch.config_path), yaml.safe_dump(launch.config, sort_keys=True))


FAILURE = re.compile(r"^(?:\[rank\d+\]:\s*)?(?:parity: error: |(?:[\w.]+(?:Error|Exception)): )(.*\S)")
"""A worker's own error line, or the last line of a Python traceback (`ValueError: ...`), with torchrun's
`[rankN]:` prefix when it has one."""


LAUNCHER_ERRORS = ("ChildFailedError", "CalledProcessError")
"""Errors the launchers (torchrun, accelerate) raise about a failed worker: they say nothing of why."""


def failure_line(log_path: Path) -> str | None:
    """Why a leg's processes failed: the last `parity: error:` line in its log, else the last exception line of
    a worker's traceback (None when there is neither)."""
    if not log_path.is_file():
        return None
    ours, raised = None, None
    for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = FAILURE.match(line.strip())
        if not match or any(name in line for name in LAUNCHER_ERRORS):
            continue
        text = " ".join(line.strip().split())
        if "parity: error: " in text:
            ours = text.split("parity: error: ", 1)[1]
        else:
            raised = re.sub(r"^\[rank\d+\]:\s*", "", text)
    return ours or raised


def failed_leg_message(what: str, code: int | None, log_path: Path) -> str:
    """One line for a leg whose processes ended without a result: its exit code, its error, where its log is."""
    reason = failure_line(log_path)
    return f"{what} failed in its worker processes (exit code {code}): {reason or 'no error line'}; log: {log_path}"


def leg_launch_info(spec: Any, m: Any, opts: Any, run_dir: Path) -> dict[str, Any]:
    """Write a leg's spec file and return what `plan_launches` needs of the leg: its process count, mixed
    precision and spec path."""
    from parity.run.config import leg_sft_config
    from parity.run.options import cuda_available

    spec_path = run_dir / f"{spec.leg}.spec.json"
    write_text_atomic(spec_path, spec.to_json())
    config, _ = leg_sft_config(m, opts, run_dir / spec.leg, cuda_available())
    return {
        "processes": m.launch.num_processes,
        "precision": mixed_precision(config),
        "spec_path": str(spec_path),
    }


def leg_result(what: str, leg: str, code: int | None, run_dir: Path) -> dict[str, Any]:
    """A launched leg's `<leg>.result.json`, or one error line (`failed_leg_message`) when it wrote none."""
    path = run_dir / f"{leg}.result.json"
    if not path.is_file():
        raise ParityError(failed_leg_message(what, code, run_dir / f"{leg}.log"))
    return read_json(path)


def stop_leg(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    """End a leg and every process it started (its own process group): SIGTERM to the group, then, once the leg
    exited or `grace_s` passed, SIGKILL to whatever of the group is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
    process.poll()


def run_launches(
    launches: list[LegLaunch],
    parallel: bool,
    run_dir: Path,
    on_step: Callable[[str, int, dict[str, Any]], None] | None = None,
    poll_s: float = 0.5,
) -> dict[str, int]:
    """Start the legs (together with --parallel, else one after the other); tail their JSONL logs for progress.

    Each leg runs in its own process group with TMPDIR in a private folder (torch's elastic launcher leaves its
    folders there): on any exit, an interrupt included, the legs still running are ended and the folder removed."""
    codes: dict[str, int] = {}
    groups = [launches] if parallel else [[launch] for launch in launches]
    scratch = Path(tempfile.mkdtemp(prefix="parity-legs-"))
    running: dict[str, tuple[subprocess.Popen, Any]] = {}
    with interrupts_raise():  # SIGTERM too ends the legs below, not only Ctrl-C
        try:
            _start_and_follow(groups, run_dir, scratch, running, codes, on_step, poll_s)
        finally:
            for process, log in running.values():
                stop_leg(process)
                log.close()
            shutil.rmtree(scratch, ignore_errors=True)
    return codes


def _start_and_follow(
    groups: list[list[LegLaunch]],
    run_dir: Path,
    scratch: Path,
    running: dict[str, tuple[subprocess.Popen, Any]],
    codes: dict[str, int],
    on_step: Callable[[str, int, dict[str, Any]], None] | None,
    poll_s: float,
) -> None:
    """Start each group's legs and follow them to their end (`running` holds the legs not yet ended)."""
    for group in groups:
        for launch in group:
            log = (run_dir / f"{launch.leg}.log").open("ab")
            env = {**os.environ, **launch.env, "TMPDIR": str(scratch)}
            running[launch.leg] = (
                subprocess.Popen(
                    launch.command,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                ),
                log,
            )
        seen = {leg: 0 for leg in running}
        while running:
            for leg, (process, log) in list(running.items()):
                records = read_jsonl(run_dir / f"{leg}.jsonl")
                if on_step:
                    for record in records[seen[leg] :]:
                        on_step(leg, record["step"], record)
                seen[leg] = len(records)
                if process.poll() is not None:
                    codes[leg] = process.returncode
                    stop_leg(process, grace_s=0)  # whatever the leg left running in its group
                    log.close()
                    del running[leg]
            time.sleep(poll_s if running else 0)
