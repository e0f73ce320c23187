"""`parity refs verify`: pinned upstream facts re-extracted from fake checkouts (tests/fixtures/upstream).

Each drift test copies a fixture, changes one value, and expects exactly that fact to move, at that line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from parity import refs
from parity.cli import main
from parity.errors import ParityError
from parity.refs import (
    LOCATORS,
    format_refs_report,
    load_locators,
    parse_key_path,
    scalar,
    values_equal,
    verify_ref,
)
from parity.vendor import load_facts

FIXTURES = Path(__file__).parent / "fixtures" / "upstream"
REFS = ["revise", "llmhalluc"]


@pytest.fixture(autouse=True)
def tripwire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where a fixture module would write if anything imported or ran it."""
    marker = tmp_path / "tripwire-fired"
    monkeypatch.setenv("PARITY_REFS_TRIPWIRE", str(marker))
    return marker


def copy_checkout(tmp_path: Path, ref: str) -> Path:
    return shutil.copytree(FIXTURES / ref, tmp_path / ref)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} should appear once in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(path: Path, text: str) -> int:
    lines = [
        n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if text in line
    ]
    assert len(lines) == 1, f"{text!r} should be on exactly one line of {path}"
    return lines[0]


def not_ok(report: refs.RefsReport) -> list[str]:
    return [check.name for check in report.facts if check.status != "ok"]


# --- matching checkouts ------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", REFS)
def test_every_fact_has_a_locator(ref: str) -> None:
    assert set(load_locators(ref)) == set(load_facts(ref).facts)


@pytest.mark.parametrize("ref", REFS)
def test_matching_fixture_reports_every_fact_ok(ref: str, tripwire: Path) -> None:
    report = verify_ref(ref, FIXTURES / ref)

    assert report.ok
    assert report.count("ok") == len(load_facts(ref).facts) == len(report.facts)
    assert [check.name for check in report.facts] == list(load_facts(ref).facts)
    assert not tripwire.exists()


def test_revise_fixture_values_come_from_the_script() -> None:
    report = verify_ref("revise", FIXTURES / "revise")
    script = FIXTURES / "revise" / "scripts" / "step-0-sft.sh"

    learning_rate = report.by_name("args.learning_rate")
    assert learning_rate.found == 1e-4
    assert learning_rate.line == line_of(script, "LEARNING_RATE=1e-4")
    assert "via ${LEARNING_RATE}" in learning_rate.detail
    assert report.by_name("launch.batch_size").found == 32
    assert report.by_name("args.bf16").found is True
    assert report.by_name("args.dataset_path").found == "${HUB_USER_ID}/gsm8k"
    assert report.by_name("launch.launcher").found == "accelerate launch revise/sft.py"
    assert report.by_name("model.torch_dtype").found == "bfloat16"
    assert report.by_name("eval.apply_chat_template").found is True
    assert report.by_name("eval.ignore_case").found is True
    assert report.by_name("eval.remove_tokens").found == ["<|reserved_special_token_0|>"]


def test_llmhalluc_fixture_values_come_from_the_launch_script_and_the_model_loader() -> None:
    report = verify_ref("llmhalluc", FIXTURES / "llmhalluc")
    script = FIXTURES / "llmhalluc" / "scripts" / "crc" / "hf.sh"
    loader = FIXTURES / "llmhalluc" / "llmhalluc" / "train" / "base.py"

    launch = report.by_name("launch.command")
    assert (launch.found, launch.line) == (
        "accelerate launch -m llmhalluc.run_train",
        line_of(script, "accelerate launch"),
    )
    dtype = report.by_name("model.torch_dtype")
    assert (dtype.found, dtype.line) == ("bfloat16", line_of(loader, "torch.bfloat16"))


def test_fixture_tripwires_are_armed(tmp_path: Path, tripwire: Path) -> None:
    for module in ["revise/revise/config.py", "llmhalluc/llmhalluc/hparams/train_args.py"]:
        tripwire.unlink(missing_ok=True)
        ran = subprocess.run(
            [sys.executable, str(FIXTURES / module)], env=os.environ.copy(), capture_output=True, text=True
        )
        assert ran.returncode != 0 and "RuntimeError" in ran.stderr
        assert tripwire.exists(), f"{module} should leave a marker when executed"


