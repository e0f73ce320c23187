"""The fixture matrix: every probe over three model families (Llama 3.2 with its packaged tokenizer, a Qwen3 ChatML
model with the real Qwen tokenizer, a Phi-3 model whose LoRA targets are named `qkv_proj`/`gate_up_proj`) times six
row formats (messages, conversational prompt/completion, Alpaca, ShareGPT, plain text, pre-tokenized).

In every cell an identical pair gives no high or medium finding, and each planted difference (system prompt, EOS,
max length, LoRA rank, chat template) gives its own finding and no high finding that another axis would align; the
LoRA counts equal `peft.get_peft_model` on the family's own config, and no Llama id, vocabulary or class appears in
a report about another family's model."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest
from model_fixtures import overrides as family_overrides
from test_row_formats import PLAIN, write_data

from parity.diff import DiffReport, diff_materialized
from parity.materialize import Materialized, materialize
from parity.probes import ProbeContext
from parity.registry import resolve_recipe
from parity.tokenizer import load_tokenizer

FAMILIES = ("llama", "qwen", "phi3")
FORMATS = ("messages", "prompt_completion", "alpaca", "sharegpt", "text", "tokenized")
CHAT_FORMATS = ("messages", "prompt_completion", "alpaca", "sharegpt")
LORA = [
    "peft.method=lora",
    "peft.lora={r: 8, lora_alpha: 16, target_modules: all-linear, task_type: CAUSAL_LM}",
]
LORA_TRAINABLE = {"llama": 5_636_096, "qwen": 5_046_272, "phi3": 262_144}
"""LoRA r=8 all-linear trainable parameters, as peft.get_peft_model counts them on each family's config
(tests/test_models.py computes each with peft directly)."""
MARKER_TEMPLATE = (
    "{% for m in messages %}{{ '### ' + m['role'] + ': ' + m['content'] + '\\n' }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '### assistant: ' }}{% endif %}"
)
"""A chat template of our own making, different from every family's (planted template)."""
OTHER_EOS = {"llama": "<|eot_id|>", "qwen": "<|endoftext|>", "phi3": "<|eot_id|>"}
"""An SFTConfig.eos_token other than the tokenizer's EOS, in each family's vocabulary (planted EOS)."""

PLANTS: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    # plant: (formats it applies to, align axis, expected finding key, its severity)
    "system_prompt": (CHAT_FORMATS, "prompt", "prompt.system", "high"),
    "eos": (FORMATS, "eos", "training.eos_token", "high"),
    "max_length": (FORMATS, "tokens", "training.max_length", "medium"),
    "lora_rank": (FORMATS, "peft", "peft.lora.r", "high"),
    "template": (CHAT_FORMATS, "template", "template.chat_template", "high"),
}


def plant_overrides(plant: str, family: str) -> list[str]:
    return {
        "system_prompt": ["prompt.system='You are a careful tutor.'"],
        "eos": [f"training.eos_token='{OTHER_EOS[family]}'"],
        "max_length": ["training.max_length=24"],
        "lora_rank": ["peft.lora.r=16"],
        "template": ["template.force=true", f"template.chat_template={json.dumps(MARKER_TEMPLATE)}"],
    }[plant]


def exchanges(count: int) -> list[tuple[str, str]]:
    return [(f"What is {i} plus {i + 3}?", f"{i} plus {i + 3} is {2 * i + 3}.") for i in range(count)]


