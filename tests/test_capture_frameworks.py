"""The same GSM8K LoRA recipe written for TRL, LLaMA-Factory and Axolotl (tests/fixtures/frameworks), each
captured in its own framework environment (`--python framework:NAME`, built with uv, cached): the framework's
settings with provenance, parity's effective values, launch decisions at 1 and 2 GPUs, the prepared and
collated rows with attention masks, the loaded raw rows, `--rows`; plus the parts without a build."""

from __future__ import annotations

import sys

import pytest
from framework_recipes import (
    BOS,
    DOUBLE_NEWLINE,
    EOS,
    PAD,
    ROWS,
    SERVED,
    captured,
    captures_root,
    gsm8k_questions,
    needs_gsm8k,
)

from parity.capture.environment import (
    environment_key,
    find_torch_wheel,
    plan_install,
    wheels_for_other_pythons,
)
from parity.capture.frameworks.environments import FRAMEWORK_ENVIRONMENTS, parse_choice
from parity.capture.frameworks.manifest import rows_section
from parity.capture.frameworks.settings import framework_training
from parity.capture.options import CaptureOptions, validate
from parity.capture.recipe import recipe_from_capture
from parity.errors import ParityError

# --- without a build -------------------------------------------------------------------------------------


def test_framework_choices_name_a_registered_framework_and_version():
    assert parse_choice("framework:llamafactory")[1:] == (FRAMEWORK_ENVIRONMENTS.get("llamafactory"), "0.9.5")
    assert parse_choice("framework:Axolotl==0.18.0")[0::2] == ("axolotl", "0.18.0")
    assert FRAMEWORK_ENVIRONMENTS.get("trl").requirement() == "trl[peft]==1.16.0"
    with pytest.raises(ParityError, match="unknown framework environment 'lamafactory'.*llamafactory"):
        parse_choice("framework:lamafactory")
    with pytest.raises(ParityError, match=r"^--python framework:trl==one: 'one' is not a version"):
        parse_choice("framework:trl==one")


def test_axolotl_keeps_the_gpu_packages_it_imports_and_no_framework_gets_torchvision():
    torch = find_torch_wheel()
    axolotl = FRAMEWORK_ENVIRONMENTS.get("axolotl")
    plan = plan_install([axolotl.requirement()], torch, axolotl.skip, axolotl.keep_gpu_packages)
    assert {"bitsandbytes", "triton", "xformers"}.isdisjoint(plan.dropped)
    assert {"torchvision", "torchaudio", "flash-attn", "deepspeed", "vllm"} <= set(plan.dropped)
    plain = plan_install(["axolotl==0.19.0"], torch)
    assert {"bitsandbytes", "triton", "xformers"} <= set(plain.dropped)
    # a checkout's environment keeps its cache key; the wheel-tag step is part of a framework's
    assert environment_key(plan, "2026-12-06") == environment_key(plan, "2026-12-06", None)
    assert environment_key(plan, "2026-12-06") != environment_key(
        plan, "2026-12-06", {"fix_wheel_tags": True}
    )


def test_wheels_tagged_only_for_another_python_are_found(tmp_path):
    running = f"py{sys.version_info.major}{sys.version_info.minor}"
    older = f"py{sys.version_info.major}{sys.version_info.minor - 1}"
    for name, tags in {
        "multiprocess-0.70.19": [older],
        "dill-0.4.0": ["py3"],
        "other-1.0": [older, running],
        "compiled-2.0": ["cp311-cp311-manylinux_2_17_x86_64"],
    }.items():
        folder = tmp_path / f"{name}.dist-info"
        folder.mkdir()
        lines = ["Wheel-Version: 1.0"] + [
            f"Tag: {tag}-none-any" if "-" not in tag else f"Tag: {tag}" for tag in tags
        ]
        (folder / "WHEEL").write_text("\n".join(lines) + "\n")
    assert wheels_for_other_pythons(tmp_path) == {"multiprocess": "0.70.19"}


def test_rows_must_be_positive(tmp_path):
    options = CaptureOptions(checkout=tmp_path, out=tmp_path.parent / "out", command=("true",), rows=0)
    with pytest.raises(ParityError, match="^--rows must be a positive number of rows, got 0$"):
        validate(options)


def test_rows_section_says_rows_were_limited_only_when_a_load_served_fewer():
    load = {
        "call": {"path": "json"},
        "asked_by": "x",
        "splits": {"train": {"full_rows": 512, "served_rows": 100}},
    }
    assert rows_section(100, [load])["limited"] is True
    whole = {**load, "splits": {"train": {"full_rows": 80, "served_rows": 80}}}
    assert rows_section(100, [whole])["limited"] is False
    assert rows_section(None, [whole]) == {
        "limit": None,
        "limited": False,
        "loads": [
            {
                "call": {"path": "json"},
                "asked_by": "x",
                "splits": {"train": {"full_rows": 80, "served_rows": 80}},
            }
        ],
    }


