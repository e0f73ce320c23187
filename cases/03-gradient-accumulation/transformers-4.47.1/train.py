"""Causal-LM fine-tuning with a plain transformers Trainer and gradient accumulation, shaped like the reports
(transformers#35438's script: a Qwen2.5 model, a small per-device batch, accumulation 2; LLaMA-Factory#7443:
per-device 1 x accumulation 32 against 16 x 2): per-device batch 1, accumulation 2, one short and one long row."""

from datasets import load_dataset
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
)

MODEL = "Qwen/Qwen2.5-1.5B"

tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = AutoModelForCausalLM.from_pretrained(MODEL)
rows = load_dataset("gallery/variable-length-text", split="train")
dataset = rows.map(lambda row: tokenizer(row["text"]), remove_columns=rows.column_names)
args = TrainingArguments(
    output_dir="outputs",
    per_device_train_batch_size=1,
    gradient_accumulation_steps=2,
    learning_rate=1e-5,
    num_train_epochs=1,
    logging_steps=1,
    report_to="none",
    seed=42,
)
trainer = Trainer(
    model=model,
    args=args,
    train_dataset=dataset,
    data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    processing_class=tokenizer,
)
trainer.train()