def rows(fmt: str, count: int, tokenizer) -> list[dict]:
    """`count` rows of one format, all carrying the same question/answer pairs."""
    out = []
    for question, answer in exchanges(count):
        if fmt == "messages":
            out.append(
                {
                    "messages": [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": answer},
                    ]
                }
            )
        elif fmt == "prompt_completion":
            out.append(
                {
                    "prompt": [{"role": "user", "content": question}],
                    "completion": [{"role": "assistant", "content": answer}],
                }
            )
        elif fmt == "alpaca":
            out.append({"instruction": "Add the numbers.", "input": question, "output": answer})
        elif fmt == "sharegpt":
            out.append(
                {"conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]}
            )
        elif fmt == "text":
            out.append({"text": f"{question} {answer}"})
        else:  # pre-tokenized with the family's own tokenizer: the question carries no loss
            prompt = tokenizer(question)["input_ids"]
            full = tokenizer(f"{question} {answer}")["input_ids"] + [tokenizer.eos_token_id]
            out.append({"input_ids": full, "labels": [-100] * len(prompt) + full[len(prompt) :]})
    return out


def base_overrides(family: str) -> list[str]:
    return [*PLAIN, *family_overrides(family), *LORA]


@cache
def data_dir(root: Path, family: str, fmt: str) -> str:
    tokenizer, _ = load_tokenizer(resolve_recipe("revise", base_overrides(family)))
    return write_data(root / f"{family}-{fmt}", rows(fmt, 12, tokenizer), rows(fmt, 3, tokenizer))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("matrix")


_bases: dict[tuple[str, str], Materialized] = {}


def cell(root: Path, family: str, fmt: str, extra: list[str] = ()) -> tuple[Materialized, Materialized]:
    """The cell's base recipe (materialized once per module) and the same recipe with `extra` overrides."""
    data = data_dir(root, family, fmt)
    if (family, fmt) not in _bases:
        _bases[family, fmt] = materialize(
            resolve_recipe("revise", base_overrides(family)), data=data, samples=6
        )
    planted = materialize(resolve_recipe("revise", [*base_overrides(family), *extra]), data=data, samples=6)
    return _bases[family, fmt], planted


def serious(report: DiffReport) -> list[tuple[str, str, str | None]]:
    return [(f.severity, f.key, f.align) for f in report.findings if f.severity in ("high", "medium")]


LLAMA_FACTS = {"128000": "BOS id", "128001": "EOS id", "128256": "vocabulary", "LlamaForCausalLM": "class"}


def llama_facts_in(report: DiffReport, family: str) -> list[str]:
    """Llama-3.2-1B facts found in a report about another family (the Phi-3 fixture uses the Llama tokenizer,
    so its BOS/EOS ids are its own facts; its vocabulary and class are not Llama's)."""
    allowed = {"llama": set(LLAMA_FACTS), "qwen": set(), "phi3": {"128000", "128001"}}[family]
    text = json.dumps(report.to_dict())
    return [
        what for fact, what in LLAMA_FACTS.items() if fact not in allowed and re.search(rf"\b{fact}\b", text)
    ]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("family", FAMILIES)
def test_an_identical_pair_gives_no_high_or_medium_finding(root, family, fmt):
    report = diff_materialized(*cell(root, family, fmt), context=ProbeContext())
    assert serious(report) == []
    assert [f.key for f in report.findings if f.key.endswith("probe_failed")] == []
    assert report.probes["peft"]["a"]["trainable_params"] == LORA_TRAINABLE[family]
    assert llama_facts_in(report, family) == []


PLANTED_CELLS = [
    (family, fmt, plant)
    for family in FAMILIES
    for fmt in FORMATS
    for plant, (formats, *_) in PLANTS.items()
    if fmt in formats
]


@pytest.mark.parametrize(("family", "fmt", "plant"), PLANTED_CELLS)
def test_a_planted_difference_gives_its_axis_and_no_other_high_finding(root, family, fmt, plant):
    _, align, key, severity = PLANTS[plant]
    report = diff_materialized(
        *cell(root, family, fmt, plant_overrides(plant, family)), context=ProbeContext()
    )
    found = {(f.key, f.severity, f.align) for f in report.findings}
    assert (key, severity, align) in found
    assert [f for f in serious(report) if f[0] == "high" and f[2] != align] == []
    assert [f.key for f in report.findings if f.key.endswith("probe_failed")] == []
    assert llama_facts_in(report, family) == []
    if plant == "lora_rank":
        peft = report.probes["peft"]
        assert (peft["a"]["trainable_params"], peft["b"]["trainable_params"]) == (
            LORA_TRAINABLE[family],
            2 * LORA_TRAINABLE[family],
        )