def test_a_framework_class_is_never_filled_with_trl_defaults():
    framework = {
        "framework": "llamafactory",
        "config_files": {"cfg.yaml": {"cutoff_len": 1024, "train_on_prompt": False}},
        "effective": {
            "max_length": {"value": 1024, "from": "DataArguments.cutoff_len", "provenance": "recipe"},
            "completion_only": {
                "value": True,
                "from": "DataArguments.train_on_prompt",
                "provenance": "recipe",
            },
            "gradient_checkpointing": {"value": True, "from": "the model", "provenance": "measured"},
            "template": {"value": "alpaca", "from": "DataArguments.template", "provenance": "recipe"},
        },
    }
    fields = {"learning_rate": 1e-4, "logging_steps": 500, "max_steps": 32, "fsdp": [], "seed": 42}
    training, provenance, left_out = framework_training(
        framework,
        "llamafactory.hparams.training_args.TrainingArguments",
        fields,
        {"learning_rate"},
        frozenset(),
    )
    assert training == {
        "learning_rate": 1e-4,
        "logging_steps": 500,  # SFTConfig's own default is 10: the class's 500 is what it trains with
        "max_length": 1024,
        "completion_only_loss": True,
        "gradient_checkpointing": True,
    }
    assert provenance["training.max_length"] == "capture: llamafactory DataArguments.cutoff_len (recipe)"
    assert (
        provenance["training.logging_steps"] == "capture (TrainingArguments's default; SFTConfig's differs)"
    )
    assert "training.learning_rate" not in provenance  # the recipe's class changed it: plain "capture"
    assert provenance["training.dataset_text_field"] == (
        "not applicable: TrainingArguments has no such field and llamafactory maps none to it"
    )
    assert (
        "training.seed" not in provenance
    )  # the class's own value equals SFTConfig's default: nothing to say
    assert left_out == {
        "max_steps": "32 computed by llamafactory from the rows the capture served (not set by the recipe); "
        "parity counts steps from the data"
    }


# --- the three recipes, each captured in its own environment ---------------------------------------------


@pytest.fixture(scope="module")
def trl_capture(tmp_path_factory):
    return captured(captures_root(tmp_path_factory), "trl", world_sizes=(1, 2))


@pytest.fixture(scope="module")
def llamafactory_capture(tmp_path_factory):
    return captured(captures_root(tmp_path_factory), "llamafactory", world_sizes=(1, 2))


@pytest.fixture(scope="module")
def axolotl_capture(tmp_path_factory):
    return captured(captures_root(tmp_path_factory), "axolotl", world_sizes=(1, 2))


def global_batches(recipe) -> list[tuple[int, int, int]]:
    return [(row.world_size, row.processes, row.global_batch) for row in recipe.launch]


def effective(recipe, key: str) -> tuple:
    entry = recipe.framework["effective"][key]
    return entry["value"], entry["from"], entry["provenance"]


@needs_gsm8k
def test_llamafactory_settings_come_from_its_own_arguments(llamafactory_capture):
    recipe = llamafactory_capture
    framework = recipe.framework
    assert (framework["framework"], framework["version"]) == ("llamafactory", "0.9.5")
    assert framework["entry"] == "llamafactory.hparams.parser.get_train_args"
    assert effective(recipe, "max_length") == (1024, "DataArguments.cutoff_len", "recipe")
    assert effective(recipe, "completion_only") == (True, "DataArguments.train_on_prompt", "recipe")
    assert effective(recipe, "template") == ("alpaca", "DataArguments.template", "recipe")
    assert effective(recipe, "packing") == (False, "DataArguments.packing", "derived")
    assert effective(recipe, "history_trained") == (True, "DataArguments.mask_history", "default")
    assert effective(recipe, "system_prompt") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n",
        "template 'alpaca' default_system",
        "measured",
    )
    assert effective(recipe, "load_dtype") == (
        "auto",
        "AutoModelForCausalLM.from_pretrained(dtype=...)",
        "measured",
    )
    # its arguments say False; LLaMA-Factory enables checkpointing on the model
    assert effective(recipe, "gradient_checkpointing")[0::2] == (True, "measured")
    assert recipe.training_args.fields["gradient_checkpointing"] is False
    data = framework["settings"]["data_args"]
    assert (data["values"]["cutoff_len"], data["provenance"]["cutoff_len"]) == (1024, "recipe")
    assert data["values"]["neat_packing"] is False and data["values"]["train_on_prompt"] is False
    assert framework["template"]["format_assistant"]["slots"] == ["{{content}}", ["eos_token"], "\n\n"]


