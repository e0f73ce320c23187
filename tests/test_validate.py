"""Recipe validation: every bad type or range is one ParityError naming the dotted key, the value and what fits."""

from __future__ import annotations

import pytest

from parity.data.pipeline import placeholders
from parity.errors import ParityError
from parity.registry import resolve_recipe
from parity.spec import PreprocessStep
from parity.validate import lora_config_types, sft_config_types, validate_recipe


def rejects(overrides: list[str], recipe: str = "revise") -> str:
    with pytest.raises(ParityError) as caught:
        validate_recipe(resolve_recipe(recipe, overrides))
    return str(caught.value)


@pytest.mark.parametrize("name", ["llmhalluc", "revise"])
def test_built_in_recipes_are_valid(name):
    recipe = resolve_recipe(name)
    assert validate_recipe(recipe) is recipe


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("training.per_device_train_batch_size=abc", "= 'abc': expected an integer from 1 to 65,536"),
        ("training.per_device_train_batch_size=0", "= 0: expected an integer from 1 to 65,536"),
        ("training.per_device_train_batch_size=-1", "= -1: expected an integer from 1 to 65,536"),
        ("training.per_device_train_batch_size=2.5", "= 2.5: expected an integer from 1 to 65,536"),
        ("training.per_device_train_batch_size=null", "= null: expected an integer from 1 to 65,536"),
        ("training.per_device_train_batch_size=1000000000000", "= 1000000000000: expected an integer"),
        ("training.per_device_train_batch_size=true", "= true: expected an integer"),
        ("training.learning_rate=x", "training.learning_rate = 'x': expected a positive finite number"),
        (
            "training.learning_rate=-0.001",
            "training.learning_rate = -0.001: expected a positive finite number",
        ),
        ("training.learning_rate=.inf", "training.learning_rate = inf: expected a positive finite number"),
        ("training.num_train_epochs=0", "training.num_train_epochs = 0: expected a positive finite number"),
        ("training.num_train_epochs=-1", "training.num_train_epochs = -1: expected a positive finite number"),
        ("training.max_steps=0", "training.max_steps = 0: expected -1 (use num_train_epochs) or a positive"),
        ("training.seed=abc", "training.seed = 'abc': expected an integer from 0 to 4,294,967,295"),
        ("training.seed=-3", "training.seed = -3: expected an integer from 0"),
        (
            "training.max_length=0",
            "training.max_length = 0: expected an integer from 1 to 10,000,000 or null",
        ),
        (
            "training.lr_scheduler_type=cosin",
            "training.lr_scheduler_type = 'cosin': expected one of constant,",
        ),
        ("training.eval_strategy=sometimes", "expected one of epoch, no, steps"),
        ("training.bf16=maybe", "training.bf16 = 'maybe': expected true or false or null"),
        ("training.report_to=5", "training.report_to = 5: expected a list or a string or null"),
        ("training.warmup_steps=-0.1", "training.warmup_steps = -0.1: expected a finite number >= 0"),
        ("training.adam_beta1=1.5", "training.adam_beta1 = 1.5: expected a number from 0 to below 1"),
        ("launch.global_batch=0", "launch.global_batch = 0: expected an integer from 1 to 65,536 or null"),
        (
            "launch.global_batch=-32",
            "launch.global_batch = -32: expected an integer from 1 to 65,536 or null",
        ),
        ("launch.num_processes=0", "launch.num_processes = 0: expected 'world' or an integer from 1"),
        ("launch.deepspeed_stage=4", "launch.deepspeed_stage = 4: expected one of 0, 1, 2, 3 or null"),
        (
            "launch.early_stopping_patience=0",
            "launch.early_stopping_patience = 0: expected an integer from 1",
        ),
        ("data.eval_fraction=1.5", "data.eval_fraction = 1.5: expected a number strictly between 0 and 1"),
        (
            "data.eval_from=validation",
            "data.eval_from = 'validation': expected one of 'test', 'train_holdout'",
        ),
        ("data.hub_path=' '", "data.hub_path = ' ': expected a non-empty string or null"),
        (
            "data.format=csv",
            "data.format = 'csv': expected one of messages, sharegpt, prompt_completion, alpaca",
        ),
        (
            "data.trl_format=chat",
            "data.trl_format = 'chat': expected one of prompt_completion, prompt_completion_text",
        ),
        ("data.task=gsm9k", "data.task = 'gsm9k': expected one of gsm8k, math or null"),
        ("eval.num_fewshot=-1", "eval.num_fewshot = -1: expected an integer from 0 to 1,000"),
        ("eval.strict_regex='('", "eval.strict_regex = '(': expected a valid regular expression (missing )"),
        ("eval.gold_regex='[0-9'", "eval.gold_regex = '[0-9': expected a valid regular expression"),
        ("eval.ignore_patterns=['*']", "eval.ignore_patterns[0] = '*': expected a valid regular expression"),
        ("peft.method=qlora", "peft.method = 'qlora': expected one of 'none', 'full', 'lora'"),
        ("tokenizer.pad_token=''", "tokenizer.pad_token = '': expected a non-empty string"),
        ("model.name_or_path=''", "model.name_or_path = '': expected a non-empty string"),
        ("prompt.user_template='Solve it.'", "expected a template with at least one {column} placeholder"),
        (
            "prompt.instruction='Use {format}.'",
            "prompt.instruction = 'Use {format}.': expected literal text without placeholders ({format} would",
        ),
        ("template.chat_template='   '", "template.chat_template: the chat template is empty"),
        (
            "template.chat_template='{% for m in messages %}'",
            "template.chat_template: syntax error at template",
        ),
    ],
)
def test_bad_values_name_key_value_and_expectation(override, message):
    text = rejects([override])
    assert text.startswith("recipe 'revise': ")
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("peft.lora.r=-1", "peft.lora.r = -1: expected an integer from 1 to 65,536"),
        ("peft.lora.r=4.5", "peft.lora.r = 4.5: expected an integer"),
        ("peft.lora.lora_alpha=0", "peft.lora.lora_alpha = 0: expected an integer from 1"),
        ("peft.lora.lora_dropout=1", "peft.lora.lora_dropout = 1: expected a number from 0 to below 1"),
        ("peft.lora.bias=some", "peft.lora.bias = 'some': expected one of 'none', 'all', 'lora_only'"),
        ("peft.lora.target_modules=5", "peft.lora.target_modules = 5: expected a list or a string or null"),
        ("peft.lora.use_rslora=yes please", "peft.lora.use_rslora = 'yes please': expected true or false"),
    ],
)
def test_bad_lora_values(override, message):
    assert message in rejects([override], "llmhalluc")


