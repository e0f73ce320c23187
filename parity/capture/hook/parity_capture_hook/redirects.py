"""Hub redirects: datasets to local files, pushes into the capture, model ids to the seeded cache, weight
loading to a small random stand-in, and CPU refusals (bf16 checks, device maps, flash attention) neutralized.

Every redirect is recorded as an event; a hub access that nothing maps stops the capture with one line."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from parity_capture_hook import imports, models, state

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def _data_map() -> dict[str, str]:
    return {name.lower(): path for name, path in state.config().get("data", {}).items()}


def _hub_store() -> Path:
    return Path(state.config()["hub_store"])


def _pushed_dir(repo_id: str) -> Path:
    return _hub_store() / "datasets" / repo_id.lower().replace("/", "--")


def _split_files(folder: Path) -> dict[str, list[str]]:
    """{split: [files]} for a folder of `<split>.jsonl|json|parquet|csv` files (also `<split>-*.ext`)."""
    files: dict[str, list[str]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix in (".jsonl", ".json", ".parquet", ".csv"):
            split = path.name.split(".")[0].split("-")[0]
            files.setdefault(split, []).append(str(path))
    return files


def _builder_for(files: dict[str, list[str]]) -> str:
    suffix = Path(next(iter(files.values()))[0]).suffix
    return {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}[suffix]


def _local_folder(name: str, config_name: str | None) -> tuple[Path, str] | None:
    """The local folder serving hub dataset `name` (pushed in this capture, or mapped with --data)."""
    pushed = _pushed_dir(name)
    if pushed.is_dir():
        folder = pushed / (config_name or "default")
        if not folder.is_dir():
            folder = pushed / "default"
        return folder, "pushed earlier in this capture"
    mapped = _data_map().get(name.lower())
    if mapped is None:
        return None
    folder = Path(mapped)
    if config_name and (folder / config_name).is_dir():
        folder = folder / config_name
    return folder, f"--data {name}={mapped}"


def _patch_datasets(datasets_module: Any) -> None:
    from datasets import load as load_module
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    original = load_module.load_dataset

    @functools.wraps(original)
    def load_dataset(path: str, name: str | None = None, *args: Any, **kwargs: Any) -> Any:
        config_name = name if name is not None else kwargs.get("config_name")
        if not isinstance(path, str) or path in _PACKAGED_DATASETS_MODULES or os.path.exists(path):
            return original(path, name, *args, **kwargs)
        served = _local_folder(path, config_name)
        if served is None:
            state.fail(
                "unmapped-dataset",
                f"load_dataset('{path}') needs the hub: map it with --data {path}=DIR",
            )
        folder, source = served
        files = _split_files(folder)
        if not files:
            state.fail(
                "empty-dataset-dir", f"--data {path}: no <split>.jsonl/.parquet/.csv files in {folder}"
            )
        split = kwargs.pop("split", None)
        if args:
            state.record("dataset-load-ignored", name=path, positional=list(args))
        for ignored in ("data_dir", "data_files", "revision", "token", "trust_remote_code", "download_mode"):
            kwargs.pop(ignored, None)
        state.record(
            "dataset-load",
            name=path,
            config=config_name,
            split=split,
            served_from=str(folder),
            source=source,
            splits={key: [Path(f).name for f in value] for key, value in files.items()},
        )
        return original(_builder_for(files), data_files=files, split=split, **kwargs)

    load_module.load_dataset = load_dataset
    datasets_module.load_dataset = load_dataset

    def push_dataset(
        self: Any, repo_id: str, config_name: str = "default", *args: Any, **kwargs: Any
    ) -> None:
        split = kwargs.get("split")
        target = _pushed_dir(repo_id) / (config_name or "default")
        target.mkdir(parents=True, exist_ok=True)
        if isinstance(self, datasets_module.DatasetDict):
            parts = dict(self.items())
        else:
            parts = {str(split or "train"): self}
        for split_name, part in parts.items():
            part.to_parquet(str(target / f"{split_name}.parquet"))
        state.record(
            "dataset-push",
            repo_id=repo_id,
            config=config_name,
            rows={key: part.num_rows for key, part in parts.items()},
            saved_to=str(target),
        )

    datasets_module.Dataset.push_to_hub = push_dataset
    datasets_module.DatasetDict.push_to_hub = push_dataset


def _is_hub_id(name: Any) -> bool:
    return isinstance(name, str) and not os.path.exists(name) and not name.startswith((".", "/", "~"))


def _require_mapped_repo(repo_id: str, repo_type: str | None) -> None:
    if repo_type == "dataset":
        if _local_folder(repo_id, None) is None:
            state.fail("unmapped-dataset", f"'{repo_id}' needs the hub: map it with --data {repo_id}=DIR")
        return
    if not models.is_mapped(repo_id):
        state.fail(
            "unmapped-model",
            f"model or tokenizer '{repo_id}' needs the hub: map it with --tokenizer {repo_id}=DIR",
        )
    models.ensure_seeded(repo_id)


def _patch_hub_downloads(module: Any) -> None:
    original = module.hf_hub_download

    @functools.wraps(original)
    def hf_hub_download(repo_id: str, filename: str | None = None, *args: Any, **kwargs: Any) -> Any:
        _require_mapped_repo(repo_id, kwargs.get("repo_type"))
        return original(repo_id, filename, *args, **kwargs)

    module.hf_hub_download = hf_hub_download


def _patch_snapshot_download(module: Any) -> None:
    original = module.snapshot_download

    @functools.wraps(original)
    def snapshot_download(repo_id: str, *args: Any, **kwargs: Any) -> Any:
        _require_mapped_repo(repo_id, kwargs.get("repo_type"))
        return original(repo_id, *args, **kwargs)

    module.snapshot_download = snapshot_download


def _patch_hub_api(module: Any) -> None:
    """Repository creation and uploads (model/tokenizer pushes) are recorded and skipped."""

    def neutralized(method: str):
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            repo = kwargs.get("repo_id") or (args[0] if args else None)
            state.record("hub-push", call=method, repo_id=repo, kwargs=kwargs)
            return imports.dummy_class(f"huggingface_hub.{method}", "huggingface_hub")()

        return call

    for method in ("create_repo", "upload_folder", "upload_file", "create_commit", "upload_large_folder"):
        if hasattr(module.HfApi, method):
            setattr(module.HfApi, method, neutralized(method))


def _patch_bf16_check(training_args: Any) -> None:
    original = getattr(training_args, "is_torch_bf16_gpu_available", None)
    if original is None:
        return

    def is_torch_bf16_gpu_available(*args: Any, **kwargs: Any) -> bool:
        if not original(*args, **kwargs):
            state.record(
                "cpu-refusal",
                check="is_torch_bf16_gpu_available",
                neutralized="answered True so bf16=True parses on a CPU-only capture",
            )
        return True

    training_args.is_torch_bf16_gpu_available = is_torch_bf16_gpu_available


def install() -> None:
    imports.after_import("datasets", _patch_datasets)
    imports.after_import("huggingface_hub.file_download", _patch_hub_downloads)
    imports.after_import("huggingface_hub._snapshot_download", _patch_snapshot_download)
    imports.after_import("huggingface_hub.hf_api", _patch_hub_api)
    imports.after_import("transformers.training_args", _patch_bf16_check)
    models.install()