@needs_gsm8k
def test_llamafactory_torchrun_follows_the_simulated_gpu_count(llamafactory_capture):
    recipe = llamafactory_capture
    assert global_batches(recipe) == [(1, 1, 16), (2, 2, 32)]
    decisions = recipe.manifest["framework"]["launch_decisions"]
    assert [(d["answered"], d["cpu_answer"], d["by"]) for d in decisions["2"]] == [
        (2, 0, "llamafactory.launcher.launch")
    ]
    assert decisions["1"][0]["answered"] == 1
    assert recipe.launch_at(2).launcher["launcher"] == "torchrun"
    [stub] = recipe.manifest["framework"]["stubs"]
    assert (stub["module"], stub["adapter"], stub["real_import"]) == (
        "torchaudio",
        "llamafactory",
        "not installed",
    )


@needs_gsm8k
def test_llamafactory_rows_have_no_bos_pad_to_eight_and_train_the_newlines_after_eos(llamafactory_capture):
    recipe = llamafactory_capture
    prepared = recipe.prepared["train"]
    assert len(prepared.rows) == SERVED
    assert all(ids[0] != BOS for ids in prepared.input_ids)
    assert all(sum(mask) == len(mask) for mask in prepared.attention_mask)
    collated = recipe.collated["train"]
    for ids, labels in zip(collated.input_ids, collated.labels, strict=True):
        end = ids.index(EOS)
        assert ids[end + 1] == DOUBLE_NEWLINE and labels[end : end + 2] == [EOS, DOUBLE_NEWLINE]
    batches = recipe.batches
    assert len(batches) == 16 and {row["batch"] for row in batches} == {0, 1, 2, 3}
    for row in batches:
        length, real = len(row["input_ids"]), sum(row["attention_mask"])
        assert length % 8 == 0 and row["input_ids"][real:] == [PAD] * (length - real)
        assert row["labels"][real:] == [-100] * (length - real)
    [load] = recipe.loaded
    [split] = load["splits"].values()
    assert (split["full_rows"], split["served_rows"]) == (ROWS, SERVED)
    assert [row["instruction"] for row in split["rows"]] == gsm8k_questions()[:SERVED]
    assert "llamafactory.data.loader" in load["asked_by"]


@needs_gsm8k
def test_llamafactory_recipe_reads_cutoff_len_never_a_trl_default(llamafactory_capture):
    recipe = recipe_from_capture(llamafactory_capture)
    assert recipe.training["max_length"] == 1024
    assert (
        recipe.provenance["training.max_length"] == "capture: llamafactory DataArguments.cutoff_len (recipe)"
    )
    assert recipe.training["completion_only_loss"] is True
    assert recipe.training["gradient_checkpointing"] is True
    assert recipe.provenance["training.dataset_text_field"].startswith("not applicable: TrainingArguments")
    assert recipe.model.torch_dtype == "auto"


@needs_gsm8k
def test_axolotl_settings_come_from_its_normalised_config(axolotl_capture):
    recipe = axolotl_capture
    framework = recipe.framework
    assert (framework["framework"], framework["version"]) == ("axolotl", "0.19.0")
    assert effective(recipe, "max_length") == (1024, "cfg.sequence_len", "recipe")
    assert effective(recipe, "completion_only") == (True, "cfg.train_on_inputs", "recipe")
    assert effective(recipe, "packing") == (False, "cfg.sample_packing", "recipe")
    assert effective(recipe, "template") == ("alpaca", "cfg.datasets[].type", "recipe")
    assert effective(recipe, "pre_shuffle") == (True, "cfg.shuffle_merged_datasets", "default")
    assert effective(recipe, "load_dtype")[0] == "bfloat16"
    assert effective(recipe, "system_prompt")[0]["without_input"] == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    )
    assert "roles_trained" not in framework["effective"]  # alpaca rows: no roles to train
    assert global_batches(recipe) == [(1, 1, 16), (2, 2, 32)]
    recipe_spec = recipe_from_capture(recipe)
    assert recipe_spec.provenance["training.max_length"] == "capture: axolotl cfg.sequence_len (recipe)"
    assert (
        "max_steps" not in recipe_spec.training
        and "computed by axolotl" in recipe_spec.upstream.consumed["max_steps"]
    )