@pytest.mark.parametrize("ref", REFS)
def test_verify_neither_imports_nor_runs_the_checkout(tmp_path: Path, tripwire: Path, ref: str) -> None:
    checkout = copy_checkout(tmp_path, ref)

    verify_ref(ref, checkout)

    assert not tripwire.exists()
    assert not list(checkout.rglob("TRIPWIRE_FIRED"))
    assert not list(checkout.rglob("__pycache__"))


# --- drift -------------------------------------------------------------------------------------------


def test_learning_rate_changed_in_launch_script_is_drift_at_its_line(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "revise")
    script = checkout / "scripts" / "step-0-sft.sh"
    edit(script, "LEARNING_RATE=1e-4", "LEARNING_RATE=2e-4")

    report = verify_ref("revise", checkout)

    assert not_ok(report) == ["args.learning_rate"]
    check = report.by_name("args.learning_rate")
    assert (check.status, check.file, check.line) == (
        "drift",
        "scripts/step-0-sft.sh",
        line_of(script, "2e-4"),
    )
    assert (check.expected, check.found) == (1e-4, 2e-4)
    assert "DRIFT    args.learning_rate" in format_refs_report(report)
    assert f"scripts/step-0-sft.sh:{check.line}" in format_refs_report(report)


def test_same_number_spelled_differently_is_not_drift(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "revise")
    edit(checkout / "scripts" / "step-0-sft.sh", "LEARNING_RATE=1e-4", "LEARNING_RATE=0.0001")

    assert verify_ref("revise", checkout).ok


def test_literal_flag_value_changed_is_drift_at_the_flag_line(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "revise")
    script = checkout / "scripts" / "step-0-sft.sh"
    edit(script, "--logging_steps 1 ", "--logging_steps 5 ")

    report = verify_ref("revise", checkout)

    assert not_ok(report) == ["args.logging_steps"]
    check = report.by_name("args.logging_steps")
    assert (check.line, check.expected, check.found) == (line_of(script, "--logging_steps 5"), 1, 5)


def test_one_character_of_chat_template_is_drift_with_a_character_hint(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "revise")
    config = checkout / "revise" / "config.py"
    edit(config, "message['role'] == 'system'", "message['role'] == 'System'")

    report = verify_ref("revise", checkout)

    assert not_ok(report) == ["template.chat_template"]
    check = report.by_name("template.chat_template")
    assert (check.status, check.file, check.line) == (
        "drift",
        "revise/config.py",
        line_of(config, "DEFAULT_CHAT_TEMPLATE ="),
    )
    assert check.found == check.expected.replace("'system'", "'System'")
    at = check.expected.index("'system'") + 1
    text = format_refs_report(report)
    assert f"first difference at char {at}: pinned 's', found 'S'" in text
    assert check.expected not in text  # the 493-character template is shortened


def test_dataclass_default_changed_is_drift(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "llmhalluc")
    train_args = checkout / "llmhalluc" / "hparams" / "train_args.py"
    edit(train_args, "lora_alpha: int = 16", "lora_alpha: int = 32")

    report = verify_ref("llmhalluc", checkout)

    assert not_ok(report) == ["defaults.lora_alpha"]
    check = report.by_name("defaults.lora_alpha")
    assert (check.file, check.line, check.found) == (
        "llmhalluc/hparams/train_args.py",
        line_of(train_args, "lora_alpha"),
        32,
    )


def test_field_default_factory_form_is_read(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "llmhalluc")
    edit(
        checkout / "llmhalluc" / "hparams" / "train_args.py",
        'field(default="all",',
        'field(default="q_proj",',
    )

    check = verify_ref("llmhalluc", checkout).by_name("defaults.lora_target")

    assert (check.status, check.found) == ("drift", "q_proj")


def test_experiment_yaml_key_changed_is_drift_at_that_key(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "llmhalluc")
    experiment = checkout / "configs" / "llmhalluc" / "gsm8k" / "sft.yaml"
    edit(experiment, "seed: 3", "seed: 7")

    report = verify_ref("llmhalluc", checkout)

    assert not_ok(report) == ["experiment_config"]
    check = report.by_name("experiment_config")
    assert (check.file, check.line, check.found["seed"]) == (
        "configs/llmhalluc/gsm8k/sft.yaml",
        line_of(experiment, "seed:"),
        7,
    )
    assert "seed: pinned 3, found 7" in format_refs_report(report)


