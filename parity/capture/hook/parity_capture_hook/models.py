"""Model ids: served from the seeded local hub cache; weight loading builds a small random stand-in of the
same architecture class and vocabulary, and records what was asked (dtype, attention, device map, quantization)."""

from __future__ import annotations

import copy
import functools
import os
import shutil
from pathlib import Path
from typing import Any

from parity_capture_hook import imports, state

_SHRUNK_SIZES = {  # widths only: layer counts stay real, recipes enumerate layers (LoRA targets)
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "n_embd": 64,
    "n_head": 4,
    "d_model": 64,
    "ffn_dim": 128,
}
STAND_INS: list[dict[str, Any]] = []
"""One entry per stand-in built in this process: the model object, its class and the real config."""
_pending_request: list[dict[str, Any]] = []


def _models() -> dict[str, str]:
    return {name.lower(): source for name, source in state.config().get("models", {}).items()}


def is_mapped(repo_id: str) -> bool:
    return repo_id.lower() in _models()


def _cache_folder(repo_id: str) -> Path:
    return Path(state.config()["hf_home"]) / "hub" / ("models--" + repo_id.replace("/", "--"))


def ensure_seeded(repo_id: str) -> None:
    """Seed the hub cache under this exact spelling of a mapped id (the cache is case-sensitive)."""
    folder = _cache_folder(repo_id)
    if folder.exists():
        return
    for name in state.config().get("models", {}):
        if name.lower() == repo_id.lower() and _cache_folder(name).exists():
            staging = folder.with_name(f".{folder.name}.{os.getpid()}")
            shutil.copytree(_cache_folder(name), staging, symlinks=True)
            try:
                os.rename(staging, folder)
            except OSError:  # another run seeded it first (runs share the hub cache)
                shutil.rmtree(staging, ignore_errors=True)
            return


def _request_from(name: Any, kwargs: dict[str, Any], entry: str) -> dict[str, Any]:
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
    return {
        "name": name,
        "entry": entry,
        "dtype": None if dtype is None else str(dtype).replace("torch.", ""),
        "attn_implementation": kwargs.get("attn_implementation"),
        "device_map": kwargs.get("device_map"),
        "quantization_config": kwargs.get("quantization_config"),
        "trust_remote_code": kwargs.get("trust_remote_code"),
        "low_cpu_mem_usage": kwargs.get("low_cpu_mem_usage"),
        "other_kwargs": sorted(
            key
            for key in kwargs
            if key
            not in {
                "dtype",
                "torch_dtype",
                "attn_implementation",
                "device_map",
                "quantization_config",
                "trust_remote_code",
                "low_cpu_mem_usage",
                "config",
            }
        ),
    }


def shrink(config: Any) -> Any:
    """A copy of `config` with tiny sizes (same architecture and vocabulary)."""
    tiny = copy.deepcopy(config)
    for key, value in _SHRUNK_SIZES.items():
        if isinstance(getattr(tiny, key, None), int):
            setattr(tiny, key, value)
    kv_heads = getattr(config, "num_key_value_heads", None)
    if kv_heads and kv_heads == getattr(config, "num_attention_heads", None):
        tiny.num_key_value_heads = tiny.num_attention_heads
    return tiny


def _resolve_config(cls: Any, name: Any, kwargs: dict[str, Any]) -> Any:
    from transformers import AutoConfig, PretrainedConfig

    config = kwargs.get("config")
    if isinstance(config, PretrainedConfig):
        return copy.deepcopy(config)
    source = config if isinstance(config, str | os.PathLike) else name
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=bool(kwargs.get("trust_remote_code")))
    except (OSError, ValueError) as err:
        state.fail(
            "model-config",
            f"model '{name}': its config.json cannot be read ({str(err).splitlines()[0]}); "
            f"map the id with --tokenizer {name}=DIR, DIR holding config.json and the tokenizer files",
        )


def _stand_in(cls: Any, name: Any, request: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    import torch

    real_config = _resolve_config(cls, name, kwargs)
    real_config._name_or_path = str(name)
    tiny = shrink(real_config)
    attn = request.get("attn_implementation")
    stand_in_attn = "sdpa" if attn is None or "flash" in str(attn) or "kernels" in str(attn) else attn
    model = cls._from_config(tiny, attn_implementation=stand_in_attn)
    dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
    if dtype == "auto":
        dtype = getattr(real_config, "dtype", None) or getattr(real_config, "torch_dtype", None)
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype, None)
    if isinstance(dtype, torch.dtype):
        model = model.to(dtype)
    model.config._name_or_path = str(name)
    neutralized = {}
    if attn is not None and stand_in_attn != attn:
        neutralized["attn_implementation"] = f"{attn} -> {stand_in_attn} (no such kernel on a CPU capture)"
    if request.get("device_map") is not None:
        neutralized["device_map"] = f"{request['device_map']} -> not applied (CPU capture)"
    if request.get("quantization_config") is not None:
        neutralized["quantization_config"] = "not applied (the stand-in is not quantized)"
    STAND_INS.append({"model": model, "class": cls, "real_config": real_config, "request": request})
    state.record(
        "model-load",
        request=request,
        architecture=f"{cls.__module__}.{cls.__qualname__}",
        stand_in={key: getattr(tiny, key) for key in _SHRUNK_SIZES if hasattr(tiny, key)},
        neutralized=neutralized,
    )
    return model


def _patch_pretrained_model(modeling_utils: Any) -> None:
    model_class = modeling_utils.PreTrainedModel
    original = model_class.from_pretrained.__func__

    @functools.wraps(original)
    def from_pretrained(cls: Any, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any) -> Any:
        if pretrained_model_name_or_path is None:
            return original(cls, pretrained_model_name_or_path, *model_args, **kwargs)
        request = (
            _pending_request.pop()
            if _pending_request
            else _request_from(pretrained_model_name_or_path, kwargs, f"{cls.__qualname__}.from_pretrained")
        )
        name = str(pretrained_model_name_or_path)
        if not os.path.exists(name) and not is_mapped(name):
            state.fail(
                "unmapped-model",
                f"model '{name}' needs the hub: map it with --tokenizer {name}=DIR (config.json + tokenizer files)",
            )
        if not os.path.exists(name):
            ensure_seeded(name)
        return _stand_in(cls, name, request, kwargs)

    model_class.from_pretrained = classmethod(from_pretrained)


def _patch_auto_models(auto_factory: Any) -> None:
    base = auto_factory._BaseAutoModelClass
    original = base.from_pretrained.__func__

    @functools.wraps(original)
    def from_pretrained(cls: Any, pretrained_model_name_or_path: Any, *model_args: Any, **kwargs: Any) -> Any:
        _pending_request[:] = [
            _request_from(pretrained_model_name_or_path, kwargs, f"{cls.__qualname__}.from_pretrained")
        ]
        try:
            return original(cls, pretrained_model_name_or_path, *model_args, **kwargs)
        finally:
            _pending_request.clear()

    base.from_pretrained = classmethod(from_pretrained)


def install() -> None:
    imports.after_import("transformers.modeling_utils", _patch_pretrained_model)
    imports.after_import("transformers.models.auto.auto_factory", _patch_auto_models)
