"""A Qwen3 SFT set up the way unsloth's generated SFTTrainer code set it up before unsloth#2669, written for this
case: unsloth imports only with a GPU, so its code is not run here. What it did with the sequence length
(unsloth/models/rl.py at 0396593): its generated SFTConfig defaults `max_seq_length` to None, and the generated
trainer then sets `args.max_seq_length = model.max_seq_length` on the constructed config (the length given to
FastLanguageModel.from_pretrained). Everything else is plain TRL."""

from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

MODEL = "Qwen/Qwen3-0.6B"
MAX_SEQ_LENGTH = (
    2048  # FastLanguageModel.from_pretrained(max_seq_length=...); the notebook's value is not stated
)

tokenizer = AutoTokenizer.from_pretrained(MODEL)
model = AutoModelForCausalLM.from_pretrained(MODEL)
model.max_seq_length = MAX_SEQ_LENGTH  # FastLanguageModel records it on the model
dataset = load_dataset("gallery/qwen3-chat-text", split="train")

args = SFTConfig(
    output_dir="outputs",
    dataset_text_field="text",
    per_device_train_batch_size=2,
    gradient_accumulation_steps=4,
    warmup_steps=5,
    learning_rate=2e-4,
    logging_steps=1,
    weight_decay=0.01,
    lr_scheduler_type="linear",
    seed=3407,
    report_to="none",
    max_seq_length=None,  # unsloth's generated config class: "max_seq_length": None
)
# unsloth's generated trainer code (rl.py at 0396593, "Check max_seq_length"):
if args.max_seq_length is None and getattr(model, "max_seq_length", None) is not None:
    args.max_seq_length = model.max_seq_length

trainer = SFTTrainer(model=model, processing_class=tokenizer, train_dataset=dataset, args=args)
trainer.train()