def test_snippet_gone_is_drift(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "llmhalluc")
    edit(
        checkout / "llmhalluc" / "models" / "patcher.py",
        "tokenizer.pad_token or tokenizer.eos_token",
        '"<pad>"',
    )

    report = verify_ref("llmhalluc", checkout)

    assert not_ok(report) == ["tokenizer.pad_token_policy"]
    check = report.by_name("tokenizer.pad_token_policy")
    assert (check.status, check.found) == ("drift", None)
    assert "snippet gone" in check.detail


def test_launch_without_accelerate_is_drift(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "llmhalluc")
    edit(
        checkout / "scripts" / "crc" / "hf.sh",
        "accelerate launch -m llmhalluc.run_train",
        "python -m llmhalluc.run_train",
    )

    report = verify_ref("llmhalluc", checkout)

    assert not_ok(report) == ["launch.command"]
    check = report.by_name("launch.command")
    assert (check.status, check.file, check.found) == ("drift", "scripts/crc/hf.sh", None)


def test_eval_filter_without_token_removal_is_missing(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "revise")
    task = (
        checkout / "lm-evaluation-harness" / "lm_eval" / "tasks" / "gsm8k" / "gsm8k-cot-zeroshot-custom.yaml"
    )
    edit(
        task,
        '      - function: "remove_target_tokens"\n        target_tokens:\n          - "<|reserved_special_token_0|>"\n',
        "",
    )

    report = verify_ref("revise", checkout)

    assert not_ok(report) == ["eval.remove_tokens"]
    assert report.by_name("eval.remove_tokens").status == "missing"
    assert report.by_name("eval.extract_regex").found == "(-?[$0-9.,]{2,})|(-?[0-9]+)"


def test_peft_appearing_in_full_fine_tuning_script_is_drift(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "revise")
    sft = checkout / "revise" / "sft.py"
    edit(sft, "import torch\n", "import torch\nfrom peft import LoraConfig\n")

    check = verify_ref("revise", checkout).by_name("model.peft")

    assert (check.status, check.line, check.found) == (
        "drift",
        line_of(sft, "peft"),
        "from peft import LoraConfig",
    )


# --- missing -----------------------------------------------------------------------------------------


def test_deleted_file_makes_its_facts_missing(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "revise")
    (checkout / "revise" / "preprocess.py").unlink()

    report = verify_ref("revise", checkout)

    from_file = [
        name for name, fact in load_facts("revise").facts.items() if fact.file == "revise/preprocess.py"
    ]
    assert not_ok(report) == from_file
    assert len(from_file) == 6
    for name in from_file:
        check = report.by_name(name)
        assert (check.status, check.found, check.line, check.detail) == (
            "missing",
            None,
            None,
            "file not found",
        )
    assert "MISSING  data.hub_path" in format_refs_report(report)


def test_flag_no_longer_passed_is_missing(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "revise")
    edit(checkout / "scripts" / "step-0-sft.sh", "    --bf16 true \\\n", "")

    report = verify_ref("revise", checkout)

    assert not_ok(report) == ["args.bf16"]
    assert report.by_name("args.bf16").detail == "no command passes --bf16"


def test_unparseable_python_makes_its_facts_missing(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path, "revise")
    edit(
        checkout / "revise" / "prompts.py",
        "def prepare_gsm8k_chat_messages(",
        "def prepare_gsm8k_chat_messages((",
    )

    check = verify_ref("revise", checkout).by_name("prompt.instruction")

    assert check.status == "missing"
    assert check.detail.startswith("cannot parse as Python")


# --- CLI entry point ---------------------------------------------------------------------------------


