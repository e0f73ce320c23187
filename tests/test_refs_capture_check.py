"""`parity refs verify --capture`: a recipe compared with a capture of its own code, field by field (the
shell-launcher fixture against hand-made recipes; the real llmhalluc checkout when ../shared has it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parity.capture import CaptureOptions, capture
from parity.capture.reader import load_capture
from parity.errors import ParityError
from parity.refs.capture_check import capture_section, compare_with_capture
from parity.refs.format import format_capture_check
from parity.spec import LaunchSpec, ModelSpec, Recipe

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "capture"
REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
LLMHALLUC = SHARED / "upstream" / "halluc-f899ae51"


@pytest.fixture(scope="module")
def shell_capture(tmp_path_factory):
    """The shell-launcher fixture captured at 1, 2 and 8 GPUs (global batch 32 from its own arithmetic)."""
    root = tmp_path_factory.mktemp("refs-capture")
    shutil.copytree(FIXTURES / "shell_launcher", root / "shell_launcher")
    result = capture(
        CaptureOptions(
            checkout=root / "shell_launcher",
            out=root / "capture",
            command=("bash", "-c", "python preprocess.py && bash train.sh"),
            data={"openai/gsm8k": FIXTURES / "data" / "gsm8k"},
            env={"HUB_USER_ID": "someone"},
            world_sizes=(1, 2, 8),
        )
    )
    return load_capture(result.path)


def fixture_recipe(**training) -> Recipe:
    """The shell-launcher recipe written by hand: 8 per device, global batch 32, lr 1e-4, bf16, flash-attn."""
    return Recipe(
        name="tiny",
        model=ModelSpec(
            name_or_path="meta-llama/llama-3.2-1b",
            torch_dtype="bfloat16",
            attn_implementation="flash_attention_2",
        ),
        training={"per_device_train_batch_size": 8, "learning_rate": 1e-4, "bf16": True, **training},
        launch=LaunchSpec(num_processes="world", global_batch=32),
    )


def test_a_faithful_recipe_is_clean(shell_capture):
    check = compare_with_capture("tiny", Path("checkout"), fixture_recipe(), shell_capture)
    assert check.ok and check.count("drift") == 0
    assert [(c.name, c.status) for c in check.checks] == [
        ("training.per_device_train_batch_size", "ok"),
        ("training.learning_rate", "ok"),
        ("training.bf16", "ok"),
        ("launch.world_size_1", "ok"),
        ("launch.world_size_2", "ok"),
        ("launch.world_size_8", "ok"),
        ("model.torch_dtype", "ok"),
        ("model.attn_implementation", "ok"),
        ("peft.method", "ok"),
    ]
    assert check.by_name("launch.world_size_8").captured == {
        "processes": 8,
        "per_device_train_batch_size": 8,
        "gradient_accumulation_steps": 1,
        "global_batch": 64,
    }
    assert check.by_name("model.attn_implementation").captured == "flash_attention_2"


def test_a_drifted_field_is_named_with_both_values(shell_capture):
    recipe = fixture_recipe(learning_rate=2e-4, seed=7)
    recipe.launch.global_batch = 64
    check = compare_with_capture("tiny", Path("checkout"), recipe, shell_capture)
    assert not check.ok
    drifted = {c.name: (c.recipe, c.captured) for c in check.checks if c.status == "drift"}
    assert drifted["training.learning_rate"] == (2e-4, 1e-4)
    assert drifted["training.seed"] == (7, 42)
    assert drifted["launch.world_size_1"][0]["gradient_accumulation_steps"] == 8
    assert drifted["launch.world_size_1"][1]["gradient_accumulation_steps"] == 4
    assert "launch.world_size_8" not in drifted  # 64 at 8 GPUs either way
    text = format_capture_check(check)
    assert "4 drift" in text
    assert "DRIFT    training.learning_rate" in text
    assert "recipe   0.0002" in text and "captured 0.0001" in text
    assert "gradient_accumulation_steps: recipe 8, captured 4" in text


def test_a_capture_section_needs_every_dataset_mapped(tmp_path):
    with pytest.raises(ParityError, match=r"pass --data mtybilly/GSM8K=DIR"):
        capture_section("llmhalluc", tmp_path, {})
    section = capture_section(
        "revise", tmp_path, {"openai/gsm8k": "data"}, stubs=("extra",), python="current"
    )
    assert section["command"] == 'bash -c "python revise/preprocess.py && bash scripts/step-0-sft.sh"'
    assert section["stubs"] == ["ray", "vllm", "extra"]
    assert section["env"] == {"HUB_USER_ID": "someone", "TEMP_PATH": "./.tmp"}
    assert section["python"] == "current" and section["world_sizes"] == [1, 2, 4, 8]
    assert section["data"] == {"openai/gsm8k": str(Path("data").absolute())}


def test_capture_flags_without_capture_are_one_line_exit_2(capsys):
    from parity.cli.app import main

    code = main(["refs", "verify", "--ref", "revise", "--checkout", ".", "--stub", "ray"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "parity: error: --data, --stub, --python and --env need --capture"
    ]


@pytest.mark.skipif(not LLMHALLUC.is_dir(), reason=f"llmhalluc checkout not found at {LLMHALLUC}")
def test_builtin_llmhalluc_is_clean_against_its_capture_except_version_dependent_warmup(
    tmp_path, monkeypatch
):
    from parity.refs.capture_check import verify_by_capture

    monkeypatch.setenv("PARITY_CACHE_DIR", str(tmp_path))
    check = verify_by_capture(
        "llmhalluc", LLMHALLUC, data={"mtybilly/GSM8K": str(SHARED / "data" / "mtybilly-gsm8k")}
    )
    assert check.ok, format_capture_check(check, show_ok=False)
    assert [c.name for c in check.checks if c.status == "version-dependent"] == ["training.warmup_steps"]
    warmup = check.by_name("training.warmup_steps")
    assert (warmup.recipe, warmup.captured) == (0.1, 0)
    assert "transformers 5" in warmup.detail and "warmup_ratio" in warmup.detail
    assert check.by_name("launch.world_size_8").captured["global_batch"] == 1024
    assert check.by_name("peft.lora.target_modules").captured == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]
    assert check.count("ok") == 26
