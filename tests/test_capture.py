"""`parity capture` on the small fixture recipes under tests/fixtures/capture: a TRL script behind a shell
launcher, a YAML-driven trainer whose parser drops unknown keys, and TRL's own `trl sft --config`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parity.capture import CaptureError, CaptureOptions, capture
from parity.capture.reader import load_capture

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "capture"
REPO = Path(__file__).resolve().parent.parent
GSM8K_ROWS = FIXTURES / "data" / "gsm8k"
LLAMA_1B_PARAMETERS = 1_235_814_400


def tree_hash(folder: Path) -> str:
    """sha256 over every file (path, bytes) and folder under `folder`, nothing left out."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Checkouts copied out of the repository, and the tiny GSM8K data the tests write."""
    root = tmp_path_factory.mktemp("capture")
    for name in ("shell_launcher", "yaml_trainer", "trl_sft_config"):
        shutil.copytree(FIXTURES / name, root / name)
    shutil.copytree(GSM8K_ROWS, root / "gsm8k")
    prompt_completion = root / "gsm8k-prompt-completion"
    prompt_completion.mkdir()
    rows = [json.loads(line) for line in (GSM8K_ROWS / "train.jsonl").read_text().splitlines()]
    (prompt_completion / "train.jsonl").write_text(
        "".join(json.dumps({"prompt": r["question"] + "\n", "completion": r["answer"]}) + "\n" for r in rows)
    )
    return root


def shell_options(workdir: Path, **changes) -> CaptureOptions:
    options = {
        "checkout": workdir / "shell_launcher",
        "out": workdir / "captures" / "shell",
        "command": ("bash", "-c", "python preprocess.py && bash train.sh"),
        "data": {"openai/gsm8k": workdir / "gsm8k"},
        "env": {"HUB_USER_ID": "someone"},
        "world_sizes": (1, 2, 4, 8),
    }
    return CaptureOptions(**{**options, **changes})


@pytest.fixture(scope="module")
def shell_capture(workdir):
    before = tree_hash(workdir / "shell_launcher")
    result = capture(shell_options(workdir))
    return result, before


def test_batch_table_follows_the_scripts_own_arithmetic(shell_capture):
    result, _ = shell_capture
    recipe = load_capture(result.path)
    table = [
        (row.world_size, row.processes, row.per_device_train_batch_size, row.gradient_accumulation_steps)
        for row in recipe.launch
    ]
    # BATCH_SIZE=32, 8 per device, accumulation = max(32 / (8 x GPUs), 1); accelerate: one process per GPU
    assert table == [(1, 1, 8, 4), (2, 2, 8, 2), (4, 4, 8, 1), (8, 8, 8, 1)]
    assert [row.global_batch for row in recipe.launch] == [32, 32, 32, 64]
    assert recipe.launch[0].processes_from == "accelerate's default: one process per visible GPU"
    assert recipe.launch[3].launcher["script"] == "train.py"
    assert result.manifest["launch"][2]["nvidia_smi_calls"] == 1


def test_training_arguments_are_the_recipes_with_their_defaults(shell_capture):
    recipe = load_capture(shell_capture[0].path)
    args = recipe.training_args
    assert args.class_name == "__main__.RecipeConfig"
    assert args.fields["learning_rate"] == 1e-4
    assert args.fields["push_to_hub"] is True
    assert args.fields["report_to"] == ["wandb"]
    assert args.non_default["gradient_accumulation_steps"] == {"value": 4, "default": 1}
    assert args.non_default["model_name_or_path"] == {"value": "meta-llama/llama-3.2-1b", "default": None}
    # 8 per device is also SFTConfig's own default here, so it is not a difference
    assert args.fields["per_device_train_batch_size"] == 8
    assert "per_device_train_batch_size" not in args.non_default
    assert args.defaults_from == "RecipeConfig()"


