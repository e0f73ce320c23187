"""Rows: their sources (synthetic, local JSONL, hub), registered row formats, the one conversational form they
become, row identity, and a recipe's own pipeline from raw rows to the rows it hands TRL."""
