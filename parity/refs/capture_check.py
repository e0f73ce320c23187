"""A built-in recipe checked against a capture of its own code: training arguments, the launch table per world
size, the model request and LoRA settings, each "ok", "drift" or "version-dependent" (a field that exists in
one environment's library only). Returns a CaptureCheck; printing is the command line's job."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from parity.errors import ParityError
from parity.refs.values import values_equal
from parity.spec import Recipe
from parity.vendor import VENDOR_REFS_DIR

if TYPE_CHECKING:
    from parity.capture.reader import CapturedRecipe

Status = Literal["ok", "drift", "version-dependent"]


def training_fields() -> tuple[str, ...]:
    """SFTConfig fields that shape what is trained: every field parity's axes measure, plus the warmup ratio
    (a transformers 4 field) and the logging cadence; gradient accumulation is checked per world size."""
    from parity.axes import AXIS_TABLE

    fields = [name for axis in AXIS_TABLE for name in axis.fields or ()]
    fields += ["warmup_ratio", "logging_steps"]
    return tuple(dict.fromkeys(name for name in fields if name != "gradient_accumulation_steps"))


LORA_FIELDS = ("r", "lora_alpha", "lora_dropout", "target_modules")


@dataclass(frozen=True)
class FieldCheck:
    """One value of the recipe compared with the capture of its own code."""

    name: str
    recipe: Any
    captured: Any
    status: Status
    detail: str = ""


@dataclass(frozen=True)
class CaptureCheck:
    """Every checked value of one built-in recipe against one capture of its checkout."""

    ref: str
    checkout: Path
    capture: Path
    versions: dict[str, str]
    """Library versions the capture ran with (the recipe side is parity's own environment)."""
    checks: list[FieldCheck]

    @property
    def ok(self) -> bool:
        """No drift (version-dependent values are reported, not failed)."""
        return all(check.status != "drift" for check in self.checks)

    def count(self, status: Status) -> int:
        return sum(check.status == status for check in self.checks)

    def by_name(self, name: str) -> FieldCheck:
        return next(check for check in self.checks if check.name == name)


def _check(name: str, recipe: Any, captured: Any, detail: str = "") -> FieldCheck:
    status: Status = "ok" if values_equal(recipe, captured) else "drift"
    return FieldCheck(name, recipe, captured, status, detail)


def _is_ratio(value: Any) -> bool:
    return isinstance(value, float) and 0 < value < 1


def warmup_checks(
    mine: dict[str, Any], theirs: dict[str, Any], named: set[str], version: str
) -> list[FieldCheck]:
    """Warmup, compared where both environments have the field: transformers 4 has `warmup_ratio`,
    transformers 5 takes a ratio as a float `warmup_steps`; a ratio the capture's library has no field for
    is version-dependent, not drift."""
    old, new = "warmup_ratio", "warmup_steps"
    if not named & {old, new}:
        return []
    ratio_here = mine.get(old) if mine.get(old) else (mine.get(new) if _is_ratio(mine.get(new)) else None)
    steps_here = 0 if _is_ratio(mine.get(new)) else mine.get(new)
    if old in theirs:
        checks = [_check(f"training.{old}", ratio_here or 0.0, theirs[old], f"here given as {new}")]
        return checks + [_check(f"training.{new}", steps_here, theirs[new])]
    if ratio_here is not None and not values_equal(ratio_here, theirs.get(new)):
        detail = (
            f"a {old} of {ratio_here!r} reaches the trainer only under transformers 4; the capture's "
            f"transformers {version} has no {old} field, so its trainer gets {new}={theirs.get(new)!r}"
        )
        return [FieldCheck(f"training.{new}", mine.get(new), theirs.get(new), "version-dependent", detail)]
    return [_check(f"training.{new}", mine.get(new), theirs.get(new))]


def training_checks(
    recipe_values: dict[str, Any], recipe: Recipe, captured: CapturedRecipe
) -> list[FieldCheck]:
    """Training-relevant fields the recipe sets or the capture changes from its class defaults."""
    theirs = captured.training_args.fields
    version = captured.manifest.get("versions", {}).get("transformers", "?")
    named = set(recipe.training) | set(captured.training_args.non_default)
    checks = warmup_checks(recipe_values, theirs, named, version)
    for name in training_fields():
        if name not in named or name in ("warmup_ratio", "warmup_steps"):
            continue
        here, there = name in recipe_values, name in theirs
        if here and there:
            checks.append(_check(f"training.{name}", recipe_values[name], theirs[name]))
        elif here or there:
            where = "parity's environment" if here else f"the capture's (transformers {version})"
            checks.append(
                FieldCheck(
                    f"training.{name}",
                    recipe_values.get(name),
                    theirs.get(name),
                    "version-dependent",
                    f"a field only in {where}",
                )
            )
    return checks


def launch_checks(recipe: Recipe, captured: CapturedRecipe) -> list[FieldCheck]:
    """Processes, per-device batch, accumulation and global batch at each captured world size."""
    from parity.plan import plan_launch

    checks = []
    for row in captured.launch:
        plan = plan_launch(recipe, row.world_size)
        mine = {
            "processes": plan.num_processes,
            "per_device_train_batch_size": plan.per_device_train_batch_size,
            "gradient_accumulation_steps": plan.gradient_accumulation_steps,
            "global_batch": plan.global_batch,
        }
        theirs = {
            "processes": row.processes,
            "per_device_train_batch_size": row.per_device_train_batch_size,
            "gradient_accumulation_steps": row.gradient_accumulation_steps,
            "global_batch": row.global_batch,
        }
        checks.append(_check(f"launch.world_size_{row.world_size}", mine, theirs))
    return checks


def _dtype_name(value: Any) -> Any:
    return value.removeprefix("torch.") if isinstance(value, str) else value


def model_checks(recipe: Recipe, captured: CapturedRecipe) -> list[FieldCheck]:
    """The dtype and attention kernel the recipe's code asks `from_pretrained` for."""
    request = captured.model.request or {}
    return [
        _check("model.torch_dtype", _dtype_name(recipe.model.torch_dtype), _dtype_name(request.get("dtype"))),
        _check(
            "model.attn_implementation", recipe.model.attn_implementation, request.get("attn_implementation")
        ),
    ]


def _all_linear_targets(captured: CapturedRecipe) -> list[str]:
    """What peft resolves 'all-linear' to on the captured architecture (built on the meta device), as the
    module-name suffixes a wrapped model's LoraConfig lists."""
    import torch
    from peft import LoraConfig
    from peft.tuners.tuners_utils import _maybe_include_all_linear_layers
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = dict(captured.model.architecture_config)
    config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    resolved = _maybe_include_all_linear_layers(LoraConfig(target_modules="all-linear"), model)
    return sorted({name.rsplit(".", 1)[-1] for name in resolved.target_modules})


def lora_checks(lora_config: Any, captured: CapturedRecipe) -> list[FieldCheck]:
    """LoRA rank, alpha, dropout and target modules (the recipe's 'all-linear' resolved as peft resolves it)."""
    peft = (captured.peft or {}).get("config")
    if lora_config is None or peft is None:
        return [_check("peft.method", "lora" if lora_config else "none", "lora" if peft else "none")]
    checks = []
    for name in LORA_FIELDS:
        mine, theirs = getattr(lora_config, name), peft.get(name)
        detail = ""
        if name == "target_modules":
            if mine == "all-linear" and isinstance(theirs, list):
                mine, detail = _all_linear_targets(captured), "'all-linear' as peft resolves it"
            mine = sorted(mine) if isinstance(mine, set | list | tuple) else mine
            theirs = sorted(theirs) if isinstance(theirs, list) else theirs
        checks.append(_check(f"peft.lora.{name}", mine, theirs, detail))
    return checks


def compare_with_capture(ref: str, checkout: Path, recipe: Recipe, captured: CapturedRecipe) -> CaptureCheck:
    """The recipe's effective values (parity.plan.resolve) against what its own code gave the trainer."""
    from parity.plain import config_values
    from parity.plan import resolve

    resolved = resolve(recipe)
    values = config_values(resolved.sft_config)
    checks = [
        *training_checks(values, recipe, captured),
        *launch_checks(recipe, captured),
        *model_checks(recipe, captured),
        *lora_checks(resolved.lora_config, captured),
    ]
    versions = {k: str(v) for k, v in captured.manifest.get("versions", {}).items()}
    return CaptureCheck(ref, checkout, captured.path, versions, checks)


def capture_section_path(ref: str) -> Path:
    """vendor_refs/<ref>/capture.yaml: how the ref's own code is run."""
    return VENDOR_REFS_DIR / ref / "capture.yaml"


def capture_section(
    ref: str,
    checkout: Path,
    data: dict[str, str],
    stubs: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    python: str | None = None,
) -> dict[str, Any]:
    """The ref's `capture:` section with the checkout and the command line's data, stubs, env and python."""
    path = capture_section_path(ref)
    if not path.is_file():
        raise ParityError(f"ref '{ref}' has no {path.relative_to(VENDOR_REFS_DIR.parent)}: cannot capture it")
    section = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(section, dict):
        raise ParityError(f"malformed {path}: expected a capture section mapping")
    merged_data = {
        **(section.get("data") or {}),
        **{name: str(Path(d).absolute()) for name, d in data.items()},
    }
    unmapped = [name for name, folder in merged_data.items() if folder is None]
    if unmapped:
        raise ParityError(
            f"ref '{ref}' reads {unmapped[0]}: pass --data {unmapped[0]}=DIR with its local files"
        )
    return {
        **section,
        "checkout": str(checkout.absolute()),
        "data": merged_data,
        "stubs": [*(section.get("stubs") or []), *stubs],
        "env": {**(section.get("env") or {}), **(env or {})},
        "python": python or section.get("python", "current"),
    }


def verify_by_capture(
    ref: str,
    checkout: Path,
    data: dict[str, str],
    stubs: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    python: str | None = None,
) -> CaptureCheck:
    """Capture the checkout with the ref's command (cached) and compare it with the built-in recipe."""
    from parity.capture.pipeline import capture
    from parity.capture.reader import load_capture
    from parity.capture.yaml_section import options_from_section
    from parity.registry import resolve_recipe

    recipe = resolve_recipe(ref)
    section = capture_section(ref, checkout, data, stubs, env, python)
    result = capture(options_from_section(section, capture_section_path(ref)))
    return compare_with_capture(ref, checkout, recipe, load_capture(result.path))


__all__ = [
    "CaptureCheck",
    "FieldCheck",
    "compare_with_capture",
    "verify_by_capture",
]
