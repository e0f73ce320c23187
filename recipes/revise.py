"""ReVISE's SFT stage (seunghyukoh/ReVISE @ 35ed7cf): `accelerate launch revise/sft.py`.

Every value below is a pinned fact from vendor_refs/revise/facts.yaml; anything not set here is
trl.SFTConfig's default, resolved from the installed library, never restated.
"""

from __future__ import annotations

from parity.spec import (
    DataSpec,
    EvalSpec,
    LaunchSpec,
    ModelSpec,
    PeftSpec,
    PreprocessStep,
    PromptSpec,
    Recipe,
    TemplateSpec,
    TokenizerSpec,
    UpstreamSpec,
)
from parity.vendor import load_facts
from recipes.common import provenance_of, training_args

# Launch-script arguments that are not SFTConfig fields, and where the adapter sends them.
SCRIPT_ONLY_ARGS = {
    "model_name_or_path": "model.name_or_path",
    "dataset_path": "data (pushed preprocessed copy of openai/gsm8k; rebuilt here from the raw rows)",
    "dataset_name": "data (config name of the pushed copy)",
}


def build() -> Recipe:
    """The revise recipe, as its launch script, sft.py, preprocess.py and prompts.py define it."""
    facts = load_facts("revise")
    script_args = facts.group("args")
    training = training_args(script_args, skip=SCRIPT_ONLY_ARGS)
    training["per_device_train_batch_size"] = facts["launch.per_device_train_batch_size"]
    training["per_device_eval_batch_size"] = facts["launch.per_device_eval_batch_size"]
    recipe = Recipe(
        name="revise",
        description="ReVISE SFT stage: full fine-tuning of Llama 3.2 1B on GSM8K, global batch 32.",
        model=ModelSpec(
            name_or_path=script_args["model_name_or_path"],
            torch_dtype=facts["model.torch_dtype"],
            attn_implementation=facts["model.attn_implementation"],
        ),
        tokenizer=TokenizerSpec(pad_token=facts["tokenizer.pad_token_policy"]),
        template=TemplateSpec(
            chat_template=facts["template.chat_template"],
            force=False,
            source=facts.source("template.chat_template"),
        ),
        data=DataSpec(
            task="gsm8k",
            format="input_output",
            columns={"input": "question", "output": "answer"},
            trl_format="prompt_completion",
            hub_path=facts["data.hub_path"],
            hub_config=facts["data.hub_config"],
            preprocess=[
                PreprocessStep(
                    op="regex_sub", pattern=facts["data.strip_pattern"], replacement="", field="answer"
                ),
                PreprocessStep(
                    op="replace",
                    pattern=facts["data.final_marker_old"],
                    replacement=facts["data.final_marker_new"],
                    field="answer",
                ),
            ],
            eval_from="train_holdout",
            eval_fraction=facts["data.eval_test_size"],
            upstream_split_seeded=False,
        ),
        prompt=PromptSpec(user_template="{question}\n{instruction}", instruction=facts["prompt.instruction"]),
        training=training,
        peft=PeftSpec(method=facts["model.peft"]),
        launch=LaunchSpec(
            num_processes="world", global_batch=facts["launch.batch_size"], launcher=facts["launch.launcher"]
        ),
        eval=EvalSpec(
            task=facts["eval.task"],
            split="test",
            num_fewshot=facts["eval.num_fewshot"],
            apply_chat_template=facts["eval.apply_chat_template"],
            prompt="{question}\n{instruction}",
            flexible_regex=facts["eval.extract_regex"],
            ignore_patterns=facts["eval.regexes_to_ignore"],
            ignore_case=facts["eval.ignore_case"],
            remove_tokens=facts["eval.remove_tokens"],
        ),
        env=facts.group("env"),
        upstream=UpstreamSpec(
            repo=facts.repo,
            commit=facts.commit,
            config=script_args,
            consumed={**{k: f"training.{k}" for k in training if k in script_args}, **SCRIPT_ONLY_ARGS},
        ),
    )
    recipe.provenance = provenance_of(recipe, facts)
    return recipe
