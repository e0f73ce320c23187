"""Built-in recipe adapters: each turns pinned upstream facts (vendor_refs/) into a parity Recipe."""
