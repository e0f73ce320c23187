"""`parity capture` on the two real upstream recipes in ../shared/upstream (skipped, with the reason, when the
checkouts or an interpreter able to import the recipe are absent).

llmhalluc imports omegaconf and easydict (parity's dev extras install them); PARITY_CAPTURE_LLMHALLUC_PYTHON
names another interpreter. It is launched the way its scripts launch it (`accelerate launch -m`, scripts/crc/hf.sh),
so its processes follow the world size. revise needs its pinned environment (its arguments do not parse under
transformers 5): `--python pinned` where parity.capture.environment exists, else PARITY_CAPTURE_REVISE_PYTHON."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity.capture import CaptureOptions, capture
from parity.capture.reader import load_capture

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
UPSTREAM = SHARED / "upstream"
LLMHALLUC = UPSTREAM / "halluc-f899ae51"
REVISE = UPSTREAM / "revise-35ed7cf"

pytestmark = pytest.mark.skipif(not UPSTREAM.is_dir(), reason=f"upstream checkouts not found at {UPSTREAM}")


def interpreter_missing(python: str, modules: list[str]) -> str | None:
    """Why `python` cannot run the recipe (a module it cannot import), or None."""
    executable = sys.executable if python == "current" else python
    if not Path(executable).is_file():
        return f"{executable} does not exist"
    probe = f"import importlib.util as u; print([m for m in {modules!r} if u.find_spec(m) is None])"
    result = subprocess.run([executable, "-c", probe], capture_output=True, text=True, check=False)
    missing = result.stdout.strip()
    return None if missing == "[]" else f"{executable} lacks {missing}"


@pytest.fixture(scope="module")
def llmhalluc(tmp_path_factory):
    python = os.environ.get("PARITY_CAPTURE_LLMHALLUC_PYTHON", "current")
    reason = interpreter_missing(python, ["omegaconf", "easydict", "trl", "peft"])
    if reason:
        pytest.skip(f"llmhalluc cannot run: {reason} (set PARITY_CAPTURE_LLMHALLUC_PYTHON)")
    options = CaptureOptions(
        checkout=LLMHALLUC,
        out=tmp_path_factory.mktemp("llmhalluc") / "capture",
        command=(
            "accelerate",
            "launch",
            "-m",
            "llmhalluc.run_train",
            "--config",
            "configs/llmhalluc/gsm8k/sft.yaml",
        ),
        data={"mtybilly/GSM8K": SHARED / "data" / "mtybilly-gsm8k"},
        world_sizes=(1, 2, 4, 8),
        python=python,
    )
    return capture(options), options


def test_llmhalluc_effective_training_arguments(llmhalluc):
    recipe = load_capture(llmhalluc[0].path)
    fields = recipe.training_args.fields
    assert recipe.training_args.class_name == "llmhalluc.hparams.ft_args.SFTArguments"
    assert "cutoff_len" not in fields and fields["max_length"] == 1024
    transformers_major = int(recipe.manifest["versions"]["transformers"].split(".")[0])
    if transformers_major >= 5:
        assert "warmup_ratio" not in fields and fields["warmup_steps"] == 0
    else:
        assert fields["warmup_ratio"] == 0.1
    assert [(row.world_size, row.processes, row.global_batch) for row in recipe.launch] == [
        (1, 1, 128),
        (2, 2, 256),
        (4, 4, 512),
        (8, 8, 1024),
    ]


def test_llmhalluc_model_request_and_lora(llmhalluc):
    recipe = load_capture(llmhalluc[0].path)
    request = recipe.model.request
    assert (request["name"], request["dtype"], request["attn_implementation"]) == (
        "meta-llama/Llama-3.2-1B",
        "bfloat16",
        None,
    )
    assert request["trust_remote_code"] is True and request["low_cpu_mem_usage"] is True
    assert recipe.peft["config"]["r"] == 8
    # r=8 on every linear layer of 16 Llama-3.2-1B blocks: 16 x 8 x (4096 + 2560 + 2560 + 4096 + 3 x 10240)
    assert recipe.model.trainable_parameter_count == 5_636_096


def test_llmhalluc_example_zero(llmhalluc):
    prepared = load_capture(llmhalluc[0].path).prepared["train"]
    assert len(prepared.input_ids) == 7473
    assert len(prepared.input_ids[0]) == 117 and prepared.input_ids[0][0] == 198


def test_llmhalluc_recapture_is_cached(llmhalluc):
    result, options = llmhalluc
    started = time.monotonic()
    again = capture(options)
    assert again.cached and time.monotonic() - started < 5 and again.manifest == result.manifest


def revise_python() -> str:
    if importlib.util.find_spec("parity.capture.environment") is not None:
        return "pinned"
    python = os.environ.get("PARITY_CAPTURE_REVISE_PYTHON")
    if python is None:
        pytest.skip(
            "revise needs its pinned environment (trl 0.17, transformers 4.54): parity.capture.environment "
            "is not in this build and PARITY_CAPTURE_REVISE_PYTHON is unset"
        )
    reason = interpreter_missing(python, ["trl", "dotenv"])
    if reason:
        pytest.skip(f"revise cannot run: {reason}")
    return python


@pytest.fixture(scope="module")
def revise(tmp_path_factory):
    options = CaptureOptions(
        checkout=REVISE,
        out=tmp_path_factory.mktemp("revise") / "capture",
        command=("bash", "-c", "python revise/preprocess.py && bash scripts/step-0-sft.sh"),
        data={"openai/gsm8k": SHARED / "data" / "gsm8k"},
        stubs=("ray", "vllm"),
        env={"HUB_USER_ID": "someone", "TEMP_PATH": "./.tmp"},
        python=revise_python(),
    )
    return load_capture(capture(options).path)


def test_revise_gradient_accumulation_from_its_gpu_count(revise):
    table = [
        (row.world_size, row.processes, row.gradient_accumulation_steps, row.global_batch)
        for row in revise.launch
    ]
    assert table == [(1, 1, 4, 32), (2, 2, 2, 32), (4, 4, 1, 32), (8, 8, 1, 64)]


def test_revise_runs_under_its_pins_with_its_redirects(revise):
    assert revise.manifest["versions"]["transformers"] == "4.54.1"
    assert revise.manifest["versions"]["trl"] == "0.17.0"
    fields = revise.training_args.fields
    assert fields["warmup_ratio"] == 0.1 and fields["max_length"] == 1024 and fields["push_to_hub"] is True
    request = revise.model.request
    assert (request["attn_implementation"], request["device_map"], request["dtype"]) == (
        "flash_attention_2",
        "cuda",
        "bfloat16",
    )
    kinds = [event["kind"] for event in revise.manifest["redirects"]["events"]]
    assert {"dataset-push", "hub-push", "cpu-refusal"} <= set(kinds)
    stubbed = {
        event["module"] for event in revise.manifest["redirects"]["events"] if event["kind"] == "stub-import"
    }
    assert {"ray", "vllm"} <= stubbed
    # preprocess.py splits 10% of GSM8K's 7,473 train rows off as "eval"
    assert len(revise.raw["train"]) == 6725 and len(revise.raw["eval"]) == 748


def test_revise_trains_on_every_token_as_its_own_collator_builds_the_labels(revise):
    """TRL 0.17 prepares completion_mask, not labels; with completion_only_loss false its collator keeps all."""
    assert revise.prepared["train"].labels is None and revise.prepared["train"].completion_mask is not None
    collated = revise.collated["train"]
    assert len(collated.rows) == 1024
    assert all(labels == ids for labels, ids in zip(collated.labels, collated.input_ids, strict=True))


def test_llmhalluc_warmup_exists_only_under_transformers_4(tmp_path):
    """Pinned as of its commit date (transformers 4.57, trl 0.27) warmup_ratio 0.1 reaches the trainer."""
    if importlib.util.find_spec("parity.capture.environment") is None:
        pytest.skip("--python pinned needs parity.capture.environment, not in this build")
    result = capture(
        CaptureOptions(
            checkout=LLMHALLUC,
            out=tmp_path / "capture",
            command=("python", "-m", "llmhalluc.run_train", "--config", "configs/llmhalluc/gsm8k/sft.yaml"),
            data={"mtybilly/GSM8K": SHARED / "data" / "mtybilly-gsm8k"},
            world_sizes=(1,),
            python="pinned",
        )
    )
    recipe = load_capture(result.path)
    assert recipe.manifest["versions"]["transformers"].startswith("4.")
    assert recipe.training_args.fields["warmup_ratio"] == 0.1
    assert recipe.training_args.fields["max_length"] == 1024
    prepared = recipe.prepared["train"]
    assert len(prepared.input_ids[0]) == 117 and prepared.input_ids[0][0] == 198
