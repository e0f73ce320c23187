"""Benchmark `parity diff` against building both recipes' datasets through a plain trl.SFTTrainer.

Targets (issue "parity diff"): `--samples all` on the 7,473 real training rows at <= 0.5x the baseline's wall time
with bit-identical input_ids and labels on every row; default-mode `parity diff` under 6 s cold with peak RSS
under 1.5 GB, and split in one process into importing the libraries it measures through (its floor that minute)
and parity's own work.
Run: python benchmarks/diff_bench.py [--data ../shared/data/gsm8k] [--repeat 3] [--skip-identity] [--default-only]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "gsm8k"

BASELINE = r"""
import sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, sys.argv[2])
from diff_bench import plain_trainer
from parity.materialize import materialize
from parity.registry import resolve_recipe
for name in ("llmhalluc", "revise"):
    m = materialize(resolve_recipe(name), data=sys.argv[1], samples=1)
    print(name, len(plain_trainer(m, m.eval_rows).train_dataset))
"""
"""Both recipes' datasets built the ordinary way: an SFTTrainer given the rows, config and tokenizer."""


def plain_trainer(m, eval_rows: list[dict]):
    """A plain trl.SFTTrainer (tiny Llama, the recipe's own SFTConfig, rows, tokenizer and LoraConfig)."""
    import dataclasses

    import datasets
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTTrainer

    datasets.disable_progress_bars()
    config = LlamaConfig(
        vocab_size=len(m.tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    args = dataclasses.replace(
        m.sft_config, output_dir=tempfile.mkdtemp(), report_to=[], push_to_hub=False, bf16=False
    )
    return SFTTrainer(
        model=LlamaForCausalLM(config),
        args=args,
        train_dataset=datasets.Dataset.from_list(m.train_rows),
        eval_dataset=datasets.Dataset.from_list(eval_rows),
        processing_class=m.tokenizer,
        peft_config=m.lora_config,
    )


DIFF_ARGS = ["diff", "--a", "llmhalluc", "--b", "revise", "--out"]

MODULES = r"""
import json, sys
from parity.process import configure_console_process
configure_console_process()
from parity.cli.app import main
main(sys.argv[2:])
own = ("parity", "recipes", "__main__")
with open(sys.argv[1], "w") as out:
    json.dump([name for name in sys.modules if name.split(".")[0] not in own], out)
"""
"""Every module outside parity that a default diff imports, in the order it first imported them."""

SPLIT = r"""
import importlib, json, sys, time
start = time.perf_counter()
from parity.process import configure_console_process
configure_console_process()  # what the console script does first
for name in json.load(open(sys.argv[1])):
    try:
        importlib.import_module(name)
    except Exception:
        pass
imported = time.perf_counter()
from parity.cli.app import main
code = main(sys.argv[2:])
print(imported - start, time.perf_counter() - imported, file=sys.stderr)
sys.exit(code)
"""
"""The default diff in one process, split in two: first every library module the diff imports (torch,
transformers, TRL, peft, datasets, accelerate, ...: its floor on the machine that minute), then parity's own
modules and work."""

MEASURE = r"""
import resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(time.perf_counter() - start, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)
"""


@dataclass(frozen=True)
class Run:
    """One timed child process."""

    wall: float
    """Seconds."""
    rss: float
    """Peak resident set size, MB."""
    cpu: float
    """User + system CPU seconds, all threads (less sensitive than wall to other work on a shared machine)."""


def timed(cmd: list[str]) -> Run:
    """Wall seconds, peak RSS and CPU time of one child process (measured by a fresh parent, so earlier runs'
    peaks and CPU time do not leak into it)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], check=True, cwd=REPO, capture_output=True)
    wall, peak_kb, cpu = out.stdout.split()
    return Run(float(wall), float(peak_kb) / 1024, float(cpu))


def library_modules(out: str) -> str:
    """A file listing the modules outside parity that a default diff imports (one warm-up diff)."""
    listing = str(Path(out) / "modules.json")
    subprocess.run(
        [sys.executable, "-c", MODULES, listing, *DIFF_ARGS, out], check=True, cwd=REPO, capture_output=True
    )
    return listing


def split_default_diff(modules: str, out: str) -> tuple[float, float]:
    """(seconds importing the libraries, seconds of parity's own modules and work) of one cold default diff."""
    done = subprocess.run(
        [sys.executable, "-c", SPLIT, modules, *DIFF_ARGS, out],
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    imports, own = done.stderr.strip().splitlines()[-1].split()
    return float(imports), float(own)


def identical_on_every_row(data: str) -> tuple[bool, int]:
    """Compare parity's tokenization of all train rows with a plain SFTTrainer's, for both recipes."""
    import warnings

    from parity.materialize import materialize
    from parity.registry import resolve_recipe

    warnings.simplefilter("ignore")
    rows = 0
    for name in ("llmhalluc", "revise"):
        m = materialize(resolve_recipe(name), data=data, samples=None)
        trainer = plain_trainer(m, m.eval_rows[:8])
        if (
            trainer.train_dataset["input_ids"][:] != m.prepared.input_ids
            or trainer.train_dataset["labels"][:] != m.prepared.labels
        ):
            return False, rows
        rows += len(m.prepared)
    return True, rows


def summary(samples: list[Run]) -> tuple[float, str]:
    """Median wall seconds, and 'median s (min-max), CPU median s, peak RSS N MB' over repeated runs."""
    walls = sorted(run.wall for run in samples)
    median = statistics.median(walls)
    spread = f" ({walls[0]:.2f}-{walls[-1]:.2f} over {len(walls)} runs)" if len(walls) > 1 else ""
    cpu = statistics.median(run.cpu for run in samples)
    return median, (
        f"{median:.2f} s{spread}, CPU user+sys {cpu:.2f} s, peak RSS {max(run.rss for run in samples):.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--repeat", type=int, default=3, help="Runs of each command, interleaved (median).")
    parser.add_argument("--skip-identity", action="store_true")
    parser.add_argument(
        "--default-only", action="store_true", help="Time only the default diff and the libraries' import."
    )
    args = parser.parse_args()
    parity = str(Path(sys.executable).parent / "parity")
    out = tempfile.mkdtemp()
    commands = {
        "baseline": [sys.executable, "-c", BASELINE, args.data, str(Path(__file__).parent)],
        "all": [parity, "diff", "--a", "llmhalluc", "--b", "revise", "--data", args.data]
        + ["--samples", "all", "--out", out],
        "default": [parity, *DIFF_ARGS, out],
    }
    if args.default_only:
        commands = {"default": commands["default"]}
    runs: dict[str, list[Run]] = {name: [] for name in commands}
    splits: list[tuple[float, float]] = []
    modules = library_modules(out)
    for _ in range(max(1, args.repeat)):
        for name, cmd in commands.items():
            runs[name].append(timed(cmd))
        splits.append(split_default_diff(modules, out))
    if not args.default_only:
        base, base_text = summary(runs["baseline"])
        every, all_text = summary(runs["all"])
        print(f"baseline (plain SFTTrainer, both recipes, {args.data}): {base_text}")
        cpu_ratio = statistics.median(r.cpu for r in runs["all"]) / statistics.median(
            r.cpu for r in runs["baseline"]
        )
        print(
            f"parity diff --samples all: {all_text}; ratio {every / base:.2f}x baseline (target <= 0.50x), "
            f"CPU ratio {cpu_ratio:.2f}x"
        )
    _, default_text = summary(runs["default"])
    print(f"parity diff (default, synthetic, cold): {default_text} (targets < 6 s, < 1500 MB)")
    imports = sorted(split[0] for split in splits)
    own = sorted(split[1] for split in splits)
    print(
        f"same, split in one process: importing every library module it uses {statistics.median(imports):.2f} s "
        f"({imports[0]:.2f}-{imports[-1]:.2f}), then parity's modules and work {statistics.median(own):.2f} s "
        f"({own[0]:.2f}-{own[-1]:.2f})"
    )
    if not args.skip_identity and not args.default_only:
        same, rows = identical_on_every_row(args.data)
        print(f"bit-identical input_ids and labels on every row: {same} ({rows} rows over both recipes)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cpu count: {os.cpu_count()}; load average at the end (1, 5, 15 min): {load}")


if __name__ == "__main__":
    main()