def test_prepared_example_zero_is_trls_own_tokenization(shell_capture):
    from transformers import AutoTokenizer
    from trl import SFTConfig

    from parity.capture.hubcache import packaged_llama_tokenizer
    from parity.trl_bridge import prepare_with_trl

    recipe = load_capture(shell_capture[0].path)
    raw_row = recipe.raw["train"][0]
    assert raw_row["prompt"][0]["content"].startswith("Natalia sold clips")
    tokenizer = AutoTokenizer.from_pretrained(packaged_llama_tokenizer())
    tokenizer.chat_template = (recipe.tokenizer_path / "chat_template.jinja").read_text()
    expected = prepare_with_trl(
        [raw_row], tokenizer, SFTConfig(output_dir="unused", bf16=False, max_length=1024)
    )
    prepared = recipe.prepared["train"]
    assert prepared.input_ids[0] == expected["input_ids"][0]
    assert prepared.input_ids[0][:6] == [27, 91, 882, 91, 397, 45]
    assert len(prepared.input_ids) == 4
    assert len(recipe.prepared["eval"].input_ids) == 2
    collated = recipe.collated["train"]  # the trainer's own collator, one example per batch
    assert collated.input_ids[0] == prepared.input_ids[0] and collated.labels[0] == expected["labels"][0]
    assert recipe.collator["collated"] == {"rows": 4, "of": 4}


def test_redirects_are_recorded(shell_capture):
    manifest = shell_capture[0].manifest
    events = manifest["redirects"]["events"]
    kinds = {event["kind"] for event in events}
    assert {"dataset-load", "dataset-push", "model-load", "hub-push", "tracker", "cpu-refusal"} <= kinds
    push = next(event for event in events if event["kind"] == "dataset-push")
    assert push["repo_id"] == "someone/gsm8k" and push["rows"] == {"train": 4, "test": 2}
    model = next(event for event in events if event["kind"] == "model-load")
    assert model["request"]["attn_implementation"] == "flash_attention_2"
    assert model["request"]["device_map"] == "cuda"
    assert model["request"]["dtype"] == "bfloat16"
    assert "flash_attention_2 -> sdpa" in model["neutralized"]["attn_implementation"]
    hub = next(event for event in events if event["kind"] == "hub-push")
    assert hub["repo_id"] == "someone/tiny-sft"
    assert manifest["env"] == {
        "variables": {"HUB_USER_ID": "someone"},
        "dotenv": "written as the copy's .env",
    }
    assert manifest["redirects"]["tokenizers"]["meta-llama/Llama-3.2-1B"]["source"].startswith("built in")
    assert manifest["versions"]["transformers"] == __import__("transformers").__version__


def test_model_record_measures_the_real_architecture(shell_capture):
    recipe = load_capture(shell_capture[0].path)
    assert recipe.model.architecture_class.endswith("LlamaForCausalLM")
    assert recipe.model.architecture_config["hidden_size"] == 2048
    assert recipe.model.parameter_count == LLAMA_1B_PARAMETERS
    assert recipe.model.peft is None
    assert recipe.collator["class"].endswith("DataCollatorForLanguageModeling")
    assert recipe.collator["settings"]["pad_token_id"] == 128004


def test_the_checkout_is_never_written(shell_capture, workdir):
    _, before = shell_capture
    assert tree_hash(workdir / "shell_launcher") == before
    assert not (workdir / "shell_launcher" / ".env").exists()


def test_unchanged_recipe_is_served_from_the_cache(shell_capture, workdir):
    result, _ = shell_capture
    manifest_bytes = (result.path / "manifest.json").read_bytes()
    started = time.monotonic()
    again = capture(shell_options(workdir))
    assert again.cached and time.monotonic() - started < 5
    assert (result.path / "manifest.json").read_bytes() == manifest_bytes
    assert again.manifest == json.loads(manifest_bytes)


