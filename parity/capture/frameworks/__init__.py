"""Other fine-tuning frameworks under `parity capture`: their environments (`--python framework:NAME`) and what
their adapters in the capture hook recorded (`framework.json`, the rows they loaded)."""
