"""`parity show`: effective values with their sources, world-size rules, and one-line errors."""

from __future__ import annotations

import json

import pytest

from parity.cli import main
from parity.cli.console import shorten


def show_json(capsys, *args: str) -> dict:
    assert main(["show", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)["values"]


@pytest.mark.parametrize(("world_size", "accumulation", "global_batch"), [(1, 4, 32), (4, 1, 32), (8, 1, 64)])
def test_revise_batch_per_world_size(capsys, world_size, accumulation, global_batch):
    values = show_json(capsys, "revise", "--world-size", str(world_size))
    assert values["training.gradient_accumulation_steps"] == {"value": accumulation, "source": "launch rule"}
    assert values["effective.global_batch"]["value"] == global_batch
    assert values["effective.num_processes"]["value"] == world_size


@pytest.mark.parametrize(("world_size", "global_batch"), [(1, 128), (2, 256), (4, 512), (8, 1024)])
def test_llmhalluc_processes_follow_the_world_size(capsys, world_size, global_batch):
    values = show_json(capsys, "llmhalluc", "--world-size", str(world_size))
    assert values["launch.num_processes"] == {"value": "world", "source": "upstream:scripts/crc/hf.sh"}
    assert values["launch.launcher"]["value"] == "accelerate launch -m llmhalluc.run_train"
    assert values["effective.num_processes"]["value"] == world_size
    assert values["effective.gradient_accumulation_steps"]["value"] == 8
    assert values["effective.global_batch"]["value"] == global_batch == 16 * 8 * world_size
    expected_deepspeed = None if world_size == 1 else "configs/deepspeed/ds_z0_config.json"
    assert values["effective.deepspeed_config"]["value"] == expected_deepspeed


def test_sources_mark_recipe_upstream_and_library_defaults(capsys):
    values = show_json(capsys, "revise")
    assert values["training.learning_rate"] == {"value": 0.0001, "source": "upstream:scripts/step-0-sft.sh"}
    assert values["training.warmup_steps"] == {"value": 0.1, "source": "upstream:scripts/step-0-sft.sh"}
    assert values["training.lr_scheduler_type"] == {"value": "linear", "source": "default:trl.SFTConfig"}
    assert values["training.max_length"] == {"value": 1024, "source": "default:trl.SFTConfig"}
    assert values["template.chat_template"]["source"] == "upstream:revise/config.py"


def test_llmhalluc_unread_keys_leave_the_library_defaults(capsys):
    values = show_json(capsys, "llmhalluc")
    assert values["training.max_length"] == {"value": 1024, "source": "default:trl.SFTConfig"}
    assert values["model.attn_implementation"] == {"value": None, "source": "spec default"}
    assert values["model.torch_dtype"] == {"value": "bfloat16", "source": "upstream:llmhalluc/train/base.py"}


def test_yaml_formats(capsys):
    import yaml

    assert main(["show", "llmhalluc", "--format", "yaml"]) == 0
    doc = yaml.safe_load(capsys.readouterr().out)
    assert doc["values"]["peft.lora.r"]["value"] == 8
    assert doc["values"]["training.lr_scheduler_type"]["value"] == "cosine"


def test_rich_format_summarizes_the_launch(capsys):
    assert main(["show", "revise", "--world-size", "8"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert out.startswith(
        "revise (built-in (recipes/)) at world size 8: 8 process(es) x per-device 8 x accumulation 1 "
        "= global batch 64"
    )


def test_long_values_are_shortened_to_one_limit():
    assert shorten("x" * 140, 140) == "x" * 140
    assert shorten("x" * 141, 140) == "x" * 137 + "..."
    assert shorten("short", 3) == "..."


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "revsie"], "unknown recipe 'revsie'; did you mean 'revise'?"),
        (
            ["show", "revise", "--set", "training.lr_schedular_type=linear"],
            "did you mean 'training.lr_scheduler_type'?",
        ),
        (["show", "revise", "--set", "trainng.seed=1"], "unknown recipe key 'trainng.seed'"),
        (
            ["show", "revise", "--set", "launch.global_batch=abc"],
            "'launch.global_batch' expects int or null, got 'abc'",
        ),
        (["show", "revise", "--set", "noequals"], "override 'noequals' is not KEY=VALUE"),
        (["show", "revise", "--format", "xml"], "--format must be rich, yaml or json"),
        (["show", "revise", "--world-size", "0"], "parity: error:"),
        (["show", "revise", "--bogus"], "No such option: --bogus"),
        (
            ["show", "revise", "--set", "training.optim=not_an_optimizer"],
            "trl.SFTConfig rejects its training section",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("parity: error:")
    assert message in err
