"""`parity diff` and `parity show` of captured framework recipes: the same GSM8K LoRA recipe captured under TRL,
LLaMA-Factory and Axolotl (tests/framework_recipes.py, 64 of its 512 rows served), every pair and each against
itself, each framework's prompt-trained / truncation / template variant against its base, and TRL's R1-distill
template against LLaMA-Factory's `deepseekr1` on s1K-shaped rows (Qwen tokenizer)."""

from __future__ import annotations

import json
from itertools import combinations

import pytest
from framework_recipes import (
    BOS,
    DOUBLE_NEWLINE,
    EOS,
    ROWS,
    SERVED,
    VARIANTS,
    captured,
    captured_reasoning,
    captures_root,
    gsm8k_rows,
    needs_gsm8k,
    ref,
)

from parity.cli import main
from parity.diff import run_diff
from parity.materialize import materialize
from parity.registry import resolve_recipe

pytestmark = needs_gsm8k
FRAMEWORKS = ("trl", "llamafactory", "axolotl")
ALPACA_SYSTEM = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
SAMPLES = 64


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict:
    """Each framework's base recipe (world sizes 1 and 2) and its variants (world size 1), by (framework, variant)."""
    root = captures_root(tmp_path_factory)
    found = {(name, "base"): captured(root, name, world_sizes=(1, 2)) for name in FRAMEWORKS}
    return found


@pytest.fixture(scope="module")
def diffs(captures) -> dict:
    """The diff of every ordered pair of the three base recipes (each against itself included), computed once."""
    cache: dict = {}

    def get(a: str, b: str):
        if (a, b) not in cache:
            cache[a, b] = run_diff(ref(captures[a, "base"]), ref(captures[b, "base"]), samples=SAMPLES)
        return cache[a, b]

    return get


def by_key(report) -> dict:
    return {f.key: f for f in report.findings}


def probe_values(report, axis: str) -> dict:
    return report.probes[axis]


def high_keys(report) -> set[str]:
    return {f.key for f in report.findings if f.severity == "high"}


FALSE_FINDINGS = {
    "special_tokens.untrained_emitted",
    "special_tokens.frozen_untrained",
    "eos.generation_stops",
    "eos.completion_end",
    "loss_mask.eos_trained",
    "data.train",
    "data.preprocess",
    "training.max_length",
    "training.completion_only_loss",
    "bos.render_then_tokenize",
}
"""What the padded, pre-tokenized rows and TRL defaults used to make up: never a finding between these recipes."""


@pytest.mark.parametrize(("a", "b"), [*combinations(FRAMEWORKS, 2), *((name, name) for name in FRAMEWORKS)])
def test_every_pair_runs_every_probe_without_false_findings(diffs, a, b):
    report = diffs(a, b)
    assert not [f.key for f in report.findings if f.key.endswith("probe_failed")]
    assert set(report.probes) >= {
        "data",
        "prompt",
        "template",
        "tokens",
        "loss_mask",
        "padding",
        "bos",
        "eos",
    }
    assert FALSE_FINDINGS.isdisjoint(by_key(report))
    assert not [f.key for f in report.findings if f.axis == "peft"]
    if a == b:
        assert [(f.key, f.severity) for f in report.findings] == [("eval.not_captured", "info")]
    else:  # both train 5,636,096 LoRA parameters: target_parameters None vs [] and fan_in_fan_out None are no finding
        peft = probe_values(report, "peft")
        assert peft["a"]["trainable_params"] == peft["b"]["trainable_params"] == 5_636_096


