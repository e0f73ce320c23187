"""What a capture is asked to do (the checkout, the command, the redirects and the world sizes), and the
checks that refuse options no capture can honour, each as one line naming the flag (or the YAML key)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from parity.errors import ParityError
from parity.plan import MAX_WORLD_SIZE

DEFAULT_WORLD_SIZES = (1, 2, 4, 8)
MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|PASSWD", re.IGNORECASE)
"""--env names whose values are never written to a manifest or a log (recorded as REDACTED)."""
REDACTED = "<redacted>"
NEEDED_MODULES = frozenset(
    {
        "torch",
        "transformers",
        "trl",
        "peft",
        "datasets",
        "accelerate",
        "huggingface_hub",
        "tokenizers",
        "safetensors",
        "pyarrow",
        "numpy",
        "parity_capture_hook",
    }
)
"""Modules a capture itself runs on (the trainer, the model stand-in, the datasets): never stubbed."""
PROTECTED_VARIABLES = {
    **dict.fromkeys(
        ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"), "keeps the hub offline"
    ),
    **dict.fromkeys(
        (
            "HOME",
            "XDG_CACHE_HOME",
            "XDG_CONFIG_HOME",
            "TMPDIR",
            "HF_HOME",
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "TRANSFORMERS_CACHE",
            "HF_DATASETS_CACHE",
        ),
        "gives the recipe its own temporary home and caches",
    ),
    **dict.fromkeys(
        ("PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONSAFEPATH"),
        "puts the capture's hooks and launcher shims first",
    ),
    **dict.fromkeys(
        (
            "DO_NOT_TRACK",
            "DISABLE_TELEMETRY",
            "HF_HUB_DISABLE_TELEMETRY",
            "AXOLOTL_DO_NOT_TRACK",
            "WANDB_DISABLED",
            "WANDB_MODE",
            "DISABLE_MLFLOW_INTEGRATION",
            "VLLM_NO_USAGE_STATS",
            "VLLM_DO_NOT_TRACK",
            "RAY_USAGE_STATS_ENABLED",
            "GRADIO_ANALYTICS_ENABLED",
        ),
        "turns trackers and telemetry off",
    ),
    "CUDA_VISIBLE_DEVICES": "keeps the recipe on the CPU (nvidia-smi lists the --world-size GPUs)",
}
"""Variables parity sets for every capture run, and why: --env may not override them."""

CLI_NAMES = {
    "checkout": "--checkout",
    "out": "--out",
    "command": "the command after `--`",
    "data": "--data",
    "tokenizers": "--tokenizer",
    "stubs": "--stub",
    "env": "--env",
    "world_sizes": "--world-size",
    "python": "--python",
    "timeout": "--timeout",
    "rows": "--rows",
    "train_step": "--train-step",
}
YAML_KEYS = {
    "checkout": "checkout",
    "out": "out",
    "command": "command",
    "data": "data",
    "tokenizers": "tokenizer",
    "stubs": "stubs",
    "env": "env",
    "world_sizes": "world_sizes",
    "python": "python",
    "timeout": "timeout",
    "rows": "rows",
    "train_step": "train_step",
}


@dataclass(frozen=True)
class CaptureOptions:
    """Options of one capture (the CLI's flags, as a library call)."""

    checkout: Path
    """The recipe's repository; copied, never written."""
    out: Path
    """The captured recipe directory to write."""
    command: tuple[str, ...]
    """What to run in the copy: a shell script, `python script.py`, `accelerate launch ...`, ..."""
    data: dict[str, Path] = field(default_factory=dict)
    """Hub dataset name -> local folder of `<split>.jsonl|parquet|csv` files."""
    tokenizers: dict[str, Path] = field(default_factory=dict)
    """Hub model id -> local folder with config.json and tokenizer files."""
    stubs: tuple[str, ...] = ()
    """Modules imported by the recipe but never used on the training path."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables the recipe expects (also written to the copy's `.env`)."""
    world_sizes: tuple[int, ...] = DEFAULT_WORLD_SIZES
    python: str = "current"
    """'current' (parity's interpreter), 'pinned' (built from the checkout's dependencies) or a path."""
    timeout: float = 600.0
    """Seconds each run of the command may take before its process tree is ended."""
    force: bool = False
    """Capture again even when cached, and replace an --out that is not a capture."""
    rows: int | None = None
    """Serve only the first N rows of every dataset load (full counts recorded); None serves every row."""
    train_step: bool = False
    """Also run the trainer's own first optimizer step on the stand-in model and record the loss weight of every
    trained token (`loss_step.json`): how the trainer's loop normalises the loss under gradient accumulation."""
    recipe_file: Path | None = None
    """The YAML recipe declaring this capture (messages name its keys; --out never removes it)."""

    def name(self, option: str) -> str:
        """How the user spelled an option: the CLI flag, or the YAML key of the recipe declaring it."""
        if self.recipe_file is None:
            return CLI_NAMES[option]
        return f"recipe {self.recipe_file}: capture.{YAML_KEYS[option]}"


def parse_pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    """`NAME=VALUE` flags as a dict; a malformed one is a ParityError naming the flag."""
    pairs: dict[str, str] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ParityError(f"{flag} expects NAME=VALUE, got '{value}'")
        pairs[name] = rest
    return pairs


def expand(path: Path | str) -> Path:
    """A path with `~` expanded (a quoted `~/x` reaches parity unexpanded), otherwise as given."""
    return Path(os.path.expanduser(str(path)))


def normalized(options: CaptureOptions) -> CaptureOptions:
    """The options with `~` expanded in every path, so `--out '~/x'` writes where it says."""
    python = options.python
    if python not in ("current", "pinned") and not python.startswith("framework:"):
        python = str(expand(python))
    return replace(
        options,
        checkout=expand(options.checkout),
        out=expand(options.out),
        data={name: expand(folder) for name, folder in options.data.items()},
        tokenizers={name: expand(folder) for name, folder in options.tokenizers.items()},
        python=python,
    )


def is_secret(variable: str) -> bool:
    return SECRET_NAME.search(variable) is not None


def recorded_env(env: dict[str, str]) -> dict[str, str]:
    """--env as a manifest may hold it: values of secret-looking names replaced by REDACTED."""
    return {name: REDACTED if is_secret(name) else value for name, value in env.items()}


def secret_values(env: dict[str, str]) -> list[str]:
    """The --env values that are never written to a log."""
    return [value for name, value in env.items() if is_secret(name) and len(value) >= 3]


def within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or inside it (both resolved)."""
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def validate(options: CaptureOptions) -> None:
    """Raise a ParityError (one line naming the option) for options that cannot be captured."""
    _check_checkout(options)
    _check_command(options)
    for option, mapping in (("data", options.data), ("tokenizers", options.tokenizers)):
        for name, folder in mapping.items():
            if not Path(folder).is_dir():
                what = "not a directory" if not Path(folder).exists() else "a file, not a directory"
                raise ParityError(f"{options.name(option)} {name}={folder}: {what}")
    _check_world_sizes(options)
    _check_timeout(options)
    _check_env(options)
    _check_stubs(options)
    if options.rows is not None and options.rows < 1:
        raise ParityError(f"{options.name('rows')} must be a positive number of rows, got {options.rows}")
    resolved_out = options.out.resolve()
    resolved_checkout = options.checkout.resolve()
    if resolved_out == resolved_checkout or resolved_checkout in resolved_out.parents:
        raise ParityError(
            f"{options.name('out')} {options.out} is inside the checkout, which a capture never writes"
        )


def _check_checkout(options: CaptureOptions) -> None:
    checkout = options.checkout
    if not checkout.is_dir():
        what = "does not exist" if not checkout.exists() else "is a file, not a directory"
        raise ParityError(f"{options.name('checkout')} {checkout}: {what}")
    if not os.access(checkout, os.R_OK | os.X_OK):
        raise ParityError(f"{options.name('checkout')} {checkout}: cannot be read (permission denied)")


def _check_command(options: CaptureOptions) -> None:
    if not options.command:
        raise ParityError("no command to capture: pass it after `--`, e.g. -- python train.py")
    if not options.command[0].strip():
        raise ParityError(
            f"{options.name('command')} starts with an empty word: give the program to run, "
            "e.g. -- python train.py"
        )


def _check_world_sizes(options: CaptureOptions) -> None:
    sizes = options.world_sizes
    name = options.name("world_sizes")
    if not sizes or any(isinstance(size, bool) or not isinstance(size, int) for size in sizes):
        raise ParityError(f"{name} must be whole numbers of GPUs, got {list(sizes)}")
    if any(size < 1 or size > MAX_WORLD_SIZE for size in sizes):
        wrong = next(size for size in sizes if size < 1 or size > MAX_WORLD_SIZE)
        raise ParityError(f"{name} must be between 1 and {MAX_WORLD_SIZE} GPUs, got {wrong}")
    if len(set(sizes)) != len(sizes):
        raise ParityError(f"{name} lists a world size twice: {list(sizes)}")


def _check_timeout(options: CaptureOptions) -> None:
    timeout = options.timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ParityError(f"{options.name('timeout')} must be a number of seconds, got {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ParityError(
            f"{options.name('timeout')} must be a finite positive number of seconds, got {timeout:g}"
        )


def _check_env(options: CaptureOptions) -> None:
    for variable in options.env:
        if not VARIABLE_NAME.fullmatch(variable):
            raise ParityError(f"{options.name('env')} '{variable}': not an environment variable name")
        if variable in PROTECTED_VARIABLES or variable.startswith("PARITY_"):
            reason = PROTECTED_VARIABLES.get(variable, "parity's own configuration")
            raise ParityError(
                f"{options.name('env')} {variable}: parity sets this variable in every capture "
                f"({reason}); it cannot be overridden"
            )


def _check_stubs(options: CaptureOptions) -> None:
    for module in options.stubs:
        if not MODULE_NAME.fullmatch(module):
            raise ParityError(
                f"{options.name('stubs')} {module!r}: not a module name (dotted identifiers, e.g. vllm or ray.util)"
            )
        if module.split(".")[0] in NEEDED_MODULES:
            raise ParityError(
                f"{options.name('stubs')} {module}: the capture itself runs on {module.split('.')[0]} (the "
                "trainer, the model stand-in, the datasets); stub only modules the training path never uses"
            )
