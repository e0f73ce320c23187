"""Multi-GPU legs: `accelerate launch` commands with a generated config file, built by pure functions.

`--parallel` gives A and B disjoint GPU sets (CUDA_VISIBLE_DEVICES) and runs them at the same time.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from parity.errors import ParityError
from parity.run.files import read_jsonl, write_text_atomic


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


def gpu_sets(world_size: int, parallel: bool, visible: int, num_machines: int = 1) -> dict[str, list[int]]:
    """GPU ids (on this machine) each leg sees: the same set in turn, or disjoint sets with --parallel."""
    if world_size % num_machines:
        raise ParityError(f"--world-size {world_size} is not divisible by --num-machines {num_machines}")
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
    processes: int, precision: str, gpus: list[int], machines: MachineOptions
) -> dict[str, Any]:
    """An accelerate config file's content for one leg; `gpus` are physical ids (accelerate exports them as
    CUDA_VISIBLE_DEVICES for its workers)."""
    if processes < machines.num_machines:
        raise ParityError(
            f"a leg launching {processes} process(es) cannot span --num-machines {machines.num_machines}"
        )
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU" if processes > 1 else "NO",
        "num_processes": processes,
        "num_machines": machines.num_machines,
        "machine_rank": machines.machine_rank,
        "mixed_precision": precision,
        "gpu_ids": ",".join(str(g) for g in gpus[: max(1, processes // machines.num_machines)]) or "all",
        "use_cpu": False,
        "rdzv_backend": "static",
        "same_network": True,
        "main_training_function": "main",
    }
    if machines.main_process_ip:
        config["main_process_ip"] = machines.main_process_ip
    if machines.main_process_port:
        config["main_process_port"] = machines.main_process_port
    return config


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
) -> list[LegLaunch]:
    """Commands for both legs; `legs[leg]` holds 'processes', 'precision' and 'spec_path'."""
    sets = gpu_sets(world_size, parallel, visible_gpus, machines.num_machines)
    launches = []
    for leg in ("a", "b"):
        info = legs[leg]
        config = accelerate_config(info["processes"], info["precision"], sets[leg], machines)
        config_path = str(Path(run_dir) / f"{leg}.accelerate.yaml")
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


def run_launches(
    launches: list[LegLaunch],
    parallel: bool,
    run_dir: Path,
    on_step: Callable[[str, int, dict[str, Any]], None] | None = None,
    poll_s: float = 0.5,
) -> dict[str, int]:
    """Start the legs (together with --parallel, else one after the other); tail their JSONL logs for progress."""
    codes: dict[str, int] = {}
    groups = [launches] if parallel else [[launch] for launch in launches]
    for group in groups:
        running = {}
        for launch in group:
            log = (run_dir / f"{launch.leg}.log").open("ab")
            env = {**os.environ, **launch.env}
            running[launch.leg] = (
                subprocess.Popen(launch.command, env=env, stdout=log, stderr=subprocess.STDOUT),
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
                    log.close()
                    del running[leg]
            time.sleep(poll_s if running else 0)
    return codes
