"""CI parity checks: the lockfile is deterministic, and any change to what a recipe trains on fails `check`."""

from __future__ import annotations

import subprocess
import sys
from xml.etree import ElementTree

import pytest
import yaml

from parity.cli import main
from parity.lock import (
    ENTRIES,
    BatchRow,
    build_lock,
    check_lock,
    dump_lock,
    read_lock,
    write_lock,
)

DATA = "synthetic:120:24"
REVISE_TEMPLATE = "{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}{% else %}{{ '<|assistant|>\\n' + message['content'] + eos_token }}{% endif %}{% endfor %}"


def check_with_edited_recipe(tmp_path, lock_path, **changes):
    """check_lock after editing the locked recipe, with the recipe restored afterwards."""
    write_recipe(tmp_path, **changes)
    try:
        return check_lock(lock_path)
    finally:
        write_recipe(tmp_path)


def write_recipe(
    tmp_path,
    template: str = REVISE_TEMPLATE,
    instruction: str = "Think step by step.",
    replacement: str = "The answer is:",
):
    path = tmp_path / "mine.yaml"
    doc = {
        "extends": "revise",
        "set": {
            "template.chat_template": template,
            "prompt.instruction": instruction,
            "data.preprocess": [
                {"op": "regex_sub", "pattern": "<<.*?>>", "replacement": ""},
                {"op": "replace", "pattern": "####", "replacement": replacement},
            ],
        },
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("lock")
    recipe = write_recipe(tmp_path)
    lock_path = tmp_path / "parity.lock"
    write_lock(build_lock(str(recipe), "revise", data=DATA, examples=4), lock_path)
    return tmp_path, recipe, lock_path


def test_lock_is_byte_identical_across_runs(locked):
    tmp_path, recipe, lock_path = locked
    again = dump_lock(build_lock(str(recipe), "revise", data=DATA, examples=4))
    assert again == lock_path.read_text(encoding="utf-8")


def test_lock_records_findings_batch_and_golden_tokens(locked):
    _, _, lock_path = locked
    lock = read_lock(lock_path)
    keys = {f.name for f in lock.findings}
    assert ("template", "template.chat_template") in keys
    assert ("prompt", "prompt.user_message") in keys
    assert lock.recipes["b"].batch[1] == BatchRow(processes=1, per_device=8, accumulation=4, global_batch=32)
    assert lock.recipes["b"].batch[8].global_batch == 64
    tokens = lock.recipes["a"].tokenization
    assert tokens.examples == 4 and len(tokens.input_ids) == 4
    assert tokens.example_0.input_ids[:5] == [27, 91, 882, 91, 397]  # "<|user|>\n"
    assert set(tokens.example_0.loss_mask) == {"1"}  # revise trains every token
    assert lock.recipes["b"].config["training.learning_rate"] == 1e-04
    assert lock.to_dict() == yaml.safe_load(lock_path.read_text())


def test_unchanged_pair_passes(locked, capsys):
    _, _, lock_path = locked
    assert main(["check", "--lock", str(lock_path)]) == 0
    assert "matches" in capsys.readouterr().out


def test_one_character_of_the_template_fails_and_is_named(locked):
    tmp_path, recipe, lock_path = locked
    result = check_with_edited_recipe(
        tmp_path, lock_path, template=REVISE_TEMPLATE.replace("<|user|>", "<|User|>")
    )
    assert not result.ok
    assert {d.entry for d in result.differences} == {"findings", "a.config", "a.tokenization"}
    assert "findings.template.chat_template.a" in result.changed_keys()
    assert "a.config.template.chat_template" in result.changed_keys()
    assert {"a.tokenization.input_ids[0]", "a.tokenization.example_0.input_ids"} <= set(result.changed_keys())
    assert result.differences_for("a.config")[0].detail[0].startswith("template.chat_template: was 'sha256:")
    assert any(
        "'User'" in line for line in result.differences_for("a.tokenization")[0].detail
    )  # the token-level diff names it


def test_one_character_of_the_prompt_fails_and_is_named(locked):
    tmp_path, recipe, lock_path = locked
    result = check_with_edited_recipe(tmp_path, lock_path, instruction="Think step by step!")
    assert not result.ok
    config = result.differences_for("a.config")[0]
    assert config.keys == ["a.config.prompt.instruction"]
    assert config.detail == ["prompt.instruction: was 'Think step by step.', now 'Think step by step!'"]
    assert "findings.prompt.user_message.a" in result.changed_keys()


def test_preprocessing_change_fails_and_is_named(locked):
    tmp_path, recipe, lock_path = locked
    result = check_with_edited_recipe(tmp_path, lock_path, replacement="The answer is")
    assert not result.ok
    assert "a.config.data.preprocess" in result.changed_keys()
    assert result.differences_for("a.tokenization")[0].message.endswith("example 0: input_ids and loss mask")
    assert not result.differences_for("b.config") and not result.differences_for("b.tokenization")


def test_library_default_change_is_caught(locked, monkeypatch):
    _, _, lock_path = locked
    import parity.plan as plan

    real = plan.build_sft_config
    monkeypatch.setattr(
        plan,
        "build_sft_config",
        lambda recipe, launch, extra=None: real(recipe, launch, {"max_length": 512, **(extra or {})}),
    )
    result = check_lock(lock_path)
    assert not result.ok
    assert {"a.config.training.max_length", "b.config.training.max_length"} <= set(result.changed_keys())
    assert result.differences_for("b.config")[0].detail == ["training.max_length: was 1024, now 512"]


def check_edited_lock(lock_path, tmp_path, edit):
    """check_lock of a copy of the lock with one recorded value edited by `edit(document)`."""
    doc = yaml.safe_load(lock_path.read_text())
    edit(doc)
    edited = tmp_path / "edited.lock"
    edited.write_text(yaml.safe_dump(doc, sort_keys=False))
    return check_lock(edited)


def test_edited_config_value_fails_and_is_named(locked, tmp_path):
    _, _, lock_path = locked
    result = check_edited_lock(
        lock_path,
        tmp_path,
        lambda doc: doc["recipes"]["b"]["config"].update({"training.learning_rate": 3e-4}),
    )
    assert not result.ok
    assert result.changed_keys() == ["b.config.training.learning_rate"]
    assert result.differences[0].detail == ["training.learning_rate: was 0.0003, now 0.0001"]


def test_edited_golden_token_fails_and_is_named(locked, tmp_path):
    _, _, lock_path = locked

    def edit(doc):
        doc["recipes"]["a"]["tokenization"]["example_0"]["input_ids"][0] = 28

    result = check_edited_lock(lock_path, tmp_path, edit)
    assert not result.ok
    assert result.changed_keys() == ["a.tokenization.example_0.input_ids"]
    assert result.differences[0].message.endswith("changed at example 0: example_0.input_ids")
    assert result.differences[0].detail[0].startswith("replace at token 0:")


def test_edited_library_version_fails_and_is_named(locked, tmp_path):
    _, _, lock_path = locked
    result = check_edited_lock(lock_path, tmp_path, lambda doc: doc["libraries"].update({"trl": "0.0.1"}))
    assert not result.ok
    assert result.changed_keys() == ["libraries.trl"]
    assert result.differences[0].entry == "libraries"


def test_edited_config_digest_fails_and_is_named(locked, tmp_path):
    _, _, lock_path = locked
    result = check_edited_lock(
        lock_path,
        tmp_path,
        lambda doc: doc["recipes"]["a"].update({"config_digest": "sha256:0000000000000000"}),
    )
    assert result.changed_keys() == ["a.config_digest"]
    assert (
        result.differences[0].detail[0].startswith("config_digest: was sha256:0000000000000000, now sha256:")
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not: [valid", "not a valid lock (malformed YAML)"),
        ("schema_version: 99\n", "schema_version must be 1"),
        ("- a list\n", "expected a mapping"),
    ],
)
def test_corrupted_lock_is_one_line_exit_2(tmp_path, capsys, text, message):
    path = tmp_path / "parity.lock"
    path.write_text(text)
    assert main(["check", "--lock", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_hand_edited_lock_missing_an_entry_is_exit_2(locked, tmp_path, capsys):
    _, _, lock_path = locked
    lock = yaml.safe_load(lock_path.read_text())
    del lock["recipes"]["a"]["tokenization"]
    broken = tmp_path / "broken.lock"
    broken.write_text(yaml.safe_dump(lock))
    assert main(["check", "--lock", str(broken)]) == 2
    assert "recipes.a needs config_digest, config, batch and tokenization" in capsys.readouterr().err


def test_update_rewrites_the_lock(locked, tmp_path):
    _, recipe, lock_path = locked
    copy = tmp_path / "copy.lock"
    lock = yaml.safe_load(lock_path.read_text())
    lock["findings"] = lock["findings"][1:]
    copy.write_text(yaml.safe_dump(lock))
    assert main(["check", "--lock", str(copy)]) == 1
    assert main(["check", "--lock", str(copy), "--update"]) == 0
    assert copy.read_text() == lock_path.read_text()


def test_pytest_plugin_adds_one_test_per_entry(locked, tmp_path):
    _, _, lock_path = locked
    (tmp_path / "test_uses_fixture.py").write_text(
        f"def test_pair(parity_check):\n    parity_check({str(lock_path)!r})\n", encoding="utf-8"
    )
    junit = tmp_path / "junit.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-p",
            "no:cacheprovider",
            "--parity-lock",
            str(lock_path),
            f"--junitxml={junit}",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "9",
        "failures": "0",
        "errors": "0",
        "skipped": "0",
    }
    names = sorted(case.get("name") for case in suite.iter("testcase"))
    assert names == sorted(["test_pair", *(f"parity-lock[{lock_path.name}::{entry}]" for entry in ENTRIES)])
    assert ENTRIES == (
        "findings",
        "a.config",
        "a.batch",
        "a.tokenization",
        "b.config",
        "b.batch",
        "b.tokenization",
        "libraries",
    )
