"""Benchmark `parity diff` of two captured recipes of 512 rows: a plain TRL script for a small Qwen3-architecture
chat model (conversational prompt/completion rows with a system prompt, LoRA r=8 all-linear), captured with the real
Qwen tokenizer, against the same script without the system prompt, max_length 128, lr 1e-4 and r=16.

Target: the diff (a cold `parity diff` process, every probe) in at most 8 s on the 2-CPU machine. The captures are
taken first (cached by content: only the first run pays for them) and are not part of the timing.
Run: python benchmarks/capture_diff_bench.py [--repeat 5] [--rows 512]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
TARGET_S = 8.0
MODEL_ID = "own-org/qwen3-chat-small"
"""The model id the script asks for; --tokenizer serves it from a folder of our own config and the Qwen tokenizer."""

SCRIPT = (
    '''"""A plain TRL chat SFT script: system prompt, conversational prompt/completion rows, LoRA r=8 all-linear."""
import os

from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

SYSTEM = os.environ.get("SYSTEM_PROMPT")


def conversation(row):
    prompt = [{"role": "system", "content": SYSTEM}] if SYSTEM else []
    prompt.append({"role": "user", "content": row["question"]})
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": row["answer"]}]}


if __name__ == "__main__":
    dataset = load_dataset("bench/chat")["train"].map(conversation, remove_columns=["question", "answer"])
    model_id = "'''
    + MODEL_ID
    + """"
    tokenizer = AutoTokenizer.from_pretrained(model_id)
    model = AutoModelForCausalLM.from_pretrained(model_id)
    args = SFTConfig(
        output_dir="outputs",
        max_length=int(os.environ.get("MAX_LENGTH", "1024")),
        learning_rate=float(os.environ.get("LR", "2e-5")),
        report_to="none",
    )
    lora = LoraConfig(r=int(os.environ.get("RANK", "8")), lora_alpha=16, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=lora).train()
"""
)
VARIANTS = {
    "a": {"SYSTEM_PROMPT": "You are a careful math tutor."},
    "b": {"MAX_LENGTH": "128", "LR": "1e-4", "RANK": "16"},
}


def qwen_tokenizer_dir() -> Path:
    from tests.model_fixtures import FAMILIES

    return FAMILIES["qwen"].tokenizer_dir()


def prepare(root: Path, rows: int) -> tuple[Path, Path, Path]:
    """The script's checkout, its data folder (the first `rows` GSM8K train rows) and the model folder (our config,
    the Qwen tokenizer's files)."""
    checkout, data, model = root / "checkout", root / "data", root / "model"
    checkout.mkdir()
    (checkout / "train.py").write_text(SCRIPT)
    data.mkdir()
    with GSM8K.open() as source:
        lines = [next(source) for _ in range(rows)]
    (data / "train.jsonl").write_text("".join(lines))
    shutil.copytree(qwen_tokenizer_dir(), model)
    for name in ("config.json", "generation_config.json"):
        shutil.copy(REPO / "tests" / "fixtures" / "models" / "qwen3-chatml" / name, model / name)
    return checkout, data, model


def capture(root: Path, name: str, checkout: Path, data: Path, model: Path) -> Path:
    out = root / f"capture-{name}"
    env = [f"--env={key}={value}" for key, value in VARIANTS[name].items()]
    command = [
        str(REPO / ".venv" / "bin" / "parity"),
        "capture",
        "--checkout",
        str(checkout),
        "--out",
        str(out),
        "--data",
        f"bench/chat={data}",
        "--tokenizer",
        f"{MODEL_ID}={model}",
        "--world-size",
        "1",
        *env,
        "--",
        "python",
        "train.py",
    ]
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True, text=True)
    print(f"captured {name} in {time.monotonic() - started:.1f} s")
    return out


def timed_diff(a: Path, b: Path, out: Path) -> tuple[float, dict]:
    command = [str(REPO / ".venv" / "bin" / "parity"), "diff", "--a", f"capture:{a}", "--b", f"capture:{b}"]
    started = time.monotonic()
    done = subprocess.run([*command, "--out", str(out), "--format", "json"], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"diff failed: {done.stderr.strip()}")
    return seconds, json.loads((out / "report.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--keep", metavar="DIR", help="Capture into DIR and keep it (reused when present).")
    options = parser.parse_args()
    root = Path(options.keep) if options.keep else Path(tempfile.mkdtemp(prefix="parity-capture-diff-bench-"))
    try:
        root.mkdir(parents=True, exist_ok=True)
        checkout, data, model = (
            (root / "checkout", root / "data", root / "model")
            if (root / "checkout").is_dir()
            else prepare(root, options.rows)
        )
        a, b = (capture(root, name, checkout, data, model) for name in ("a", "b"))
        timed_diff(a, b, root / "warm-up")
        times, report = [], {}
        for index in range(options.repeat):
            seconds, report = timed_diff(a, b, root / f"diff-{index}")
            times.append(seconds)
        median = statistics.median(times)
        print(
            f"rows {options.rows}: findings {len(report['findings'])}, high {[f['key'] for f in report['findings'] if f['severity'] == 'high']}"
        )
        print(
            f"diff of two captures: median {median:.2f} s (min {min(times):.2f}, max {max(times):.2f}, "
            f"{options.repeat} runs), load average {os.getloadavg()[0]:.1f}; target {TARGET_S:.0f} s: "
            f"{median / TARGET_S:.2f}x of the target"
        )
    finally:
        if not options.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