def test_trl_against_llamafactory_finds_the_alpaca_prompt_missing_bos_and_trained_newlines(diffs):
    report = diffs("trl", "llamafactory")
    findings = by_key(report)
    question = gsm8k_rows()[0]["question"]
    prompt = findings["prompt.user_message"]
    assert (prompt.severity, prompt.a) == ("high", question)
    assert prompt.b == f"{ALPACA_SYSTEM}\n\n### Instruction:\n{question}\n\n### Response:\n"
    assert "wraps the other's message in 'Below is an instruction that describes a task." in prompt.summary
    bos = findings["loss_mask.bos"]
    assert (bos.severity, bos.a, bos.b) == ("medium", True, False)
    assert probe_values(report, "bos")["a"]["leading_bos"] == {"1": SAMPLES}
    assert probe_values(report, "bos")["b"]["leading_bos"] == {"0": SAMPLES}
    trailing = findings["eos.trailing"]
    assert (trailing.severity, trailing.a, trailing.b) == ("low", [], ["ĊĊ"])
    eos = probe_values(report, "eos")
    assert (eos["a"]["end_token_id"], eos["b"]["end_token_id"]) == (EOS, EOS)
    assert eos["b"]["trailing_ids"] == [DOUBLE_NEWLINE] and eos["b"]["examples_with_trailing"] == SAMPLES
    dtype = findings["model.torch_dtype"]
    assert (dtype.axis, dtype.severity, dtype.a, dtype.b) == ("precision", "medium", "float32", "auto")
    # LLaMA-Factory's arguments say False; it checkpoints on the model, as TRL's default does
    assert "training.gradient_checkpointing" not in findings
    # the same questions and answers: LLaMA-Factory's examples are paired with its loaded Alpaca rows
    assert "data.train" not in findings and "data.preprocess" not in findings
    assert (
        probe_values(report, "data")["a"]["train_text_digest"]
        == probe_values(report, "data")["b"]["train_text_digest"]
    )
    content = probe_values(report, "content")
    assert content["b"]["examples_checked"] == SAMPLES and content["b"]["loss"]["dropped_chars"] == 0


def test_trl_against_axolotl_finds_the_prompt_dtype_and_the_pre_shuffle(diffs):
    report = diffs("trl", "axolotl")
    findings = by_key(report)
    assert findings["prompt.user_message"].severity == "high"
    assert findings["prompt.user_message"].b.startswith(ALPACA_SYSTEM + "\n\n### Instruction:\n")
    dtype = findings["model.torch_dtype"]
    assert (dtype.severity, dtype.a, dtype.b) == ("medium", "float32", "bfloat16")
    assert "loss_mask.bos" not in findings  # both start with BOS 128000
    assert probe_values(report, "bos")["b"]["leading_bos"] == {"1": SAMPLES}
    shuffle = findings["data_order.pre_shuffle"]
    assert (shuffle.severity, shuffle.a) == ("low", "none")
    assert shuffle.b == f"shuffle(seed=42) of {SERVED} rows by axolotl.utils.data.shared.merge_datasets"
    order = findings["data_order.first_batches"]
    values = probe_values(report, "data_order")
    assert values["a"]["loaded_rows_drawn"] == values["a"]["batches"]  # TRL's rows are in load order
    assert (
        values["b"]["batches"] == values["a"]["batches"]
    )  # the same sampler and seed draw the same indices ...
    assert values["b"]["loaded_rows_drawn"] != values["b"]["batches"]  # ... of rows Axolotl shuffled before
    assert order.a == values["a"]["loaded_rows_drawn"][0]
    peft = probe_values(report, "peft")
    assert (peft["a"]["lora"]["target_parameters"], peft["b"]["lora"]["target_parameters"]) == (None, [])
    assert peft["b"]["lora"]["fan_in_fan_out"] is None


def test_llamafactory_against_axolotl_differs_in_bos_newlines_and_order_not_prompt(diffs):
    report = diffs("llamafactory", "axolotl")
    findings = by_key(report)
    assert not [key for key in findings if key.startswith("prompt.")]  # the same Alpaca text
    assert (findings["loss_mask.bos"].a, findings["loss_mask.bos"].b) == (False, True)
    assert (findings["eos.trailing"].a, findings["eos.trailing"].b) == (["ĊĊ"], [])
    assert "data_order.pre_shuffle" in findings
    dtype = findings["model.torch_dtype"]  # 'auto' loads the checkpoint's bfloat16: no difference in training
    assert (dtype.severity, dtype.a, dtype.b) == ("info", "auto", "bfloat16")
    checkpointing = findings["training.gradient_checkpointing"]
    assert (checkpointing.a, checkpointing.b) == (True, False)
    tokens = findings["tokens.example"]
    assert tokens.evidence["ops"][0]["b_ids"] == [BOS]


def test_rows_and_steps_are_counted_for_the_full_data(captures):
    for name in FRAMEWORKS:
        materialized = materialize(resolve_recipe(ref(captures[name, "base"])), samples=8)
        assert len(materialized.train_rows) == SERVED
        assert materialized.captured.train_rows_full == ROWS
        assert materialized.step_plan().total_steps == ROWS // 16
        assert materialized.step_plan(2).total_steps == ROWS // 32


