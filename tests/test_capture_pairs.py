"""Two captured recipes diffed with no --data: the rows of A's capture are the shared rows, and B's rows are paired
with them by identity, so system prompts, instructions and row formats are compared on the same rows. On the
chat_sft fixture (a plain TRL script) captured with different environments."""

from __future__ import annotations

import json
import shutil

import pytest
from test_capture import FIXTURES

from parity.capture import capture
from parity.capture.options import CaptureOptions
from parity.diff import run_diff
from parity.materialize import materialize_pair
from parity.registry import resolve_recipe
from parity.tasks.gsm8k.synthetic import generate_splits

SYSTEM = "You are a careful tutor."
INSTRUCTION = "\nThink step by step and end with the number."


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    """capture:DIR refs of the fixture captured with a system prompt, without, with messages rows, and with an
    instruction appended to every question, all on the same 10 train / 3 test rows ('rows': their folder); and
    'strings': `trl sft` on plain prompt/completion strings of those rows with a tokenizer that has no template."""
    root = tmp_path_factory.mktemp("pairs")
    shutil.copytree(FIXTURES / "chat_sft", root / "chat_sft")
    train, test = generate_splits(10, 3, 5)
    data = root / "rows"
    data.mkdir()
    for name, rows in (("train", train), ("test", test)):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    variants = {
        "system": {"SYSTEM_PROMPT": SYSTEM},
        "plain": {},
        "messages": {"ROWS": "messages"},
        "instruction": {"INSTRUCTION": INSTRUCTION},
    }
    refs = {}
    for name, env in variants.items():
        options = CaptureOptions(
            checkout=root / "chat_sft",
            out=root / "captures" / name,
            command=("python", "train.py"),
            data={"tiny/gsm8k": data},
            env=env,
            world_sizes=(1,),
        )
        refs[name] = f"capture:{capture(options).path}"
    shutil.copytree(FIXTURES / "trl_sft_config", root / "trl_sft_config")
    strings = root / "strings"
    strings.mkdir()
    (strings / "train.jsonl").write_text(
        "".join(
            json.dumps({"prompt": row["question"] + "\n", "completion": row["answer"]}) + "\n"
            for row in train
        )
    )
    options = CaptureOptions(
        checkout=root / "trl_sft_config",
        out=root / "captures" / "strings",
        command=("trl", "sft", "--config", "sft.yaml"),
        data={"tiny/gsm8k-prompt-completion": strings},
        world_sizes=(1,),
    )
    refs["strings"] = f"capture:{capture(options).path}"
    refs["rows"] = str(data)
    return refs


def findings_by_key(report) -> dict:
    return {f.key: f for f in report.findings}


def test_two_captures_are_paired_on_the_captured_rows_of_a(captures):
    a, b = materialize_pair(resolve_recipe(captures["system"]), resolve_recipe(captures["plain"]))
    assert a.raw is b.raw and a.raw.source == f"captured rows of {captures['system']}"
    assert (len(a.raw.train), len(a.raw.test), a.raw.templated) == (10, 3, True)
    examples = b.shared_examples(a.raw.train)
    assert [e.found_in for e in examples] == [("train", i) for i in range(10)]
    assert examples[3].conversation.messages[0] == {
        "role": "user",
        "content": a.raw.train[3]["prompt"][1]["content"],
    }


def test_identical_captures_give_no_finding_above_info(captures):
    report = run_diff(captures["plain"], captures["plain"])
    assert [(f.key, f.severity) for f in report.findings] == [("eval.not_captured", "info")]


def test_a_system_prompt_difference_is_one_high_prompt_finding_that_names_it(captures):
    report = run_diff(captures["system"], captures["plain"])
    prompt = [f for f in report.findings if f.axis == "prompt"]
    assert [(f.key, f.severity) for f in prompt] == [("prompt.system", "high")]
    assert prompt[0].summary == (
        f"system prompt differs for the same row (10 of 10 rows): {captures['system']} '{SYSTEM}', "
        f"{captures['plain']} none"
    )
    assert (prompt[0].a, prompt[0].b) == (SYSTEM, None)
    high = [f for f in report.findings if f.severity == "high"]
    assert [f.key for f in high] == ["prompt.system"]
    tokens = next(f for f in report.findings if f.key == "tokens.example")  # the ids differ because of it
    assert (tokens.severity, tokens.align, tokens.evidence["explained_by"]) == ("info", "prompt", "prompt")


def test_an_instruction_the_template_adds_to_every_row_is_paired_and_found(captures):
    report = run_diff(captures["instruction"], captures["plain"])
    finding = findings_by_key(report)["prompt.user_message"]
    assert finding.summary.startswith("user message differs for the same row (10 of 10 rows)")
    assert finding.a.endswith(INSTRUCTION) and not finding.b.endswith(INSTRUCTION)
    assert report.probes["prompt"]["rows_not_captured"] == 0


def test_a_messages_capture_diff_completes_with_loss_mask_bos_and_consistency(captures):
    report = run_diff(captures["messages"], captures["plain"])
    keys = findings_by_key(report)
    assert keys["loss_mask.prompt_tokens_trained"].a is True  # TRL trains every token of a messages row
    assert keys["loss_mask.prompt_tokens_trained"].b is False
    assert report.probes["bos"]["a"]["examples"] == 10
    assert report.probes["consistency"]["a"]["eval_protocol"].startswith("not captured")
    assert "prompt.user_message" not in keys and "prompt.system" not in keys
    assert report.probes["prompt"]["rows_compared"] == 10


def test_a_capture_against_a_builtin_with_no_data_shares_the_builtins_synthetic_rows(captures):
    a, b = materialize_pair(resolve_recipe(captures["plain"]), resolve_recipe("revise"), samples=8)
    assert a.raw is b.raw and a.raw.source == "synthetic gsm8k (seed=0)"
    assert not a.shared_examples(a.raw.train[:1])[0].same_row  # the capture holds its own rows, not these


def test_a_plain_string_capture_without_a_chat_template_is_diffed(captures):
    assert [f.severity for f in run_diff(captures["strings"], captures["strings"]).findings] == ["info"]
    report = run_diff(
        captures["strings"], "revise", data=captures["rows"], only=["template", "prompt", "tokens"]
    )
    keys = findings_by_key(report)
    assert (keys["template.applied"].severity, keys["template.applied"].a) == ("high", False)
    assert "template.generation_prompt" not in keys
    assert report.probes["template"]["a"]["rendered"] == ""
    assert report.probes["prompt"]["rows_compared"] == 10  # the plain prompt strings are found by identity
