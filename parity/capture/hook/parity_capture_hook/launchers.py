"""Launcher shims (`accelerate launch`, `torchrun`/`torch.distributed.run`, `deepspeed`, `nvidia-smi`): the
options and config files are recorded, the process count they would start is computed, and the training
script runs in this one process."""

from __future__ import annotations

import argparse
import functools
import json
import os
import runpy
import sys
from pathlib import Path
from typing import Any

from parity_capture_hook import imports, state

GPU_NAME = "NVIDIA H100 80GB HBM3"


def world_size() -> int:
    return int(state.config().get("world_size", 1))


def _read_config_file(path: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """(parsed YAML/JSON config, {path: text}) of a launcher config file, when it exists."""
    if not path or not Path(path).is_file():
        return {}, {}
    text = Path(path).read_text()
    try:
        import yaml

        parsed = yaml.safe_load(text)
    except ImportError:
        parsed = json.loads(text)
    return (parsed if isinstance(parsed, dict) else {}), {state.portable(str(Path(path).resolve())): text}


def _run_script(script: str, script_args: list[str], as_module: bool, no_python: bool) -> None:
    """Run the launched script as the launcher's one process would: a program is exec'd; a Python script or
    module runs here, in this interpreter, exactly as `python script.py ...` / `python -m module ...` would
    (runpy, `__main__`, argv, sys.path[0]), so the interpreter and the libraries the launcher already
    imported (torch, accelerate) are not started and imported a second time."""
    sys.stdout.flush()
    sys.stderr.flush()
    if no_python:
        os.execvp(script, [script, *script_args])
    if as_module:
        sys.argv = [script, *script_args]
        sys.path[0] = os.getcwd()
        runpy._run_module_as_main(script, alter_argv=True)
    else:
        sys.argv = [script, *script_args]
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name="__main__")


def script_runs(no_python: bool) -> str:
    """How the launched script runs, as the launcher event records it."""
    if no_python:
        return "exec'd in the launcher's one process"
    return "in the launcher's one process (runpy, as `python` would run it)"


def _accelerate_processes(args: argparse.Namespace) -> tuple[int, str, dict[str, Any], dict[str, str]]:
    config_path = getattr(args, "config_file", None)
    if config_path is None:
        try:
            from accelerate.commands.config import default_config_file

            config_path = default_config_file if Path(default_config_file).is_file() else None
        except ImportError:
            config_path = None
    config, files = _read_config_file(config_path)
    if getattr(args, "num_processes", None):
        return int(args.num_processes), "--num_processes", config, files
    if config.get("num_processes"):
        return int(config["num_processes"]), f"num_processes in {config_path}", config, files
    if getattr(args, "cpu", False):
        return 1, "--cpu", config, files
    return world_size(), "accelerate's default: one process per visible GPU", config, files


def launch_accelerate_namespace(args: argparse.Namespace, argv: list[str] | None) -> None:
    """Record an `accelerate launch` (parsed by accelerate's own parser) and run its script here."""
    processes, source, config, files = _accelerate_processes(args)
    try:
        from accelerate.commands.launch import launch_command_parser

        defaults = vars(launch_command_parser().parse_args([args.training_script]))
    except (ImportError, SystemExit):
        defaults = {}
    options = {
        key: value
        for key, value in vars(args).items()
        if key not in ("training_script", "training_script_args", "nondefault") and value != defaults.get(key)
    }
    state.record(
        "launcher",
        launcher="accelerate launch",
        argv=argv,
        options=options,
        config=config,
        config_files=files,
        processes=processes,
        processes_from=source,
        script=args.training_script,
        script_args=args.training_script_args,
        script_runs=script_runs(bool(args.no_python)),
    )
    _run_script(
        args.training_script, list(args.training_script_args), bool(args.module), bool(args.no_python)
    )


def accelerate_main(argv: list[str]) -> int:
    if not argv or argv[0] != "launch":
        sys.argv = ["accelerate", *argv]
        runpy.run_module("accelerate.commands.accelerate_cli", run_name="__main__")
        return 0
    from accelerate.commands.launch import launch_command_parser

    launch_accelerate_namespace(launch_command_parser().parse_args(argv[1:]), argv)
    return 0


def _first_int(text: str) -> int:
    return int(str(text).split(":")[0])


def torchrun_main(argv: list[str]) -> int:
    from torch.distributed.run import get_args_parser

    args = get_args_parser().parse_args(argv)
    per_node = str(args.nproc_per_node)
    if per_node.isdigit():
        per_node_count, source = int(per_node), "--nproc_per_node"
    else:
        per_node_count, source = world_size(), f"--nproc_per_node={per_node}: one per visible GPU"
    nodes = _first_int(args.nnodes)
    state.record(
        "launcher",
        launcher="torchrun",
        argv=argv,
        options={k: v for k, v in vars(args).items() if k not in ("training_script", "training_script_args")},
        processes=per_node_count * nodes,
        processes_from=f"{source} x {nodes} node(s)",
        script=args.training_script,
        script_args=args.training_script_args,
        script_runs=script_runs(bool(args.no_python)),
    )
    _run_script(
        args.training_script, list(args.training_script_args), bool(args.module), bool(args.no_python)
    )
    return 0


