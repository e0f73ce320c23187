"""Alignment: rewrite one recipe so chosen axes match the other, through the same overrides as `--set-a`.

`align(a, b, ["batch"], to="b")` copies B's batch keys onto A; the applied overrides can be saved as YAML.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from parity.atomic import write_text_atomic
from parity.axes import SECTION_KEYS, field_axis, parse_align_axes
from parity.errors import ParityError
from parity.overrides import RESET, apply_override, parse_assignment
from parity.plain import plain
from parity.registry import looks_like_path
from parity.spec import Recipe


@dataclass
class AlignedPair:
    """Both recipes after alignment, and the overrides applied to each side."""

    aligned_a: Recipe
    aligned_b: Recipe
    axes: list[str]
    to: str
    applied_a: dict[str, Any] = field(default_factory=dict)
    """Dotted key -> plain value set on A (RESET restores the library default)."""
    applied_b: dict[str, Any] = field(default_factory=dict)

    @property
    def overrides_a(self) -> list[str]:
        return [assignment(k, v) for k, v in self.applied_a.items()]

    @property
    def overrides_b(self) -> list[str]:
        return [assignment(k, v) for k, v in self.applied_b.items()]

    def to_dict(self) -> dict[str, Any]:
        return {"axes": self.axes, "to": self.to, "overrides": {"a": self.overrides_a, "b": self.overrides_b}}


def assignment(key: str, value: Any) -> str:
    """'KEY=VALUE' with the value in JSON (valid YAML), so parse_assignment reads it back unchanged."""
    return f"{key}={json.dumps(value, ensure_ascii=False)}"


def axis_values(recipe: Recipe, axis: str) -> dict[str, Any]:
    """The dotted keys an axis covers on this recipe and their current plain values (training keys as set)."""
    values = {key: plain(_get(recipe, key)) for key in SECTION_KEYS.get(axis, ())}
    for name in sorted(recipe.training):
        if field_axis(name) == axis:
            values[f"training.{name}"] = plain(recipe.training[name])
    return values


def axis_overrides(target: Recipe, reference: Recipe, axis: str) -> dict[str, Any]:
    """Overrides that make `target` match `reference` on one axis (only keys whose values differ).

    The eval prompt's {instruction} is the training instruction (prompt axis); when those differ, aligning eval
    writes the reference's instruction into the prompt so both recipes are evaluated with the same text."""
    wanted = axis_values(reference, axis)
    current = axis_values(target, axis)
    out: dict[str, Any] = {}
    for key, value in wanted.items():
        if key not in current or current[key] != value:
            out[key] = value
    for key in current:
        if key not in wanted and key.startswith("training."):
            out[key] = RESET
    if (
        axis == "eval"
        and "{instruction}" in reference.eval.prompt
        and reference.prompt.instruction != target.prompt.instruction
    ):
        out["eval.prompt"] = reference.eval.prompt.replace("{instruction}", reference.prompt.instruction)
    return out


def align(a: Recipe, b: Recipe, axes: list[str] | str, to: str = "b") -> AlignedPair:
    """Align the chosen axes: the reference (`to`) stays as is, the other recipe is changed to match it."""
    if to not in ("a", "b"):
        raise ParityError(f"--to must be 'a' or 'b', got '{to}'")
    names = parse_align_axes(axes)
    aligned_a, aligned_b = a.copy(), b.copy()
    target, reference = (aligned_a, aligned_b) if to == "b" else (aligned_b, aligned_a)
    applied: dict[str, Any] = {}
    for axis in names:
        for key, value in axis_overrides(target, reference, axis).items():
            apply_override(target, key, value, where=f"align:{axis}")
            applied[key] = value
    pair = AlignedPair(aligned_a, aligned_b, names, to)
    if to == "b":
        pair.applied_a = applied
    else:
        pair.applied_b = applied
    return pair


def _get(recipe: Recipe, key: str) -> Any:
    section, _, name = key.partition(".")
    return getattr(getattr(recipe, section), name)


class _BlockDumper(yaml.SafeDumper):
    """SafeDumper writing multi-line strings (chat templates) as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str_representer)


def aligned_yaml(
    ref: str, recipe_name: str, user_overrides: Iterable[str], applied: dict[str, Any], note: str
) -> str:
    """YAML text of an aligned recipe: `extends` the original ref, `set` the user's then the alignment's overrides."""
    settings: dict[str, Any] = {}
    for text in user_overrides:
        key, value = parse_assignment(text)
        settings[key] = plain(value)
    settings.update(applied)
    extends = str(Path(ref).resolve()) if looks_like_path(ref) else ref
    doc = {"extends": extends, "name": recipe_name, "set": settings}
    body = yaml.dump(doc, Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, width=120)
    return f"# {note}\n{body}"


def save_aligned(
    pair: AlignedPair,
    directory: Path,
    a_ref: str,
    b_ref: str,
    set_a: Iterable[str] = (),
    set_b: Iterable[str] = (),
) -> dict[str, Path]:
    """Write `<name>.aligned.yaml` for both recipes into `directory`; returns {'a': path, 'b': path}."""
    directory.mkdir(parents=True, exist_ok=True)
    same = pair.aligned_a.name == pair.aligned_b.name
    axes = ",".join(pair.axes) or "none"
    paths = {}
    for side, ref, user, applied, recipe in (
        ("a", a_ref, list(set_a), pair.applied_a, pair.aligned_a),
        ("b", b_ref, list(set_b), pair.applied_b, pair.aligned_b),
    ):
        role = "reference" if side == pair.to else f"aligned to {pair.to.upper()}"
        note = f"Recipe {side.upper()} of `parity run --align {axes} --to {pair.to}` ({role})."
        name = f"{recipe.name}.{side}.aligned.yaml" if same else f"{recipe.name}.aligned.yaml"
        path = directory / name
        write_text_atomic(path, aligned_yaml(ref, recipe.name, user, applied, note))
        paths[side] = path
    return paths