def test_cli_exits_zero_when_ok_and_one_on_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sheet = load_facts("llmhalluc")
    fixture = FIXTURES / "llmhalluc"
    assert main(["refs", "verify", "--ref", "llmhalluc", "--checkout", str(fixture)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:2] == [
        f"refs verify llmhalluc ({sheet.repo} @ {sheet.commit}) against {fixture}",
        "43 facts: 43 ok, 0 drift, 0 missing",
    ]
    assert len(lines) == 2 + 43 and all(line.startswith("  ok ") for line in lines[2:])

    checkout = copy_checkout(tmp_path, "llmhalluc")
    (checkout / "pyproject.toml").unlink()
    assert main(["refs", "verify", "--ref", "llmhalluc", "--checkout", str(checkout)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "43 facts: 37 ok, 0 drift, 6 missing"
    missing = [line.split()[1:] for line in lines if line.startswith("  MISSING ")]
    assert len(missing) == 6 and all(words[-1] == "pyproject.toml" for words in missing)
    assert {words[0] for words in missing} == {n for n in sheet.facts if n.startswith("env.")}
    assert lines.count(f"  {'':8} file not found") == 6


def test_verify_returns_a_report_and_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    sheet = load_facts("revise")
    report = verify_ref("revise", FIXTURES / "revise")
    assert capsys.readouterr().out == ""
    assert report.sheet is sheet and report.checkout == FIXTURES / "revise"
    assert [check.fact for check in report.facts] == list(sheet.facts.values())
    check = report.by_name("args.learning_rate")
    assert (check.name, check.expected) == ("args.learning_rate", sheet["args.learning_rate"])


def test_every_locator_kind_is_registered() -> None:
    assert set(LOCATORS.names()) == {
        "python_constant",
        "dataclass_default",
        "python_call_arg",
        "python_call_kwarg",
        "python_string_contains",
        "shell_var",
        "shell_arg",
        "shell_flag",
        "shell_command",
        "yaml_key",
        "yaml_document",
        "json_key",
        "toml_dependency",
        "source_contains",
        "source_absent",
    }
    assert LOCATORS.get("shell_arg").requires == ("flag",)


# --- bad input ---------------------------------------------------------------------------------------


def test_unknown_ref_is_a_parity_error_with_a_suggestion() -> None:
    with pytest.raises(ParityError, match=r"unknown ref 'revize'; did you mean 'revise'\?"):
        verify_ref("revize", FIXTURES / "revise")


def test_missing_checkout_is_a_parity_error(tmp_path: Path) -> None:
    with pytest.raises(ParityError, match="does not exist"):
        verify_ref("revise", tmp_path / "nowhere")


def test_checkout_that_is_a_file_is_a_parity_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a checkout")
    with pytest.raises(ParityError, match="is not a directory"):
        verify_ref("revise", tmp_path / "file")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read locators for 'revise'"),
        ("locators: [unclosed", "malformed"),
        (
            "locators:\n  launch.batch_size: {kind: shell_vars, name: BATCH_SIZE}\n",
            "did you mean 'shell_var'",
        ),
        ("locators:\n  launch.batch_size: {kind: shell_var}\n", r"\(shell_var\) needs name"),
        (
            "locators:\n  launch.batch_size: {kind: shell_var, name: BATCH_SIZE}\n",
            "has no locator for: args.bf16",
        ),
    ],
)
def test_bad_locators_file_is_a_one_line_parity_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None, message: str
) -> None:
    path = tmp_path / "locators.yaml"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(refs.verify, "locators_path", lambda ref: path)

    with pytest.raises(ParityError, match=message) as raised:
        verify_ref("revise", FIXTURES / "revise")
    assert "\n" not in str(raised.value)


# --- value rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "value"),
    [
        ("1e-4", 0.0001),
        ("0.1", 0.1),
        ("32", 32),
        ("true", True),
        ("False", False),
        ("wandb", "wandb"),
        ("==2.6.0", "==2.6.0"),
    ],
)
def test_shell_words_are_read_as_yaml_scalars(word: str, value: object) -> None:
    assert scalar(word) == value and type(scalar(word)) is type(value)


@pytest.mark.parametrize(
    ("pinned", "found", "equal"),
    [
        (1e-4, 0.0001, True),
        (1.0e-4, "1e-4", True),
        (3, 3.0, True),
        (True, 1, False),
        (False, "false", True),
        ("none", None, False),
        ({"a": 1, "b": [0.1]}, {"b": [0.1], "a": 1.0}, True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
    ],
)
def test_values_compare_by_meaning(pinned: object, found: object, equal: bool) -> None:
    assert values_equal(pinned, found) is equal


def test_key_paths_select_list_items_by_field() -> None:
    assert parse_key_path("filter_list[name=final-answer].filter[function=regex].regex_pattern") == [
        "filter_list",
        ("name", "final-answer"),
        "filter",
        ("function", "regex"),
        "regex_pattern",
    ]
    assert parse_key_path("a.0.b[-1]") == ["a", 0, "b", -1]
    assert parse_key_path(["belle_0.5m", "hf_hub_url"]) == ["belle_0.5m", "hf_hub_url"]