def test_yaml_parser_drops_unknown_keys_and_the_capture_shows_the_effective_values(workdir):
    from transformers import TrainingArguments
    from trl import SFTConfig

    result = capture(
        CaptureOptions(
            checkout=workdir / "yaml_trainer",
            out=workdir / "captures" / "yaml",
            command=("accelerate", "launch", "-m", "yaml_trainer.run", "--config", "configs/sft.yaml"),
            data={"openai/gsm8k": workdir / "gsm8k"},
            world_sizes=(1, 4),
        )
    )
    recipe = load_capture(result.path)
    fields = recipe.training_args.fields
    assert "cutoff_len" not in fields
    assert fields["max_length"] == SFTConfig.__dataclass_fields__["max_length"].default == 1024
    has_warmup_ratio = "warmup_ratio" in TrainingArguments.__dataclass_fields__
    assert ("warmup_ratio" in fields) == has_warmup_ratio
    assert [(row.world_size, row.processes, row.global_batch) for row in recipe.launch] == [
        (1, 1, 8),
        (4, 4, 32),
    ]
    assert recipe.launch[0].launcher["options"] == {"module": True}
    assert recipe.model.request["dtype"] == "auto"
    assert recipe.peft["config"]["r"] == 8
    # LoRA r=8 on q_proj (2048x2048) and v_proj (2048x512) of 16 layers: 16 x 8 x (4096 + 2560)
    assert recipe.model.trainable_parameter_count == 16 * 8 * (4096 + 2560) == 851_968
    assert recipe.model.parameter_count == LLAMA_1B_PARAMETERS
    assert recipe.raw["train"][0]["prompt"].startswith("Question: Natalia")


def test_trl_sft_config_file_alone(workdir):
    result = capture(
        CaptureOptions(
            checkout=workdir / "trl_sft_config",
            out=workdir / "captures" / "trl-sft",
            command=("trl", "sft", "--config", "sft.yaml"),
            data={"tiny/gsm8k-prompt-completion": workdir / "gsm8k-prompt-completion"},
            world_sizes=(1,),
        )
    )
    recipe = load_capture(result.path)
    assert recipe.training_args.fields["max_length"] == 128
    assert recipe.training_args.fields["learning_rate"] == 5e-5
    assert recipe.launch[0].launcher["launcher"] == "accelerate launch"
    assert recipe.launch[0].global_batch == 4
    assert recipe.model.request["name"] == "meta-llama/Llama-3.2-1B"
    assert recipe.prepared["train"].input_ids[0][0] == 128000
    assert len(recipe.prepared["train"].input_ids) == 4
    assert recipe.loss_step is None  # no --train-step: nothing trains


def test_train_step_measures_each_tokens_weight_on_the_trainers_own_step(workdir):
    """--train-step: the trainer's first optimizer step runs on the stand-in model; each trained token's weight is
    read from its logits' gradient (TRL 1.16 / transformers 5: one token mean over the step, num_items_in_batch
    passed to every micro-batch's forward, the logged loss that token mean)."""
    from parity.probes.loss_norm import step_reduction

    result = capture(
        CaptureOptions(
            checkout=workdir / "trl_sft_config",
            out=workdir / "captures" / "trl-sft-step",
            command=("trl", "sft", "--config", "sft.yaml"),
            data={"tiny/gsm8k-prompt-completion": workdir / "gsm8k-prompt-completion"},
            world_sizes=(1,),
            train_step=True,
        )
    )
    captured = load_capture(result.path)
    step = captured.loss_step
    assert step["measured"] is True and (step["accumulation"], step["per_device_train_batch_size"]) == (2, 2)
    assert len(step["micro_batches"]) == 2 and all(len(batch["rows"]) == 2 for batch in step["micro_batches"])
    trained = sum(row["trained_tokens"] for batch in step["micro_batches"] for row in batch["rows"])
    assert {batch["num_items_in_batch"] for batch in step["micro_batches"]} == {trained}
    found = step_reduction(step)
    assert (found["reduction"], found["token_weight_spread"], found["gradient_scale"]) == (
        "step_token_mean",
        1.0,
        1.0,
    )
    assert found["logged_loss_factor"] == pytest.approx(1.0, abs=1e-3)
    assert result.manifest["options"]["train_step"] is True