def test_a_diff_says_rows_were_limited_and_exits_one_on_a_high_finding(captures, tmp_path, capsys):
    a, b = ref(captures["trl", "base"]), ref(captures["llamafactory", "base"])
    out = tmp_path / "report"
    args = ["diff", "--a", a, "--b", b, "--samples", "16", "--out", str(out), "--format", "json"]
    assert main(args) == 0
    assert main([*args, "--fail-on", "high"]) == 1
    context = json.loads((out / "report.json").read_text())["context"]
    assert context["rows_limited"] == [
        f"{name}: the capture served {SERVED} of {ROWS} loaded rows (--rows {SERVED}); train rows and steps are "
        "counted for the full data"
        for name in (a, b)
    ]
    assert "rows limited:" in capsys.readouterr().out


def show_json(capsys, *args: str) -> dict:
    assert main(["show", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)["values"]


@pytest.mark.parametrize(
    ("name", "setting", "switch"),
    [
        (
            "llamafactory",
            "llamafactory DataArguments.cutoff_len",
            "llamafactory DataArguments.train_on_prompt",
        ),
        ("axolotl", "axolotl cfg.sequence_len", "axolotl cfg.train_on_inputs"),
    ],
)
def test_show_reads_the_frameworks_own_settings(captures, capsys, monkeypatch, name, setting, switch):
    capture_ref = ref(captures[name, "base"])
    monkeypatch.setenv("COLUMNS", "250")  # the human table's rows unclipped
    values = show_json(capsys, capture_ref)
    assert values["training.max_length"] == {"value": 1024, "source": f"capture: {setting} (recipe)"}
    assert values["training.completion_only_loss"] == {"value": True, "source": f"capture: {switch} (recipe)"}
    assert values["training.dataset_text_field"]["value"] is None
    assert values["training.dataset_text_field"]["source"].startswith("not applicable: ")
    batches = [
        show_json(capsys, capture_ref, "--world-size", n)["effective.global_batch"]["value"] for n in "12"
    ]
    assert batches == [16, 32]
    assert main(["show", capture_ref]) == 0
    human = capsys.readouterr().out
    table = " ".join(human.split())
    assert "at world size 1: 1 process(es) x per-device 4 x accumulation 4 = global batch 16" in table
    rows = {
        line.split("│")[1].strip(): line.split("│")[2:4]
        for line in human.splitlines()
        if line.count("│") == 4
    }
    assert [cell.strip() for cell in rows["training.max_length"]] == ["1024", f"capture: {setting} (recipe)"]
    assert rows["training.dataset_text_field"][1].strip().startswith("not applicable: ")


def test_show_of_axolotl_accepts_what_peft_accepts(captures, capsys):
    values = show_json(capsys, ref(captures["axolotl", "base"]))
    assert values["peft.lora.fan_in_fan_out"]["value"] is None
    assert values["training.activation_offloading"]["source"] == (
        "not applicable: AxolotlTrainingArguments holds None, which SFTConfig's true/false field does not take"
    )
    llamafactory = show_json(capsys, ref(captures["llamafactory", "base"]))
    assert llamafactory["training.gradient_checkpointing"]["value"] is True
    assert llamafactory["training.gradient_checkpointing"]["source"] == (
        "capture: llamafactory the model (is_gradient_checkpointing) (measured)"
    )


# --- each framework's switches against its base recipe ------------------------------------------------------

EXPECTED = {
    "prompt_trained": ({"loss_mask.prompt_tokens_trained", "training.completion_only_loss"}, set()),
    "truncation": ({"training.max_length", "tokens.truncation"}, {"padding.eos_cut", "eos.generation_stops"}),
    "template": (
        set(),
        {"prompt.user_message", "template.applied", "template.chat_template", "tokens.example"},
    ),
}
"""Per variant: findings it must produce, and the other high findings it may bring (its own consequences)."""


@pytest.fixture(scope="module")
def variant_diff(captures, tmp_path_factory):
    root = captures_root(tmp_path_factory)

    def get(name: str, variant: str):
        recipe = captured(root, name, variant)
        return run_diff(ref(captures[name, "base"]), ref(recipe), samples=SAMPLES)

    return get


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_training_the_prompt_is_a_loss_mask_finding(variant_diff, name):
    report = variant_diff(name, "prompt_trained")
    findings = by_key(report)
    trained = findings["loss_mask.prompt_tokens_trained"]
    assert (trained.severity, trained.a, trained.b) == ("high", False, True)
    switch = findings["training.completion_only_loss"]
    assert (switch.axis, switch.severity, switch.a, switch.b) == ("loss_mask", "high", True, False)
    mask = probe_values(report, "loss_mask")
    assert mask["b"]["trained_fraction"] == 1.0 and 0.5 < mask["a"]["trained_fraction"] < 0.7
    assert mask["b"]["prompt_tokens"] == mask["a"]["prompt_tokens"] > 0
    assert high_keys(report) == EXPECTED["prompt_trained"][0]


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_a_shorter_length_limit_is_a_truncation_finding(variant_diff, name):
    report = variant_diff(name, "truncation")
    findings = by_key(report)
    limit = findings["training.max_length"]
    assert (limit.axis, limit.a, limit.b) == ("tokens", 1024, 256)
    assert findings["tokens.truncation"].a == 0 and findings["tokens.truncation"].b >= 1
    required, allowed = EXPECTED["truncation"]
    assert required <= set(findings)
    assert high_keys(report) <= allowed
    if name == "axolotl":  # Axolotl drops the rows longer than sequence_len instead of truncating them
        dropped = findings["padding.examples_dropped"]
        assert (dropped.severity, dropped.a, dropped.b) == ("medium", 0, 4)
        assert (findings["batch.optimizer_steps"].a, findings["batch.optimizer_steps"].b) == (32, 30)
    else:
        cut = findings["padding.eos_cut"]
        assert (cut.severity, cut.a) == ("high", 0) and cut.b >= 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("trl", "template.applied"),
        ("llamafactory", "prompt.user_message"),
        ("axolotl", "prompt.user_message"),
    ],
)
def test_another_template_is_a_template_or_prompt_finding(variant_diff, name, expected):
    report = variant_diff(name, "template")
    findings = by_key(report)
    assert findings[expected].severity == "high"
    assert high_keys(report) <= EXPECTED["template"][1]
    question = gsm8k_rows()[0]["question"]
    if name == "llamafactory":
        assert findings[expected].b == f"Human: {question}\nAssistant:"
    if name == "axolotl":  # alpaca_chat: AlpacaPrompter's system text in its chat style
        assert findings[expected].b == f"SYSTEM: {ALPACA_SYSTEM}\nUSER: {question}\nASSISTANT:"
    if name == "trl":
        assert (findings[expected].a, findings[expected].b) == (False, True)
        assert "prompt.user_message" not in findings  # the same question, rendered through the template


