"""parity: a differential reproduction harness for LLM fine-tuning recipes."""

__version__ = "0.1.0"
