"""Tests for the `template` probe: effective template, rendered diff, BOS/EOS, generation prompt, determinism."""

from __future__ import annotations

import pytest
from conftest import make

from parity.probes import ProbeContext
from parity.probes.template import probe

CTX = ProbeContext()


@pytest.fixture(scope="module")
def real_result(real_pair):
    return probe(*real_pair, CTX)


def test_rendered_texts_start_differently_on_real_data(real_result):
    assert real_result.values["a"]["rendered"].startswith("\n<|user|>\nNatalia sold clips")
    assert real_result.values["b"]["rendered"].startswith("<|user|>\nNatalia sold clips")
    assert real_result.values["same_messages_notes"] == ["llmhalluc starts with an extra '\\n'"]


def test_template_finding_names_the_extra_token(real_result):
    finding = next(f for f in real_result.findings if f.key == "template.chat_template")
    assert (finding.severity, finding.align) == ("high", "template")
    assert finding.evidence["template_notes"] == [
        "llmhalluc starts with an extra '\\n'",
        "llmhalluc ends with an extra '\\n'",
    ]
    first = finding.evidence["token_ops"][0]
    assert (first["op"], first["a_pos"], first["a_ids"], first["a_tokens"], first["b_ids"]) == (
        "delete",
        [0, 1],
        [198],
        ["Ċ"],
        [],
    )
    assert finding.evidence["a_first_ids"][0] == 198
    assert finding.evidence["a_first_ids"][1:] == finding.evidence["b_first_ids"][:7]
    assert "198 ('Ċ')" in finding.summary
    assert (
        "rendered llmhalluc text starts with '\\n<|user|>\\n', revise with '<|user|>\\n'" in finding.summary
    )


def test_source_finding_and_values_on_real_data(real_result):
    assert [f.key for f in real_result.findings] == ["template.chat_template", "template.source"]
    source = real_result.findings[1]
    assert source.severity == "low"
    assert source.a.endswith("llmhalluc/extras/template.py") and source.b.endswith("revise/config.py")
    for side in ("a", "b"):
        values = real_result.values[side]
        assert values["effective"] == "recipe-fallback"
        assert values["deterministic"] is True
        assert values["supports_generation_prompt"] is True
        assert values["generation_prompt"] == "<|assistant|>⏎"
        assert (values["bos_in_text"], values["eos_in_text"]) == (False, True)
        assert (values["bos_in_ids"], values["eos_in_ids"]) == (False, True)


def test_identical_pair_has_no_findings(revise):
    assert probe(revise, make("revise"), CTX).findings == []


def test_one_character_change_gives_exactly_one_finding(revise):
    changed = revise.recipe.template.chat_template.replace("<|user|>", "<|User|>")
    result = probe(revise, make("revise", [f"template.chat_template={changed}"]), CTX)
    [finding] = result.findings
    assert (finding.key, finding.severity) == ("template.chat_template", "high")
    assert finding.evidence["template_diff"] == [
        {"op": "replace", "a_pos": [153, 154], "b_pos": [153, 154], "a": "u", "b": "U"}
    ]
    assert "882 ('user')" in finding.summary and "1502 ('User')" in finding.summary


def test_date_dependent_template_is_not_deterministic(revise):
    dated = "{{ 'Today: ' + strftime_now('%d %b %Y') + '\\n' }}" + revise.recipe.template.chat_template
    result = probe(revise, make("revise", [f"template.chat_template={dated}"]), CTX)
    assert result.values["b"]["deterministic"] is False
    assert result.values["b"]["date_dependent"] is True
    assert result.values["b"]["rendered"].startswith("Today: 03 Feb 2001\n")
    finding = next(f for f in result.findings if f.key == "template.deterministic")
    assert (finding.severity, finding.a, finding.b) == ("medium", True, False)


def test_template_without_generation_prompt(revise):
    template = revise.recipe.template.chat_template.replace(
        "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}", ""
    )
    result = probe(revise, make("revise", [f"template.chat_template={template}"]), CTX)
    keys = {f.key: f for f in result.findings}
    assert sorted(keys) == ["template.chat_template", "template.generation_prompt"]
    assert keys["template.chat_template"].severity == "low"
    assert (keys["template.generation_prompt"].a, keys["template.generation_prompt"].b) == (True, False)