@needs_gsm8k
def test_axolotl_shuffles_before_the_trainer_and_keeps_bos(axolotl_capture, tmp_path):
    recipe = axolotl_capture
    [shuffle] = recipe.manifest["shuffles"]
    assert (shuffle["seed"], shuffle["rows"]) == (42, SERVED)
    assert shuffle["asked_by"].startswith("axolotl.utils.data.shared.merge_datasets")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(recipe.tokenizer_path))
    prepared = recipe.prepared["train"]
    assert all(ids[0] == BOS for ids in prepared.input_ids)
    questions = gsm8k_questions()
    order = [
        next(i for i, question in enumerate(questions) if question in tokenizer.decode(ids))
        for ids in prepared.input_ids[:5]
    ]
    assert order != [0, 1, 2, 3, 4] and len(set(order)) == 5
    for row in recipe.batches:
        real = sum(row["attention_mask"])
        assert len(row["input_ids"]) % 64 == 0 and row["labels"][real:] == [-100] * (
            len(row["input_ids"]) - real
        )
    assert recipe.collator["settings"]["pad_to_multiple_of"] == 64


@needs_gsm8k
def test_trl_cli_settings_bos_and_dtype(trl_capture):
    recipe = trl_capture
    assert recipe.framework["framework"] == "trl"
    assert recipe.framework["entry"] == "trl.scripts.utils.TrlParser.parse_args_and_config"
    assert effective(recipe, "max_length") == (1024, "SFTConfig.max_length", "recipe")
    assert effective(recipe, "completion_only") == (True, "SFTConfig.completion_only_loss", "recipe")
    assert effective(recipe, "load_dtype") == ("float32", "ModelConfig.dtype", "default")
    assert global_batches(recipe) == [(1, 1, 16), (2, 2, 32)]
    assert all(ids[0] == BOS for ids in recipe.prepared["train"].input_ids)
    assert all(sum(mask) == len(mask) for mask in recipe.collated["train"].attention_mask)
    assert [row["prompt"] for row in recipe.raw["train"]] == gsm8k_questions()[:SERVED]


@needs_gsm8k
def test_rows_limit_serves_the_first_rows_and_records_the_full_count(trl_capture):
    recipe = trl_capture
    assert recipe.rows_limited and recipe.manifest["rows"]["limit"] == SERVED
    [load] = recipe.manifest["rows"]["loads"]
    assert load["splits"] == {"train": {"full_rows": ROWS, "served_rows": SERVED}}
    assert len(recipe.prepared["train"].rows) == SERVED


def test_a_recipe_yaml_capture_section_takes_a_framework_environment_and_rows(tmp_path):
    from parity.capture.yaml_section import options_from_section

    yaml_path = tmp_path / "recipe.yaml"
    section = {
        "checkout": ".",
        "command": "llamafactory-cli train cfg.yaml",
        "python": "framework:llamafactory",
    }
    options = options_from_section({**section, "rows": 64}, yaml_path)
    assert (options.python, options.rows, options.checkout) == ("framework:llamafactory", 64, tmp_path / ".")
    assert options_from_section(section, yaml_path).out != options.out
    with pytest.raises(ParityError, match="'capture.rows' must be a positive whole number$"):
        options_from_section({**section, "rows": 0}, yaml_path)


def test_a_wheel_for_another_python_is_replaced_by_this_pythons(tmp_path):
    """multiprocess ships one wheel per Python; its py310 wheel on 3.11 breaks datasets.save_to_disk."""
    import subprocess

    from parity.capture import environment as env_module

    older = f"{sys.version_info.major}.{sys.version_info.minor - 1}"
    wheels = tmp_path / "wheels"
    download = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    subprocess.run(
        [*download, "--python-version", older, "-d", str(wheels), "multiprocess==0.70.16"],
        check=True,
        timeout=300,
    )
    venv, log = tmp_path / "venv", tmp_path / "build.log"
    builder = env_module._Builder(env_module.uv_command(), venv, log, offline_ok=False)
    builder.run(["venv", "--python", sys.executable, str(venv)], "creating the venv")
    builder.pip_install(["--no-deps", str(next(wheels.glob("*.whl")))], "installing the older wheel")
    [site_packages] = (venv / "lib").glob("python*/site-packages")
    assert env_module.wheels_for_other_pythons(site_packages) == {"multiprocess": "0.70.16"}
    tag = f"py{sys.version_info.major}{sys.version_info.minor}"
    notes = env_module._reinstall_for_this_python(builder, venv, log)
    assert notes == [
        f"multiprocess 0.70.16: uv took a wheel for another Python; reinstalled multiprocess-0.70.16-{tag}-none-any.whl"
    ]
    assert env_module.wheels_for_other_pythons(site_packages) == {}
