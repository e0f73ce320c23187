"""Raw GSM8K-format rows: synthetic, local JSONL, or hub."""