def deepspeed_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="deepspeed", allow_abbrev=False)
    for option in ("--num_gpus", "--num_nodes"):
        parser.add_argument(option, "--" + option[2:].replace("_", "-"), type=int, default=-1)
    for option in ("--include", "--exclude", "--hostfile", "--master_addr", "--launcher", "--master_port"):
        parser.add_argument(option, default="")
    parser.add_argument("--module", action="store_true")
    parser.add_argument("--no_python", action="store_true")
    parser.add_argument("user_script")
    parser.add_argument("user_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.num_gpus > 0:
        per_node, source = args.num_gpus, "--num_gpus"
    elif args.include:
        per_node, source = len(args.include.split(":", 1)[-1].split(",")), "--include"
    else:
        per_node, source = world_size(), "deepspeed's default: every visible GPU"
    nodes = max(args.num_nodes, 1)
    config_path = None
    if "--deepspeed" in args.user_args:
        index = args.user_args.index("--deepspeed")
        config_path = args.user_args[index + 1] if index + 1 < len(args.user_args) else None
    config, files = _read_config_file(config_path)
    state.record(
        "launcher",
        launcher="deepspeed",
        argv=argv,
        options={k: v for k, v in vars(args).items() if k not in ("user_script", "user_args")},
        config=config,
        config_files=files,
        processes=per_node * nodes,
        processes_from=f"{source} x {nodes} node(s)",
        script=args.user_script,
        script_args=args.user_args,
        script_runs=script_runs(args.no_python),
    )
    _run_script(args.user_script, list(args.user_args), args.module, args.no_python)
    return 0


def nvidia_smi_main(argv: list[str]) -> int:
    """Answer like nvidia-smi on a host with `world_size()` GPUs."""
    count = world_size()
    state.record("nvidia-smi", argv=argv, gpus=count)
    uuids = [f"GPU-00000000-0000-0000-0000-{index:012d}" for index in range(count)]
    if "-L" in argv or "--list-gpus" in argv:
        for index in range(count):
            print(f"GPU {index}: {GPU_NAME} (UUID: {uuids[index]})")
        return 0
    query = next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--query-gpu=")), None)
    if query is not None:
        values = {"name": GPU_NAME, "memory.total": "81559 MiB", "count": str(count), "memory.used": "0 MiB"}
        for index in range(count):
            row = [
                {"index": str(index), "uuid": uuids[index]}.get(key.strip(), values.get(key.strip(), "0"))
                for key in query.split(",")
            ]
            print(", ".join(row))
        return 0
    for index in range(count):
        print(f"|   {index}  {GPU_NAME}   |  0MiB / 81559MiB |")
    return 0


def answer_gpu_count_to(module: Any, function: str, caller_module: str, caller_function: str) -> None:
    """Make `module.function()` (a framework's device count) answer the simulated GPU count when the framework's
    launch decision `caller_module.caller_function` asks, as `nvidia-smi` does; every other caller gets the real
    answer, so torch stays on the CPU (answering `torch.cuda.is_available()` True would move tensors to CUDA)."""
    original = getattr(module, function)
    if getattr(original, "_parity_capture", False):
        return

    @functools.wraps(original)
    def counted(*args: Any, **kwargs: Any) -> Any:
        frame = sys._getframe(1)
        if frame.f_globals.get("__name__") == caller_module and frame.f_code.co_name == caller_function:
            state.record(
                "launch-decision",
                asked=f"{module.__name__}.{function}",
                by=f"{caller_module}.{caller_function}",
                answered=world_size(),
                cpu_answer=original(*args, **kwargs),
            )
            return world_size()
        return original(*args, **kwargs)

    counted._parity_capture = True
    setattr(module, function, counted)


SHIMS = {
    "accelerate": accelerate_main,
    "torchrun": torchrun_main,
    "deepspeed": deepspeed_main,
    "nvidia-smi": nvidia_smi_main,
}
MODULE_LAUNCHERS = {
    "torch.distributed.run": torchrun_main,
    "torch.distributed.launch": torchrun_main,
    "accelerate.commands.launch": lambda argv: accelerate_main(["launch", *argv]),
    "accelerate.commands.accelerate_cli": accelerate_main,
    "deepspeed.launcher.runner": deepspeed_main,
}


def _patch_in_process_launch(module: Any) -> None:
    """`trl sft` and other CLIs call accelerate's launch_command(args) in-process."""
    module.launch_command = lambda args: launch_accelerate_namespace(args, None)


def install() -> None:
    """Route `python -m <launcher>` forms to the shims, and accelerate's in-process launch_command."""
    run_module_as_main = runpy._run_module_as_main

    def _run_module_as_main(mod_name: str, alter_argv: bool = True) -> Any:
        launcher = MODULE_LAUNCHERS.get(mod_name)
        if launcher is not None:
            sys.exit(launcher(sys.argv[1:]))
        return run_module_as_main(mod_name, alter_argv)

    runpy._run_module_as_main = _run_module_as_main
    imports.after_import("accelerate.commands.launch", _patch_in_process_launch)


def shim_main() -> None:
    """Entry point of the generated shim executables: the shim's name picks the launcher."""
    name = Path(sys.argv[0]).name
    sys.exit(SHIMS[name](sys.argv[1:]))
