"""Recipes are pluggable: built-ins, YAML files that extend another recipe, and entry-point plugins."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest

from parity import registry
from parity.cli import main
from parity.errors import ParityError
from parity.registry import known_recipes, resolve_recipe
from parity.spec import Recipe


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_builtins_are_known():
    entries = known_recipes()
    assert entries.names()[:2] == ["llmhalluc", "revise"]
    assert entries.get("llmhalluc").target == "recipes.llmhalluc:build"
    assert entries.get("revise").target == "recipes.revise:build"


def test_yaml_recipe_extends_and_overrides(tmp_path, capsys):
    path = write(
        tmp_path,
        "mine.yaml",
        "extends: revise\nset:\n  training.lr_scheduler_type: cosine\n  tokenizer.pad_token: eos\n",
    )
    recipe = resolve_recipe(str(path))
    assert recipe.name == "mine"
    assert recipe.training["lr_scheduler_type"] == "cosine"
    assert recipe.tokenizer.pad_token == "eos"
    assert recipe.training["learning_rate"] == 1e-4  # inherited from revise
    assert main(["show", str(path), "--format", "json"]) == 0
    values = json.loads(capsys.readouterr().out)["values"]
    assert values["training.lr_scheduler_type"] == {"value": "cosine", "source": "yaml:mine.yaml"}
    assert values["tokenizer.pad_token"] == {"value": "eos", "source": "yaml:mine.yaml"}


def test_yaml_can_extend_another_yaml_and_cli_overrides_win(tmp_path):
    write(tmp_path, "base.yaml", "extends: llmhalluc\nset:\n  training.seed: 11\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nset:\n  peft.lora.r: 16\n")
    recipe = resolve_recipe(str(child), ["training.seed=12"])
    assert recipe.training["seed"] == 12
    assert recipe.peft.lora["r"] == 16
    assert recipe.provenance["training.seed"] == "cli"


def test_template_override_changes_the_rendering(tmp_path):
    path = write(
        tmp_path,
        "t.yaml",
        "extends: revise\nset:\n  template.chat_template: \"{{ messages[0]['content'] }}\"\n",
    )
    recipe = resolve_recipe(str(path))
    assert recipe.template.chat_template == "{{ messages[0]['content'] }}"


def test_reset_restores_the_library_default():
    recipe = resolve_recipe("llmhalluc", ["training.lr_scheduler_type=<default>"])
    assert "lr_scheduler_type" not in recipe.training


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("extends: revise\nset:\n  training.lerning_rate: 1\n", "did you mean 'training.learning_rate'?"),
        ("extends: revise\nsett:\n  training.seed: 1\n", "did you mean 'set'?"),
        ("extends: revise\nset: [1, 2]\n", "'set' must map dotted keys to values"),
        ("extends: revise\nset:\n  training.seed: [unclosed\n", "malformed YAML at line 3"),
        ("extends: nosuchrecipe\n", "unknown recipe 'nosuchrecipe'"),
        ("- just\n- a list\n", "expected a mapping"),
        ("extends: revise\nset:\n  upstream.commit: abc\n", "read-only"),
    ],
)
def test_bad_yaml_is_one_line_and_exit_2(tmp_path, capsys, text, message):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ParityError) as err:
        resolve_recipe(str(path))
    assert message in str(err.value)
    assert main(["show", str(path)]) == 2
    err_text = capsys.readouterr().err.strip()
    assert len(err_text.splitlines()) == 1 and message in err_text


def test_missing_yaml_file_exit_2(capsys):
    assert main(["show", "no/such/recipe.yaml"]) == 2
    assert capsys.readouterr().err.strip() == "parity: error: recipe file not found: no/such/recipe.yaml"


def test_extends_cycle_is_reported(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ParityError, match="cycle"):
        resolve_recipe(str(tmp_path / "a.yaml"))


def test_entry_point_plugin_is_registered(monkeypatch):
    def plugin_entry_points(group: str):
        assert group == "parity.recipes"
        return [EntryPoint(name="myrecipe", value="tests_plugin_recipe:build", group=group)]

    monkeypatch.setattr(registry, "entry_points", plugin_entry_points)
    assert known_recipes().get("myrecipe").origin == "entry point (tests_plugin_recipe:build)"
    recipe = resolve_recipe("myrecipe")
    assert isinstance(recipe, Recipe)
    assert recipe.name == "myrecipe" and recipe.training == {"learning_rate": 3e-5}


def test_exponent_notation_is_a_float_from_cli_and_yaml(tmp_path):
    assert resolve_recipe("revise", ["training.learning_rate=2e-4"]).training["learning_rate"] == 2e-4
    path = write(tmp_path, "lr.yaml", "extends: revise\nset:\n  training.learning_rate: 3e-5\n")
    assert resolve_recipe(str(path)).training["learning_rate"] == 3e-5


def test_plugin_cannot_shadow_a_builtin(monkeypatch):
    def plugin_entry_points(group: str):
        return [
            EntryPoint(name="revise", value="tests_plugin_recipe:build", group=group),
            EntryPoint(name="myrecipe", value="tests_plugin_recipe:build", group=group),
        ]

    monkeypatch.setattr(registry, "entry_points", plugin_entry_points)
    entries = known_recipes()
    assert entries.names() == ["llmhalluc", "revise", "myrecipe"]
    assert entries.get("revise").origin == "built-in (recipes/)"
    with pytest.raises(ParityError, match="unknown recipe 'myrecipes'; did you mean 'myrecipe'"):
        resolve_recipe("myrecipes")
