"""A recipe YAML with a `capture:` section resolves to the captured recipe (cached on the second
resolution); bad sections are one ParityError line; a plain YAML never captures."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from parity.errors import ParityError
from parity.registry import resolve_recipe

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "capture"


@pytest.fixture(scope="module")
def recipe_dir(tmp_path_factory) -> Path:
    """A folder with the `trl sft --config` checkout, its data and a YAML declaring its capture."""
    root = tmp_path_factory.mktemp("capture-yaml")
    shutil.copytree(FIXTURES / "trl_sft_config", root / "trl_sft_config")
    data = root / "data"
    data.mkdir()
    rows = [
        json.loads(line) for line in (FIXTURES / "data" / "gsm8k" / "train.jsonl").read_text().splitlines()
    ]
    (data / "train.jsonl").write_text(
        "".join(json.dumps({"prompt": r["question"] + "\n", "completion": r["answer"]}) + "\n" for r in rows)
    )
    (root / "mine.yaml").write_text(
        "name: mine\n"
        "capture:\n"
        "  checkout: trl_sft_config\n"
        "  command: trl sft --config sft.yaml\n"
        "  data: {tiny/gsm8k-prompt-completion: data}\n"
        "  world_sizes: [1]\n"
        "set:\n"
        "  training.seed: 7\n"
    )
    return root


def test_a_capture_section_resolves_to_the_captured_recipe_then_from_cache(recipe_dir, monkeypatch):
    from parity.effective import effective_values
    from parity.plan import resolve

    monkeypatch.setenv("PARITY_CACHE_DIR", str(recipe_dir / "cache"))
    recipe = resolve_recipe(str(recipe_dir / "mine.yaml"))
    assert recipe.name == "mine"
    values = effective_values(resolve(recipe))
    assert values["training.learning_rate"]["value"] == 5e-5
    assert values["training.max_length"]["value"] == 128
    assert values["training.per_device_train_batch_size"]["value"] == 2
    assert values["training.seed"] == {"value": 7, "source": "yaml:mine.yaml"}  # `set:` on top
    assert list((recipe_dir / "cache" / "captures").iterdir())[0].joinpath("manifest.json").is_file()
    started = time.monotonic()
    again = resolve_recipe(str(recipe_dir / "mine.yaml"))
    assert time.monotonic() - started < 5
    assert again.training["learning_rate"] == 5e-5


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("  checkout: trl_sft_config\n  comand: x\n", "unknown key .* 'comand'; did you mean 'command'"),
        ("  command: trl sft\n", "'capture' needs 'checkout'"),
        ("  checkout: trl_sft_config\n", "'capture' needs 'command'"),
        ("  checkout: trl_sft_config\n  command: x\n  world_sizes: 2\n", "'capture.world_sizes' must be"),
        ("  checkout: trl_sft_config\n  command: x\n  data: [a]\n", "'capture.data' must map"),
        ("  checkout: trl_sft_config\n  command: x\n  timeout: soon\n", "'capture.timeout' must be"),
        (
            "  checkout: trl_sft_config\n  command: x\n  train_step: yes please\n",
            "'capture.train_step' must be",
        ),
    ],
)
def test_a_bad_capture_section_is_one_line(recipe_dir, section, message):
    path = recipe_dir / "bad.yaml"
    path.write_text("capture:\n" + section)
    with pytest.raises(ParityError, match=message) as err:
        resolve_recipe(str(path))
    assert "\n" not in str(err.value)


def test_capture_and_extends_are_exclusive(recipe_dir):
    path = recipe_dir / "both.yaml"
    path.write_text("extends: llmhalluc\ncapture: {checkout: trl_sft_config, command: x}\n")
    with pytest.raises(ParityError, match="either 'capture' or 'extends'"):
        resolve_recipe(str(path))


def test_a_plain_yaml_never_captures(recipe_dir, monkeypatch):
    import parity.capture.pipeline as pipeline

    def refuse(options):
        raise AssertionError("a plain YAML recipe started a capture")

    monkeypatch.setattr(pipeline, "capture", refuse)
    path = recipe_dir / "plain.yaml"
    path.write_text("extends: llmhalluc\nset:\n  training.seed: 3\n")
    assert resolve_recipe(str(path)).training["seed"] == 3
