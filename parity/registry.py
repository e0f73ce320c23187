"""The recipe registry: built-in adapters, YAML recipes that `extends:` another, and entry-point plugins.

A YAML recipe never executes code unless it declares a `capture:` section (then the recipe's own code runs
up to its trainer, cached); otherwise it names a base recipe and sets dotted keys under `set:`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from parity.errors import ParityError, unknown_key_error
from parity.overrides import apply_override, parse_assignment
from parity.registries import Registry
from parity.spec import Recipe
from parity.validate import validate_recipe

ENTRY_POINT_GROUP = "parity.recipes"
YAML_KEYS = ("extends", "capture", "name", "description", "set")


@dataclass(frozen=True)
class RecipeEntry:
    """A recipe the registry can build, and where it comes from."""

    name: str
    origin: str
    target: str


BUILTINS: Registry[RecipeEntry] = Registry("recipe")
"""The adapters under recipes/; plugins join them in known_recipes()."""
for _name in ("llmhalluc", "revise"):
    BUILTINS.add(_name, RecipeEntry(_name, "built-in (recipes/)", f"recipes.{_name}:build"))


def known_recipes() -> Registry[RecipeEntry]:
    """Every named recipe: built-ins first, then plugins (a plugin cannot shadow a built-in)."""
    found: Registry[RecipeEntry] = Registry("recipe")
    for name, entry in BUILTINS.items():
        found.add(name, entry)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name not in found:
            found.add(point.name, RecipeEntry(point.name, f"entry point ({point.value})", point.value))
    return found


def _build_target(target: str) -> Recipe:
    module_name, _, attr = target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ParityError(f"cannot load recipe adapter '{target}': {err}") from None
    recipe = obj() if callable(obj) else obj
    if not isinstance(recipe, Recipe):
        raise ParityError(
            f"recipe adapter '{target}' returned {type(recipe).__name__}, expected parity.spec.Recipe"
        )
    return recipe


def looks_like_path(ref: str) -> bool:
    return ref.endswith((".yaml", ".yml")) or "/" in ref or Path(ref).is_file()


def resolve_recipe(ref: str, overrides: Iterable[str] = (), _seen: tuple[str, ...] = ()) -> Recipe:
    """Build a recipe by name, YAML path or `capture:DIR`, then apply CLI-style KEY=VALUE overrides."""
    if ref.startswith("capture:"):
        from parity.capture.source import recipe_for

        recipe = recipe_for(ref)
    elif looks_like_path(ref):
        recipe = _load_yaml_recipe(Path(ref), _seen)
    else:
        recipes = known_recipes()
        if ref not in recipes:
            known = ", ".join(recipes.names())
            raise ParityError(
                f"{unknown_key_error('recipe', ref, recipes.names())} (known: {known}, or a YAML path)"
            )
        entry = recipes.get(ref)
        recipe = _build_target(entry.target)
        recipe.origin = entry.origin
    for text in overrides:
        key, value = parse_assignment(text)
        apply_override(recipe, key, value, where="cli")
    if not _seen:  # the recipe asked for (a base a YAML extends is checked as part of it)
        validate_recipe(recipe)
    return recipe


def _load_yaml_recipe(path: Path, seen: tuple[str, ...]) -> Recipe:
    if not path.is_file():
        raise ParityError(f"recipe file not found: {path}")
    resolved = str(path.resolve())
    if resolved in seen:
        chain = " -> ".join(Path(p).name for p in (*seen[seen.index(resolved) :], resolved))
        raise ParityError(f"recipe {path}: 'extends' forms a cycle: {chain}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "context_mark", None) or getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None)
        raise ParityError(
            f"recipe {path}: malformed YAML{where}" + (f" ({problem})" if problem else "")
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ParityError(f"recipe {path}: cannot read ({err})") from None
    if not isinstance(doc, dict):
        raise ParityError(f"recipe {path}: expected a mapping with 'extends' and 'set'")
    for key in doc:
        if key not in YAML_KEYS:
            raise unknown_key_error(f"top-level key in {path}", str(key), list(YAML_KEYS))
    base = doc.get("extends")
    if "capture" in doc:
        if base is not None:
            raise ParityError(f"recipe {path}: declare either 'capture' or 'extends', not both")
        from parity.capture.yaml_section import captured_recipe

        recipe = captured_recipe(doc["capture"], path)
        base = "a capture"
    elif base is None:
        recipe = Recipe(name=path.stem)
    else:
        if not isinstance(base, str):
            raise ParityError(f"recipe {path}: 'extends' must be a recipe name or a path")
        base_ref = str(path.parent / base) if looks_like_path(base) and not Path(base).is_absolute() else base
        recipe = resolve_recipe(base_ref, (), (*seen, resolved))
    recipe.name = str(doc.get("name") or path.stem)
    recipe.origin = f"yaml ({path.name}, extends {base})" if base else f"yaml ({path.name})"
    if "description" in doc:
        recipe.description = str(doc["description"])
    settings = doc.get("set") or {}
    if not isinstance(settings, dict):
        raise ParityError(f"recipe {path}: 'set' must map dotted keys to values")
    for key, value in settings.items():
        apply_override(recipe, str(key), value, where=f"yaml:{path.name}")
    return recipe


def register_hint() -> str:
    """How a third-party package registers a recipe (shown by `parity recipes`)."""
    return f'[project.entry-points."{ENTRY_POINT_GROUP}"] my_recipe = "my_pkg.recipes:build"'