def test_variants_cover_each_frameworks_three_switches():
    assert {name: sorted(variants) for name, variants in VARIANTS.items()} == {
        name: ["prompt_trained", "template", "truncation"] for name in FRAMEWORKS
    }


# --- trl 3432 across frameworks: TRL's R1-distill template drops the reasoning, LLaMA-Factory's keeps it --------


def test_the_r1_template_drops_the_reasoning_llamafactory_trains(tmp_path_factory):
    root = captures_root(tmp_path_factory)
    trl, llamafactory = (captured_reasoning(root, name) for name in ("trl", "llamafactory"))
    report = run_diff(ref(trl), ref(llamafactory))
    assert not [f.key for f in report.findings if f.key.endswith("probe_failed")]
    dropped = by_key(report)["content.not_trained"]
    content = probe_values(report, "content")
    assert (dropped.severity, dropped.b) == ("high", 0)
    assert dropped.a == content["a"]["loss"]["dropped_chars"] > 0
    assert content["a"]["loss"]["examples_dropping"] == content["a"]["examples_checked"] == 10
    assert content["a"]["loss"]["first"]["dropped_text"].startswith("<think> I add 2 and 3.")
    assert content["b"]["examples_checked"] == 10  # LLaMA-Factory's token ids paired with its loaded rows
    assert "keeps it all" in dropped.summary
    assert trl.tokenizer_path.joinpath("tokenizer.json").is_file()
    assert probe_values(report, "eos")["b"]["end_token"] == "<|im_end|>"  # the Qwen tokenizer's EOS