def run_cli(*args: str, timeout: float = 300, cache: Path | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    if cache is not None:
        environment["PARITY_CACHE_DIR"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "parity.capture", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
        check=False,
    )


def stderr_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unmapped_dataset_exits_2_naming_the_flag(workdir):
    out = workdir / "captures" / "unmapped"
    cache = workdir / "cache"
    result = run_cli(
        "--checkout", str(workdir / "shell_launcher"), "--out", str(out), "--world-size", "1",
        "--", "python", "preprocess.py", cache=cache,
    )  # fmt: skip
    assert result.returncode == 2
    line = stderr_line(result)
    assert "map it with --data openai/gsm8k=DIR" in line
    [log] = (cache / "capture-logs").iterdir()  # kept in parity's cache folder, nothing written beside --out
    assert log.name.startswith("unmapped-") and line.endswith(f"full log: {log})")
    assert "needs the hub" in log.read_text() and not out.exists()
    assert not list(out.parent.glob("unmapped*"))


def test_timeout_kills_the_command_and_exits_2(workdir):
    started = time.monotonic()
    result = run_cli(
        "--checkout", str(workdir / "shell_launcher"), "--out", str(workdir / "captures" / "slow"),
        "--timeout", "1", "--world-size", "1", "--", "bash", "-c", "sleep 60", cache=workdir / "cache",
    )  # fmt: skip
    assert result.returncode == 2 and time.monotonic() - started < 30
    assert "capture timed out after 1 s, the recipe's processes were ended" in stderr_line(result)


def test_a_command_that_never_builds_a_trainer_exits_2(workdir):
    result = run_cli(
        "--checkout", str(workdir / "shell_launcher"), "--out", str(workdir / "captures" / "none"),
        "--world-size", "1", "--", "python", "-c", "print('no trainer here')", cache=workdir / "cache",
    )  # fmt: skip
    assert result.returncode == 2
    assert "ended (exit 0) without constructing a trainer" in stderr_line(result)


def test_help_says_capturing_executes_the_recipe():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "EXECUTES the recipe's code" in " ".join(result.stdout.split())


def test_torchrun_module_form_counts_one_process_per_gpu(workdir):
    result = capture(
        CaptureOptions(
            checkout=workdir / "yaml_trainer",
            out=workdir / "captures" / "torchrun",
            command=(
                "python",
                "-m",
                "torch.distributed.run",
                "--nproc-per-node=gpu",
                "-m",
                "yaml_trainer.run",
                "--config",
                "configs/sft.yaml",
            ),  # fmt: skip
            data={"openai/gsm8k": workdir / "gsm8k"},
            world_sizes=(2,),
        )
    )
    row = load_capture(result.path).launch[0]
    assert (row.processes, row.global_batch) == (2, 16)
    assert row.launcher["launcher"] == "torchrun"
    assert row.processes_from == "--nproc_per_node=gpu: one per visible GPU x 1 node(s)"


def test_the_recipes_own_trainer_failure_is_reported_as_such(workdir, monkeypatch):
    """A base model with conversational data and no chat template fails inside TRL, as it would for real."""
    monkeypatch.setenv("PARITY_CACHE_DIR", str(workdir / "cache"))
    conversations = workdir / "conversations"
    conversations.mkdir()
    (conversations / "train.jsonl").write_text(
        json.dumps({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})
        + "\n"
    )
    options = CaptureOptions(
        checkout=workdir / "trl_sft_config",
        out=workdir / "captures" / "no-template",
        command=("trl", "sft", "--config", "sft.yaml"),
        data={"tiny/gsm8k-prompt-completion": conversations},
        world_sizes=(1,),
    )
    with pytest.raises(
        CaptureError, match=r"the recipe's own SFTTrainer\(\.\.\.\) raised \w+Error: .*chat"
    ) as err:
        capture(options)
    assert "\n" not in str(err.value) and "full log: " in str(err.value)


def test_a_capture_is_a_parity_recipe_with_its_launch_rules(shell_capture):
    from trl import SFTConfig

    from parity.capture.recipe import NOT_CAPTURED, recipe_from_capture

    recipe = recipe_from_capture(load_capture(shell_capture[0].path))
    assert recipe.name == "capture:shell"
    assert (recipe.launch.num_processes, recipe.launch.global_batch) == ("world", 32)
    assert recipe.launch.launcher == "accelerate launch"
    assert recipe.training["per_device_train_batch_size"] == 8
    assert "gradient_accumulation_steps" not in recipe.training  # derived per world size from global_batch
    assert recipe.training["learning_rate"] == 1e-4
    assert (recipe.model.name_or_path, recipe.model.attn_implementation) == (
        "meta-llama/llama-3.2-1b",
        "flash_attention_2",
    )
    assert recipe.tokenizer.source.endswith("tokenizer")
    assert recipe.upstream.consumed["model_name_or_path"].startswith("not a trl.SFTConfig field")
    assert recipe.provenance["eval"] == NOT_CAPTURED
    config = SFTConfig(output_dir="unused", use_cpu=True, **recipe.training)
    assert config.push_to_hub is True and config.learning_rate == 1e-4


def test_capture_dir_is_a_recipe_and_materializes_from_the_captured_examples(shell_capture, tmp_path):
    from parity.materialize import materialize
    from parity.registry import resolve_recipe
    from parity.tasks.gsm8k.synthetic import generate_splits

    path = shell_capture[0].path
    captured = load_capture(path)
    recipe = resolve_recipe(f"capture:{path}")
    assert recipe.name == f"capture:{path}" and recipe.origin == f"capture ({path})"
    for name, rows in zip(("train", "test"), generate_splits(20, 5), strict=True):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    materialized = materialize(recipe, data=str(tmp_path), world_size=2, samples=2)
    assert materialized.prepared.input_ids == captured.collated["train"].input_ids[:2]
    assert materialized.prepared.labels == captured.collated["train"].labels[:2]
    assert materialized.sample_rows == captured.raw["train"][:2]
    accumulation = [materialized.launch_plan(n).gradient_accumulation_steps for n in (1, 2, 4, 8)]
    assert accumulation == [row.gradient_accumulation_steps for row in captured.launch] == [4, 2, 1, 1]
    assert materialized.tokenizer.chat_template == (path / "tokenizer" / "chat_template.jinja").read_text()
    # optimizer steps count the rows the recipe's own code built, not the rows of --data (20 here)
    rows = len(captured.raw["train"])
    assert len(materialized.train_rows) == rows != 20
    assert materialized.step_plan(1).rows == rows


def test_parity_show_reads_a_capture(shell_capture):
    path = shell_capture[0].path
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "parity.cli",
            "show",
            f"capture:{path}",
            "--format",
            "json",
            "--world-size",
            "4",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)["values"]
    assert values["training.learning_rate"] == {"value": 1e-4, "source": "capture"}
    assert values["effective.gradient_accumulation_steps"]["value"] == 1
    assert values["model.attn_implementation"]["value"] == "flash_attention_2"


def test_a_missing_capture_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "parity.cli", "show", f"capture:{tmp_path / 'absent'}"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 2
    assert (
        stderr_line(result)
        == f"parity: error: capture {tmp_path / 'absent'}: not a directory (create it with `parity capture`)"
    )


def test_the_parity_cli_has_the_capture_command():
    result = subprocess.run(
        [sys.executable, "-m", "parity.cli", "capture", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert result.returncode == 0 and "EXECUTES the recipe's code" in " ".join(result.stdout.split())
