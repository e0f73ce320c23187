"""Bad input through the installed `parity` console script: exit code 2 (1 for a failed check), exactly one
`parity: error:` line on stderr (notes aside), and no traceback anywhere; plus random recipes and templates.

Each case runs the installed script file in its own process with a timeout, cwd a fresh temporary directory.
The processes are forked from one that imported torch/transformers/TRL once (the import is most of a
command's start-up), so a hundred cases take about a minute; cases marked `fresh` start a new interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parity.errors import ParityError

SCRIPT = Path(sys.executable).parent / "parity"
REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 60.0
CHEAP_DIFF = ("--samples", "8", "--data", "synthetic:64:16", "--only", "config")
"""Options that keep a diff that gets past its input checks to a couple of seconds."""
GOOD_ROW = '{"question": "What is 2+2?", "answer": "2+2=<<2+2=4>>4\\n#### 4"}\n'
NESTED_LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@dataclass(frozen=True)
class Case:
    """One bad input: the arguments, files to create in the working directory, and what must come out."""

    id: str
    argv: tuple[str, ...]
    says: str = ""
    """Text the error line must contain."""
    files: dict[str, str | bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    code: int = 2
    env: dict[str, str] = field(default_factory=dict)
    fresh: bool = False
    """Start a new interpreter (for environment variables libraries read when imported)."""


def show(*overrides: str) -> tuple[str, ...]:
    args: list[str] = ["show", "revise", "--format", "json"]
    for override in overrides:
        args += ["--set", override]
    return tuple(args)


def diff_a(*overrides: str, extra: tuple[str, ...] = CHEAP_DIFF) -> tuple[str, ...]:
    args: list[str] = ["diff", "--a", "revise", "--b", "llmhalluc", *extra, "--out", "out"]
    for override in overrides:
        args += ["--set-a", override]
    return tuple(args)


def yaml_recipe(settings_: dict | None, extends: str | None = "revise", **top) -> str:
    doc: dict = dict(top)
    if extends is not None:
        doc["extends"] = extends
    if settings_ is not None:
        doc["set"] = settings_
    return yaml.safe_dump(doc, sort_keys=False)


def data_dir(train: str | bytes, test: str | bytes = GOOD_ROW) -> dict[str, str | bytes]:
    return {"d/train.jsonl": train, "d/test.jsonl": test}


def _symlink_loop(root: Path) -> None:
    (root / "loop").symlink_to(root / "loop")


def _lock_dir(root: Path) -> None:
    (root / "locks").mkdir()


RECIPE_VALUES = [
    Case(
        "batch-abc", show("training.per_device_train_batch_size=abc"), "per_device_train_batch_size = 'abc'"
    ),
    Case("batch-zero", show("training.per_device_train_batch_size=0"), "expected an integer from 1"),
    Case("batch-negative", show("training.per_device_train_batch_size=-1"), "= -1"),
    Case("batch-null", show("training.per_device_train_batch_size=null"), "= null"),
    Case("batch-fraction", show("training.per_device_train_batch_size=2.5"), "= 2.5"),
    Case("batch-huge", show("training.per_device_train_batch_size=1000000000000"), "1000000000000"),
    Case("batch-bool", show("training.per_device_train_batch_size=true"), "= true"),
    Case("batch-list", show("training.per_device_train_batch_size=[8]"), "per_device_train_batch_size"),
    Case("eval-batch-zero", show("training.per_device_eval_batch_size=0"), "per_device_eval_batch_size"),
    Case("accumulation-zero", show("training.gradient_accumulation_steps=0"), "gradient_accumulation_steps"),
    Case("lr-text", show("training.learning_rate=x"), "learning_rate = 'x'"),
    Case("lr-negative", show("training.learning_rate=-0.0001"), "expected a positive finite number"),
    Case("lr-zero", show("training.learning_rate=0"), "learning_rate = 0"),
    Case("lr-nan", show("training.learning_rate=.nan"), "learning_rate = nan"),
    Case("lr-inf", show("training.learning_rate=.inf"), "learning_rate = inf"),
    Case("epochs-zero", show("training.num_train_epochs=0"), "num_train_epochs = 0"),
    Case("epochs-negative", show("training.num_train_epochs=-1"), "num_train_epochs = -1"),
    Case("epochs-text", show("training.num_train_epochs=three"), "num_train_epochs"),
    Case("max-steps-zero", show("training.max_steps=0"), "max_steps = 0"),
    Case("max-steps-negative", show("training.max_steps=-5"), "max_steps = -5"),
    Case("max-steps-fraction", show("training.max_steps=1.5"), "max_steps = 1.5"),
    Case("seed-text", show("training.seed=abc"), "seed = 'abc'"),
    Case("seed-negative", show("training.seed=-1"), "seed = -1"),
    Case("seed-too-large", show("training.seed=99999999999"), "seed = 99999999999"),
    Case("warmup-negative", show("training.warmup_steps=-1"), "warmup_steps = -1"),
    Case("weight-decay-negative", show("training.weight_decay=-0.1"), "weight_decay"),
    Case("max-length-zero", show("training.max_length=0"), "max_length = 0"),
    Case("max-length-text", show("training.max_length=long"), "max_length"),
    Case("scheduler-typo", show("training.lr_scheduler_type=cosin"), "expected one of constant"),
    Case("eval-strategy-typo", show("training.eval_strategy=sometimes"), "eval_strategy"),
    Case("optim-typo", show("training.optim=adamw_torch_fusd"), "training.optim"),
    Case("bf16-text", show("training.bf16=maybe"), "bf16 = 'maybe'"),
    Case("report-to-number", show("training.report_to=5"), "report_to = 5"),
    Case("logging-steps-zero", show("training.logging_steps=0"), "logging_steps = 0"),
    Case("save-limit-zero", show("training.save_total_limit=0"), "save_total_limit = 0"),
    Case("beta-above-one", show("training.adam_beta2=1.5"), "adam_beta2"),
    Case("global-batch-zero", show("launch.global_batch=0"), "launch.global_batch = 0"),
    Case("global-batch-negative", show("launch.global_batch=-32"), "launch.global_batch = -32"),
    Case("global-batch-fraction", show("launch.global_batch=2.5"), "launch.global_batch"),
    Case("processes-zero", show("launch.num_processes=0"), "launch.num_processes"),
    Case("processes-text", show("launch.num_processes=many"), "launch.num_processes"),
    Case("deepspeed-stage", show("launch.deepspeed_stage=7"), "deepspeed_stage"),
    Case("patience-zero", show("launch.early_stopping_patience=0"), "early_stopping_patience"),
    Case("eval-fraction-one", show("data.eval_fraction=1"), "data.eval_fraction"),
    Case("eval-fraction-text", show("data.eval_fraction=half"), "data.eval_fraction"),
    Case("eval-from-typo", show("data.eval_from=validation"), "data.eval_from"),
    Case("split-seed-negative", show("data.split_seed=-1"), "data.split_seed"),
    Case("hub-path-empty", show("data.hub_path=''"), "data.hub_path"),
    Case("fewshot-negative", show("eval.num_fewshot=-1"), "eval.num_fewshot"),
    Case("strict-regex", show("eval.strict_regex='('"), "eval.strict_regex"),
    Case("flexible-regex", show("eval.flexible_regex='[0-9'"), "eval.flexible_regex"),
    Case("gold-regex", show("eval.gold_regex='(?P<'"), "eval.gold_regex"),
    Case("ignore-pattern", show("eval.ignore_patterns=['*']"), "eval.ignore_patterns[0]"),
    Case("peft-method", show("peft.method=qlora"), "peft.method"),
    Case("pad-token-empty", show("tokenizer.pad_token=''"), "tokenizer.pad_token"),
    Case("model-empty", show("model.name_or_path=''"), "model.name_or_path"),
    Case(
        "model-null",
        show("model.name_or_path=null"),
        "recipe 'revise' names no model: set model.name_or_path",
    ),
    Case(
        "yaml-names-no-model",
        ("show", "bare.yaml"),
        "recipe 'bare' names no model: set model.name_or_path",
        {"bare.yaml": yaml_recipe({"training.learning_rate": 1e-5}, extends=None)},
    ),
    Case("template-force-text", show("template.force=sometimes"), "template.force"),
    Case(
        "user-template-query", diff_a("prompt.user_template='{query}'"), "{query} is not a column of the rows"
    ),
    Case("user-template-no-placeholder", show("prompt.user_template='Solve it.'"), "{column} placeholder"),
    Case("instruction-placeholder", show("prompt.instruction='Use {format}.'"), "{format}"),
    Case("eval-prompt-placeholder", diff_a("eval.prompt='{query}'"), "eval.prompt: {query} is not a column"),
    Case("template-empty", show("template.chat_template=''"), "template.chat_template"),
    Case("template-spaces", show("template.chat_template='   '"), "empty"),
    Case("template-syntax", show("template.chat_template='{% for m in messages %}'"), "syntax error"),
    Case("lora-r-negative", ("show", "llmhalluc", "--set", "peft.lora.r=-1"), "peft.lora.r = -1"),
    Case("lora-alpha-zero", ("show", "llmhalluc", "--set", "peft.lora.lora_alpha=0"), "peft.lora.lora_alpha"),
    Case("lora-dropout", ("show", "llmhalluc", "--set", "peft.lora.lora_dropout=2"), "lora_dropout"),
    Case("lora-bias", ("show", "llmhalluc", "--set", "peft.lora.bias=some"), "peft.lora.bias"),
    Case("set-a-seed", diff_a("training.seed=abc"), "training.seed = 'abc'"),
    Case("set-a-epochs", diff_a("training.num_train_epochs=-1"), "num_train_epochs = -1"),
    Case("set-a-global-batch", diff_a("launch.global_batch=0"), "launch.global_batch = 0"),
]

OVERRIDE_SYNTAX = [
    Case("set-no-equals", show("training.seed"), "is not KEY=VALUE"),
    Case("set-unknown-key", show("training.learning_rat=1"), "did you mean 'training.learning_rate'"),
    Case("set-renamed-key", show("training.warmup_ratio=0.1"), "training.warmup_steps"),
    Case("set-section-only", show("training=1"), "names a section"),
    Case("set-upstream", show("upstream.repo=x"), "read-only"),
    Case("set-unknown-section", show("trainer.seed=1"), "unknown recipe key"),
    Case("set-preprocess-op", show("data.preprocess=[{op: delete}]"), "unknown op"),
    Case("set-preprocess-type", show("data.preprocess=5"), "data.preprocess"),
    Case("set-lora-unknown", ("show", "llmhalluc", "--set", "peft.lora.rank=8"), "unknown LoRA key"),
]

YAML_RECIPES = [
    Case(
        "yaml-batch-abc",
        ("show", "m.yaml"),
        "= 'abc'",
        {"m.yaml": yaml_recipe({"training.per_device_train_batch_size": "abc"})},
    ),
    Case(
        "yaml-batch-null",
        ("show", "m.yaml"),
        "= null",
        {"m.yaml": yaml_recipe({"training.per_device_train_batch_size": None})},
    ),
    Case(
        "yaml-lr-text",
        ("show", "m.yaml"),
        "learning_rate = 'x'",
        {"m.yaml": yaml_recipe({"training.learning_rate": "x"})},
    ),
    Case(
        "yaml-epochs-zero",
        ("show", "m.yaml"),
        "num_train_epochs = 0",
        {"m.yaml": yaml_recipe({"training.num_train_epochs": 0})},
    ),
    Case(
        "yaml-lora-rank",
        ("show", "m.yaml"),
        "peft.lora.r = -1",
        {"m.yaml": yaml_recipe({"peft.lora.r": -1}, extends="llmhalluc")},
    ),
    Case(
        "yaml-regex",
        ("show", "m.yaml"),
        "eval.flexible_regex",
        {"m.yaml": yaml_recipe({"eval.flexible_regex": "(["})},
    ),
    Case("yaml-malformed", ("show", "m.yaml"), "malformed YAML", {"m.yaml": "extends: revise\nset: [\n"}),
    Case("yaml-list", ("show", "m.yaml"), "expected a mapping", {"m.yaml": "- extends\n- revise\n"}),
    Case("yaml-empty", ("show", "m.yaml"), "expected a mapping", {"m.yaml": ""}),
    Case(
        "yaml-unknown-top",
        ("show", "m.yaml"),
        "unknown top-level key",
        {"m.yaml": "extends: revise\nsettings: {}\n"},
    ),
    Case("yaml-extends-number", ("show", "m.yaml"), "'extends' must be", {"m.yaml": "extends: 5\n"}),
    Case("yaml-extends-unknown", ("show", "m.yaml"), "unknown recipe", {"m.yaml": "extends: revize\n"}),
    Case("yaml-extends-missing-file", ("show", "m.yaml"), "not found", {"m.yaml": "extends: other.yaml\n"}),
    Case(
        "yaml-extends-cycle",
        ("show", "a.yaml"),
        "cycle",
        {"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"},
    ),
    Case("yaml-set-list", ("show", "m.yaml"), "'set' must map", {"m.yaml": "extends: revise\nset: [1, 2]\n"}),
    Case("yaml-not-utf8", ("show", "m.yaml"), "m.yaml", {"m.yaml": b"extends: revise\nname: \xff\xfe\n"}),
    Case(
        "yaml-is-directory", ("show", "dir.yaml"), "dir.yaml", setup=lambda root: (root / "dir.yaml").mkdir()
    ),
    Case("yaml-missing", ("show", "missing.yaml"), "not found"),
    Case(
        "yaml-no-extends-diff",
        ("diff", "--a", "m.yaml", "--b", "revise", *CHEAP_DIFF, "--out", "out"),
        "names no model",
        {"m.yaml": "set:\n  training.seed: 1\n"},
    ),
    Case(
        "yaml-template-null-diff",
        ("diff", "--a", "m.yaml", "--b", "revise", *CHEAP_DIFF, "--out", "out"),
        "chat template",
        {"m.yaml": yaml_recipe({"template.chat_template": None})},
    ),
    Case(
        "yaml-template-5mb",
        ("show", "m.yaml"),
        "more than the limit",
        {"m.yaml": yaml_recipe({"template.chat_template": "x" * 5_000_000})},
    ),
]

TEMPLATE_ONLY = ("--samples", "8", "--data", "synthetic:64:16", "--only", "template")
TEMPLATES = [
    Case(
        "tpl-raise",
        diff_a("template.chat_template=\"{{ raise_exception('no') }}\"", extra=TEMPLATE_ONLY),
        "no",
    ),
    Case(
        "tpl-undefined-attribute",
        diff_a(
            "template.chat_template='{% for m in messages %}{{ m.text }}{% endfor %}'", extra=TEMPLATE_ONLY
        ),
        "drops message content",
    ),
    Case(
        "tpl-undefined-deep",
        diff_a("template.chat_template='{{ messages[0].x.y }}'", extra=TEMPLATE_ONLY),
        "undefined",
    ),
    Case(
        "tpl-division",
        diff_a("template.chat_template='{{ 1 / 0 }}'", extra=TEMPLATE_ONLY),
        "division by zero",
    ),
    Case(
        "tpl-escape-class",
        diff_a("template.chat_template=\"{{ ''.__class__.__mro__ }}\"", extra=TEMPLATE_ONLY),
        "sandbox",
    ),
    Case(
        "tpl-escape-globals",
        diff_a("template.chat_template='{{ cycler.__init__.__globals__ }}'", extra=TEMPLATE_ONLY),
        "sandbox",
    ),
    Case(
        "tpl-nested-loop", diff_a(f"template.chat_template='{NESTED_LOOP}'", extra=TEMPLATE_ONLY), "took over"
    ),
    Case(
        "tpl-repeat-content",
        diff_a(
            "template.chat_template=\"{% for m in messages %}{{ m['content'] * 200000 }}{% endfor %}\"",
            extra=TEMPLATE_ONLY,
        ),
        "repeats a str",
    ),
    Case(
        "tpl-recursion",
        diff_a(
            "template.chat_template='{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}'", extra=TEMPLATE_ONLY
        ),
        "recursion",
    ),
    Case(
        "tpl-role-only",
        diff_a(
            "template.chat_template=\"{% for m in messages %}{{ m['role'] }}{% endfor %}\"",
            extra=TEMPLATE_ONLY,
        ),
        "drops message content",
    ),
    Case("tpl-null", diff_a("template.chat_template=null", extra=TEMPLATE_ONLY), "chat template"),
]

DATA = [
    Case(
        "data-not-utf8",
        diff_a(extra=("--data", "d", "--only", "config")),
        "d/train.jsonl:2: not UTF-8",
        data_dir(GOOD_ROW.encode() + b'{"question": "\xff", "answer": "x"}\n'),
    ),
    Case(
        "data-bad-json",
        diff_a(extra=("--data", "d", "--only", "config")),
        "train.jsonl:1: not valid JSON",
        data_dir("{question: 1}\n"),
    ),
    Case(
        "data-missing-answer",
        diff_a(extra=("--data", "d", "--only", "config")),
        "data.format input_output: the rows lack column(s) answer (they have question)",
        data_dir('{"question": "q"}\n'),
    ),
    Case(
        "data-number-answer",
        diff_a(extra=("--data", "d", "--only", "config")),
        "train.jsonl:1: expected a string in column 'answer'",
        data_dir('{"question": "q", "answer": 4}\n'),
    ),
    Case(
        "data-array-line",
        diff_a(extra=("--data", "d", "--only", "config")),
        "train.jsonl:1",
        data_dir('["q", "a"]\n'),
    ),
    Case(
        "data-deep-json",
        diff_a(extra=("--data", "d", "--only", "config")),
        "train.jsonl:1",
        data_dir("[" * 100_000 + "]" * 100_000 + "\n"),
    ),
    Case("data-empty-file", diff_a(extra=("--data", "d", "--only", "config")), "no rows", data_dir("")),
    Case(
        "data-missing-train",
        diff_a(extra=("--data", "d", "--only", "config")),
        "missing",
        {"d/test.jsonl": GOOD_ROW},
    ),
    Case(
        "data-one-row-holdout",
        diff_a(extra=("--data", "d", "--only", "config")),
        "data.eval_fraction 0.1 of 1 train row(s) leaves no train or no eval row",
        {"d/train.jsonl": GOOD_ROW},
    ),
    Case("data-missing-dir", diff_a(extra=("--data", "nowhere", "--only", "config")), "not a directory"),
    Case(
        "data-is-file",
        diff_a(extra=("--data", "f.txt", "--only", "config")),
        "not a directory",
        {"f.txt": "x"},
    ),
    Case(
        "data-train-is-dir",
        diff_a(extra=("--data", "d", "--only", "config")),
        "train.jsonl",
        {"d/test.jsonl": GOOD_ROW},
        setup=lambda root: (root / "d" / "train.jsonl").mkdir(),
    ),
    Case("data-synthetic-text", diff_a(extra=("--data", "synthetic:abc", "--only", "config")), "synthetic"),
    Case(
        "data-synthetic-negative", diff_a(extra=("--data", "synthetic:-1", "--only", "config")), "synthetic"
    ),
    Case(
        "data-synthetic-too-many",
        diff_a(extra=("--data", "synthetic:1:2:3:4", "--only", "config")),
        "synthetic",
    ),
    Case(
        "data-synthetic-zero",
        diff_a(extra=("--data", "synthetic:0:4", "--only", "config")),
        "no training rows",
    ),
    Case(
        "hub-offline",
        diff_a(extra=("--data", "hub", "--only", "config")),
        "--data hub",
        env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        fresh=True,
    ),
    Case(
        "hub-refused",
        diff_a(extra=("--data", "hub", "--only", "config")),
        "cannot connect",
        # online, whatever the calling environment says (CI runs with the hub variables set offline)
        env={
            "HF_ENDPOINT": "http://127.0.0.1:9",
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
        },
        fresh=True,
    ),
]

PATHS = [
    Case(
        "out-is-file",
        diff_a(extra=("--samples", "8", "--only", "config", "--data", "synthetic:64:16")),
        "out",
        {"out": "not a directory"},
    ),
    Case(
        "out-under-file",
        ("diff", "--a", "revise", "--b", "llmhalluc", *CHEAP_DIFF, "--out", "f/reports"),
        "f/reports",
        {"f": "x"},
    ),
    Case(
        "out-symlink-loop",
        ("diff", "--a", "revise", "--b", "llmhalluc", *CHEAP_DIFF, "--out", "loop/r"),
        "loop",
        setup=_symlink_loop,
    ),
    Case(
        "out-proc",
        ("diff", "--a", "revise", "--b", "llmhalluc", *CHEAP_DIFF, "--out", "/proc/parity-out"),
        "/proc/parity-out",
    ),
    Case(
        "out-dev-full",
        ("diff", "--a", "revise", "--b", "llmhalluc", *CHEAP_DIFF, "--out", "/dev/full"),
        "/dev/full",
    ),
    Case(
        "lock-to-directory",
        (
            "lock",
            "--a",
            "revise",
            "--b",
            "llmhalluc",
            "--data",
            "synthetic:64:16",
            "--examples",
            "1",
            "-o",
            "locks",
        ),
        "locks",
        setup=_lock_dir,
    ),
    Case(
        "lock-under-file",
        (
            "lock",
            "--a",
            "revise",
            "--b",
            "llmhalluc",
            "--data",
            "synthetic:64:16",
            "--examples",
            "1",
            "-o",
            "f/parity.lock",
        ),
        "f/parity.lock",
        {"f": "x"},
    ),
    Case(
        "lock-to-proc",
        (
            "lock",
            "--a",
            "revise",
            "--b",
            "llmhalluc",
            "--data",
            "synthetic:64:16",
            "--examples",
            "1",
            "-o",
            "/proc/parity.lock",
        ),
        "/proc/parity.lock",
    ),
    Case("check-missing", ("check", "--lock", "none.lock"), "not found"),
    Case("check-directory", ("check", "--lock", "locks"), "locks", setup=_lock_dir),
    Case("check-malformed", ("check", "--lock", "p.lock"), "not a valid lock", {"p.lock": "pair: [\n"}),
    Case("check-empty", ("check", "--lock", "p.lock"), "not a valid lock", {"p.lock": ""}),
    Case("check-list", ("check", "--lock", "p.lock"), "not a valid lock", {"p.lock": "- 1\n- 2\n"}),
    Case("check-binary", ("check", "--lock", "p.lock"), "not a valid lock", {"p.lock": b"\x00\xff\xfe\x00"}),
    Case(
        "check-missing-keys",
        ("check", "--lock", "p.lock"),
        "not a valid lock",
        {"p.lock": "schema_version: 1\npair: {a: revise}\n"},
    ),
]

OPTIONS = [
    Case("unknown-recipe", ("show", "revize"), "did you mean 'revise'"),
    Case("show-format", ("show", "revise", "--format", "xml"), "--format"),
    Case("show-world-size-zero", ("show", "revise", "--world-size", "0"), "world-size"),
    Case("show-world-size-text", ("show", "revise", "--world-size", "eight"), "world-size"),
    Case("diff-missing-b", ("diff", "--a", "revise"), "--b"),
    Case("diff-unknown-recipe", ("diff", "--a", "revise", "--b", "nope", *CHEAP_DIFF), "unknown recipe"),
    Case("diff-only-unknown", ("diff", "--a", "revise", "--b", "llmhalluc", "--only", "tokenz"), "tokenz"),
    Case("diff-samples-zero", ("diff", "--a", "revise", "--b", "llmhalluc", "--samples", "0"), "--samples"),
    Case(
        "diff-samples-text", ("diff", "--a", "revise", "--b", "llmhalluc", "--samples", "many"), "--samples"
    ),
    Case("diff-fail-on", ("diff", "--a", "revise", "--b", "llmhalluc", "--fail-on", "critical"), "--fail-on"),
    Case("diff-format", ("diff", "--a", "revise", "--b", "llmhalluc", "--format", "pdf"), "--format"),
    Case(
        "diff-show-example-negative",
        ("diff", "--a", "revise", "--b", "llmhalluc", *CHEAP_DIFF, "--show-example", "-1"),
        "show-example",
    ),
    Case(
        "diff-show-example-too-large",
        (
            "diff",
            "--a",
            "revise",
            "--b",
            "llmhalluc",
            "--samples",
            "8",
            "--data",
            "synthetic:64:16",
            "--only",
            "loss_mask",
            "--show-example",
            "99999",
            "--out",
            "out",
        ),
        "show-example",
    ),
    Case(
        "diff-world-size-zero",
        ("diff", "--a", "revise", "--b", "llmhalluc", "--world-size", "0"),
        "world-size",
    ),
    Case("unknown-command", ("frobnicate",), "frobnicate"),
    Case("unknown-option", ("show", "revise", "--colour"), "--colour"),
    Case("refs-unknown", ("refs", "verify", "--ref", "nope", "--checkout", "."), "nope"),
    Case("refs-missing-checkout", ("refs", "verify", "--ref", "revise", "--checkout", "missing"), "missing"),
    Case(
        "run-max-steps-zero", ("run", "--a", "revise", "--b", "llmhalluc", "--max-steps", "0"), "--max-steps"
    ),
    Case(
        "run-max-steps-text", ("run", "--a", "revise", "--b", "llmhalluc", "--max-steps", "ten"), "max-steps"
    ),
    Case("run-epochs-negative", ("run", "--a", "revise", "--b", "llmhalluc", "--epochs", "-1"), "--epochs"),
    Case(
        "run-samples-negative", ("run", "--a", "revise", "--b", "llmhalluc", "--samples", "-3"), "--samples"
    ),
    Case(
        "run-micro-batch-zero",
        ("run", "--a", "revise", "--b", "llmhalluc", "--micro-batch", "0"),
        "micro-batch",
    ),
    Case("run-to", ("run", "--a", "revise", "--b", "llmhalluc", "--to", "c"), "--to"),
    Case(
        "run-align-unknown",
        ("run", "--a", "revise", "--b", "llmhalluc", "--align", "everything"),
        "everything",
    ),
    Case(
        "run-bad-recipe-value",
        ("run", "--a", "revise", "--b", "llmhalluc", "--set-a", "training.learning_rate=-1"),
        "learning_rate",
    ),
    Case(
        "fail-on-high",
        (
            "diff",
            "--a",
            "revise",
            "--b",
            "llmhalluc",
            "--samples",
            "8",
            "--data",
            "synthetic:64:16",
            "--only",
            "batch",
            "--fail-on",
            "high",
            "--out",
            "out",
        ),
        "high",
        code=1,
    ),
]

CASES = RECIPE_VALUES + OVERRIDE_SYNTAX + YAML_RECIPES + TEMPLATES + DATA + PATHS + OPTIONS

FORK_SERVER = textwrap.dedent(
    """
    import json, os, runpy, signal, sys, time, traceback
    import parity.cli, parity.diff, parity.lock, parity.materialize, parity.report, trl, peft, datasets
    script = sys.argv[1]
    print("ready", flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.chdir(job["cwd"])
                os.environ.update(job["env"])
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                for fd, name in ((1, "stdout"), (2, "stderr")):
                    os.dup2(os.open(job[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644), fd)
                sys.argv = [script, *job["argv"]]
                runpy.run_path(script, run_name="__main__")
                os._exit(0)
            except SystemExit as end:
                os._exit(end.code if isinstance(end.code, int) else 1)
            except BaseException:
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(99)
        deadline = time.monotonic() + job["timeout"]
        code = None
        while code is None:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                code = "timeout"
            else:
                time.sleep(0.01)
        print(json.dumps({"code": code}), flush=True)
    """
)


class Runner:
    """Runs the installed console script in a child process forked from a pre-imported interpreter."""

    def __init__(self) -> None:
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "80", "TERM": "dumb"}
        self.server = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER, str(SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        assert self.server.stdout.readline().strip() == "ready"

    def run(
        self, argv: tuple[str, ...], cwd: Path, env: dict[str, str], fresh: bool
    ) -> tuple[object, str, str]:
        out, err = cwd.parent / f"{cwd.name}.stdout", cwd.parent / f"{cwd.name}.stderr"
        if fresh:
            try:
                done = subprocess.run(
                    [str(SCRIPT), *argv],
                    cwd=cwd,
                    env={**self.env, **env},
                    capture_output=True,
                    text=True,
                    timeout=TIMEOUT,
                    errors="replace",
                )
            except subprocess.TimeoutExpired:
                return "timeout", "", ""
            return done.returncode, done.stdout, done.stderr
        job = {"argv": list(argv), "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
        self.server.stdin.write(json.dumps({**job, "timeout": TIMEOUT}) + "\n")
        self.server.stdin.flush()
        code = json.loads(self.server.stdout.readline())["code"]
        read = lambda p: p.read_text(encoding="utf-8", errors="replace") if p.exists() else ""  # noqa: E731
        return code, read(out), read(err)

    def close(self) -> None:
        self.server.stdin.close()
        self.server.wait(timeout=30)


@pytest.fixture(scope="module")
def runner():
    started = Runner()
    yield started
    started.close()


def test_at_least_a_hundred_cases():
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_and_exit_2(case: Case, runner: Runner, tmp_path: Path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    for name, content in case.files.items():
        path = cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if case.setup:
        case.setup(cwd)
    code, out, err = runner.run(case.argv, cwd, case.env, case.fresh)
    assert "Traceback" not in out + err, err[-3000:]
    errors = [line for line in err.splitlines() if not line.startswith("parity: note:")]
    assert code == case.code, f"exit {code}; stderr: {err[-2000:]}"
    assert len(errors) == 1, f"expected one line on stderr, got {len(errors)}: {errors[:5]}"
    assert errors[0].startswith("parity: "), errors[0]
    assert case.says in errors[0], errors[0]


RANDOM_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**13), max_value=10**13),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
RANDOM_KEYS = st.sampled_from(
    [
        "training.per_device_train_batch_size",
        "training.learning_rate",
        "training.num_train_epochs",
        "training.max_steps",
        "training.seed",
        "training.max_length",
        "training.warmup_steps",
        "training.lr_scheduler_type",
        "training.bf16",
        "training.report_to",
        "training.eval_steps",
        "training.completion_only_loss",
        "launch.global_batch",
        "launch.num_processes",
        "launch.deepspeed_stage",
        "data.eval_fraction",
        "data.eval_from",
        "data.preprocess",
        "prompt.user_template",
        "prompt.instruction",
        "eval.strict_regex",
        "eval.ignore_patterns",
        "eval.num_fewshot",
        "template.chat_template",
        "template.force",
        "peft.method",
        "peft.lora.r",
        "peft.lora.lora_alpha",
        "peft.lora.target_modules",
    ]
)
TEMPLATE_PIECES = st.sampled_from(
    [
        "{% for m in messages %}",
        "{% endfor %}",
        "{{ m['content'] }}",
        "{{ m['role'] }}",
        "{{ eos_token }}",
        "{% if add_generation_prompt %}",
        "{% endif %}",
        "{{ m.content | trim }}",
        "{{ raise_exception('x') }}",
        "{{ 1 / 0 }}",
        "{{ m.missing.deeper }}",
        "<|user|>\n",
        "{{",
        "}}",
        "{% set ns = namespace(n=0) %}",
        "{{ messages | length }}",
        "{{ range(3) | list }}",
        "{{ ''.__class__ }}",
        " ",
    ]
)


@pytest.fixture(scope="module")
def llmhalluc_recipe():
    from parity.registry import resolve_recipe

    return resolve_recipe("llmhalluc")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(RANDOM_KEYS, RANDOM_VALUES), min_size=1, max_size=3))
def test_random_recipe_values_raise_parity_error_or_validate(llmhalluc_recipe, assignments):
    from parity.overrides import apply_override
    from parity.plan import resolve
    from parity.validate import validate_recipe

    recipe = llmhalluc_recipe.copy()
    try:
        for key, value in assignments:
            apply_override(recipe, key, value)
        resolve(validate_recipe(recipe), world_size=1)
    except ParityError as err:
        assert "\n" not in str(err)


@settings(max_examples=80, deadline=None)
@given(st.lists(TEMPLATE_PIECES, min_size=0, max_size=8).map("".join))
def test_random_templates_raise_parity_error_or_render(template):
    from parity.render import check_conversations

    messages = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
    try:
        check_conversations("random", template, [messages], {"eos_token": "</s>"}, ["{question}"])
    except ParityError as err:
        assert "\n" not in str(err)


def test_jsonl_line_that_is_not_utf8_names_file_and_line(tmp_path):
    from parity.data.sources import _read_jsonl

    path = tmp_path / "train.jsonl"
    path.write_bytes(GOOD_ROW.encode() * 2 + b'{"question": "caf\xe9", "answer": "1"}\n')
    with pytest.raises(ParityError, match=r"train.jsonl:3: not UTF-8 text \(byte 18 of the line\)"):
        _read_jsonl(path)


def test_hub_offline_variable_and_refused_connection(monkeypatch):
    from parity.data.sources import hub_offline_variable, hub_unreachable

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "true")
    assert hub_offline_variable() == "HF_DATASETS_OFFLINE"
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    assert hub_offline_variable() is None
    assert (
        hub_unreachable("http://127.0.0.1:9", seconds=2)
        == "cannot connect to 127.0.0.1:9 (Connection refused)"
    )


def test_rows_far_beyond_max_length_warn_once():
    import logging

    from parity.data.sources import long_rows, warn_long_rows

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    rows = [{"question": "q" * 10_000_000, "answer": "a"}, {"question": "q", "answer": "a"}]
    assert long_rows(rows, 1024) == [0]
    assert long_rows(rows, 10**6) == []
    messages: list[str] = []
    handler = Collect(logging.WARNING)
    logging.getLogger("parity").addHandler(handler)
    try:
        warn_long_rows("local:big", rows, 1024)
        warn_long_rows("local:big", rows, 1024)
    finally:
        logging.getLogger("parity").removeHandler(handler)
    assert messages == [
        "local:big: 1 row(s) far beyond max_length 1024 tokens (first: row 0, longest 10,000,001 characters); "
        "they are tokenized whole, then truncated"
    ]
