"""What a capture is asked to do: the checkout, the command, the redirects and the world sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from parity.errors import ParityError

DEFAULT_WORLD_SIZES = (1, 2, 4, 8)


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
    """Seconds each run of the command may take before its process group is killed."""
    force: bool = False
    rows: int | None = None
    """Serve only the first N rows of every dataset load (full counts recorded); None serves every row."""


def parse_pairs(values: list[str] | None, flag: str) -> dict[str, str]:
    """`NAME=VALUE` flags as a dict; a malformed one is a ParityError naming the flag."""
    pairs: dict[str, str] = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ParityError(f"{flag} expects NAME=VALUE, got '{value}'")
        pairs[name] = rest
    return pairs


def validate(options: CaptureOptions) -> None:
    """Raise a ParityError for options that cannot be captured."""
    if not options.checkout.is_dir():
        raise ParityError(f"--checkout {options.checkout}: not a directory")
    if not options.command:
        raise ParityError("no command to capture: pass it after `--`, e.g. -- python train.py")
    for flag, mapping in (("--data", options.data), ("--tokenizer", options.tokenizers)):
        for name, folder in mapping.items():
            if not Path(folder).is_dir():
                raise ParityError(f"{flag} {name}={folder}: not a directory")
    sizes = options.world_sizes
    if not sizes or any(size < 1 for size in sizes) or len(set(sizes)) != len(sizes):
        raise ParityError(f"--world-size must be distinct positive integers, got {list(sizes)}")
    if options.timeout <= 0:
        raise ParityError("--timeout must be positive")
    if options.rows is not None and options.rows < 1:
        raise ParityError(f"--rows must be a positive number of rows, got {options.rows}")
    resolved_out = options.out.resolve()
    resolved_checkout = options.checkout.resolve()
    if resolved_out == resolved_checkout or resolved_checkout in resolved_out.parents:
        raise ParityError(f"--out {options.out} is inside the checkout, which a capture never writes")