def test_types_come_from_the_installed_libraries():
    assert sft_config_types()["per_device_train_batch_size"] is int
    assert sft_config_types()["learning_rate"] is float
    assert lora_config_types()["r"] is int
    # a field no range rule names is still checked against its SFTConfig annotation
    assert "training.dataloader_drop_last = 'x': expected true or false" in rejects(
        ["training.dataloader_drop_last=x"]
    )


def test_valid_edge_values_pass():
    recipe = resolve_recipe(
        "revise",
        [
            "training.max_steps=-1",
            "training.max_steps=30",
            "training.num_train_epochs=0.5",
            "training.per_device_train_batch_size=65536",
            "training.seed=0",
            "launch.global_batch=null",
            "training.max_length=null",
            "template.chat_template=null",
            "prompt.user_template='Q: {question}\\n{instruction}'",
        ],
    )
    assert validate_recipe(recipe).training["max_steps"] == 30


def test_preprocess_steps_are_checked_when_built_in_python():
    recipe = resolve_recipe("revise")
    recipe.data.preprocess = [PreprocessStep(op="regex_sub", pattern="<<(", replacement="")]
    with pytest.raises(ParityError, match=r"data.preprocess\[0\].pattern = '<<\(': expected a valid regular"):
        validate_recipe(recipe)
    recipe.data.preprocess = [PreprocessStep(op="regex_sub", pattern="x", field="")]
    with pytest.raises(ParityError, match=r"data.preprocess\[0\].field = '': expected a non-empty string"):
        validate_recipe(recipe)


def test_long_values_are_shortened_in_the_message():
    text = rejects(["prompt.user_template='" + "x" * 500 + "'"])
    assert "(502 characters)" in text
    assert len(text) < 250


def test_placeholders_are_any_identifier_in_first_use_order():
    assert placeholders("{question}\n{instruction} {query} {x} {{jinja}} {1} {x}") == [
        "question",
        "instruction",
        "query",
        "x",
        "jinja",
    ]


def test_a_placeholder_names_a_column_only_when_the_rows_are_read():
    """Any `{column}` is valid in a recipe; a column the rows lack is one error naming the columns they have."""
    recipe = validate_recipe(resolve_recipe("revise", ["prompt.user_template='{query}'"]))
    assert recipe.prompt.user_template == "{query}"
    from conftest import make

    with pytest.raises(ParityError) as err:
        make("revise", ["prompt.user_template='{query}'"])
    assert str(err.value) == (
        "recipe 'revise': prompt.user_template: {query} is not a column of the rows (text columns: answer, question; "
        "{instruction} is the recipe's prompt.instruction)"
    )
