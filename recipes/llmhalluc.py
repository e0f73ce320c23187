"""llmhalluc's GSM8K SFT experiment (Tianyi-Billy-Ma/Halluc @ f899ae51): configs/llmhalluc/gsm8k/sft.yaml.

Its loader merges the dataclass defaults of llmhalluc/hparams/train_args.py with the experiment YAML and
builds a trl.SFTConfig subclass; every value here is a pinned fact from vendor_refs/llmhalluc/facts.yaml.
"""

from __future__ import annotations

from parity.spec import (
    DataSpec,
    EvalSpec,
    LaunchSpec,
    ModelSpec,
    PeftSpec,
    PromptSpec,
    Recipe,
    TemplateSpec,
    TokenizerSpec,
    UpstreamSpec,
)
from parity.vendor import load_facts
from recipes.common import provenance_of, training_args

# Experiment-YAML keys read by llmhalluc's own code rather than by SFTConfig, and where they land here.
# A key missing from this map and from SFTConfig/LoraConfig has no reader: `parity diff` lints it.
CONSUMED_BY_LOADER = {
    "model_name_or_path": "model.name_or_path",
    "template": "llmhalluc's template registry; the patcher installs tokenizer.chat_template or DEFAULT",
    "stage": "selects the SFT trainer",
    "finetuning_type": "peft.method",
    "dataset": "data (dataset_info.json: gsm8k_train)",
    "eval_dataset": "data (dataset_info.json: gsm8k_eval)",
    "converter": "data (llmhalluc/data/sft.py message building)",
    "model": "eval.harness (lm-eval model type)",
    "tasks": "eval.task",
    "eval_mode": "eval.harness",
    "wandb_project": "logging only",
    "deepspeed": "launch.deepspeed_config",
    "init_special_tokens": "tokenizer patch (no special tokens added)",
    "reward_model": "later (reward) stages only",
    "reward_model_type": "later (reward) stages only",
    "early_stopping": "launch.early_stopping_patience",
    "load_from_cache_file": "datasets.map caching only",
}


def build() -> Recipe:
    """The llmhalluc recipe: train_args.py defaults merged with the GSM8K experiment YAML."""
    facts = load_facts("llmhalluc")
    experiment = facts["experiment_config"]
    defaults = facts.group("defaults")
    training = training_args(
        {**{k: defaults[k] for k in TRAINING_DEFAULTS}, "warmup_ratio": defaults["warmup_ratio"]}, skip={}
    )
    training.update(training_args(experiment, skip=CONSUMED_BY_LOADER, only_sft_fields=True))
    recipe = Recipe(
        name="llmhalluc",
        description="llmhalluc GSM8K SFT: LoRA r=8 on Llama 3.2 1B, per-device 16 x accumulation 8 x accelerate's processes.",
        model=ModelSpec(
            name_or_path=experiment["model_name_or_path"], torch_dtype=facts["model.torch_dtype"]
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
            hub_path=facts["data.train_hub_path"],
            hub_config=None,
            hub_eval_split=facts["data.eval_hub_split"],
            eval_from="test",
        ),
        prompt=PromptSpec(
            user_template=facts["prompt.user_message"], instruction=facts["prompt.instruction"]
        ),
        training=training,
        peft=PeftSpec(
            method=experiment["finetuning_type"],
            lora={
                "r": defaults["lora_rank"],
                "lora_alpha": defaults["lora_alpha"],
                "lora_dropout": defaults["lora_dropout"],
                "target_modules": "all-linear"
                if defaults["lora_target"] == "all"
                else defaults["lora_target"],
                "task_type": "CAUSAL_LM",
            },
        ),
        launch=LaunchSpec(
            num_processes="world",
            deepspeed_config=experiment["deepspeed"],
            deepspeed_stage=0,
            deepspeed_min_gpus=2,
            launcher=facts["launch.command"],
            early_stopping_patience=defaults["early_stopping_patience"]
            if experiment["early_stopping"]
            else None,
            early_stopping_threshold=defaults["early_stopping_threshold"]
            if experiment["early_stopping"]
            else None,
        ),
        eval=EvalSpec(
            task=experiment["tasks"],
            split=facts["eval.split"],
            num_fewshot=facts["eval.num_fewshot"],
            apply_chat_template=False,
            prompt=facts["eval.prompt"].replace("{{question}}", "{question}"),
            strict_regex=facts["eval.strict_regex"],
            flexible_regex=facts["eval.flexible_regex"],
            ignore_patterns=[",", r"\$"],
        ),
        env=facts.group("env"),
        upstream=UpstreamSpec(
            repo=facts.repo,
            commit=facts.commit,
            config={**experiment, **{key: defaults[key] for key in DECLARED_UNREAD}},
            meant=DECLARED_UNREAD,
            consumed={**CONSUMED_BY_LOADER, **{k: f"training.{k}" for k in experiment if k in training}},
        ),
    )
    recipe.provenance = provenance_of(recipe, facts)
    return recipe


# train_args.py defaults that are SFTConfig fields under the same name.
TRAINING_DEFAULTS = (
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "num_train_epochs",
    "lr_scheduler_type",
    "per_device_eval_batch_size",
    "eval_strategy",
    "eval_steps",
    "save_steps",
    "save_total_limit",
    "load_best_model_at_end",
    "metric_for_best_model",
    "greater_is_better",
    "logging_steps",
)
# train_args.py fields that no code reads (measured by running the recipe up to its trainer): `cutoff_len` never
# reaches SFTConfig.max_length and `flash_attn` never reaches from_pretrained. The config lint reports them.
DECLARED_UNREAD = {"cutoff_len": "max_length", "flash_attn": "model.attn_implementation"}
