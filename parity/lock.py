"""CI parity checks: a small, reviewable lockfile of what a recipe pair trains on, and its re-check.

The lock records the accepted findings, each recipe's training-relevant effective config (and a digest of all
of it), its batch table, and golden tokenization of the first K examples (hashes, plus example 0 in full).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import yaml

from parity.atomic import write_text_atomic
from parity.axes import FIELD_AXIS, lock_keys
from parity.diff import diff_materialized, materialize_pair
from parity.errors import ParityError
from parity.materialize import Materialized
from parity.plan import TABLE_WORLD_SIZES
from parity.probes import ProbeContext
from parity.registry import resolve_recipe
from parity.trl_bridge import IGNORE_INDEX

LOCK_SCHEMA_VERSION = 1
DEFAULT_EXAMPLES = 16
DEFAULT_DATA = "synthetic:800:160"
LONG_VALUE = 120
"""Strings longer than this are stored as a sha256 digest to keep the lock reviewable."""
LIBRARIES = ("trl", "transformers", "tokenizers", "peft", "datasets", "torch")
LOCKED_AXES = ("peft", "template", "prompt", "data")
"""Axes whose recipe keys the lock records after the training fields, in file order (parity.axes.lock_keys)."""


def digest(value: Any) -> str:
    return (
        "sha256:"
        + hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]
    )


def compact(value: Any) -> Any:
    """A value as stored in the lock: long strings and large containers become digests."""
    if isinstance(value, str) and len(value) > LONG_VALUE:
        return digest(value)
    if isinstance(value, list | dict) and len(json.dumps(value, ensure_ascii=False)) > LONG_VALUE:
        return digest(value)
    return value


def _library_versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


MISSING = object()


def locked_value(m: Materialized, lora: dict[str, Any] | None, key: str) -> Any:
    """The lock's value of one recipe key (MISSING for a LoRA field of a recipe without that field)."""
    from parity.plain import plain

    if key == "peft.method":
        return m.recipe.peft.method
    if key == "data.split_rule":
        return m.data.split_rule
    if key.startswith("peft.lora."):
        name = key.removeprefix("peft.lora.")
        return compact(lora[name]) if lora and name in lora else MISSING
    section, name = key.split(".")
    return compact(plain(getattr(getattr(m.recipe, section), name)))


def recipe_section(m: Materialized, examples: int) -> dict[str, Any]:
    """The lock entry of one materialized recipe."""
    from parity.effective import CONTEXT_FIELDS
    from parity.plain import config_values, plain

    training = {k: v for k, v in config_values(m.sft_config).items() if k not in CONTEXT_FIELDS}
    lora = config_values(m.lora_config) if m.lora_config is not None else None
    config: dict[str, Any] = {
        f"training.{k}": compact(training[k]) for k in sorted(FIELD_AXIS) if k in training
    }
    for axis in LOCKED_AXES:
        for key in lock_keys(axis):
            value = locked_value(m, lora, key)
            if value is not MISSING:
                config[key] = value
    full = {
        "training": training,
        "lora": lora,
        "recipe": {k: plain(v) for k, v in vars(m.recipe).items() if k != "provenance"},
    }
    batch = {}
    for n in TABLE_WORLD_SIZES:
        plan = m.launch_plan(n)
        batch[n] = {
            "processes": plan.num_processes,
            "per_device": plan.per_device_train_batch_size,
            "accumulation": plan.gradient_accumulation_steps,
            "global_batch": plan.global_batch,
        }
    rows = m.prepare_raw(m.raw.train[:examples])
    ids = [list(r["input_ids"]) for r in rows]
    masks = ["".join("1" if label != IGNORE_INDEX else "0" for label in r["labels"]) for r in rows]
    return {
        "config_digest": digest(full),
        "config": config,
        "batch": batch,
        "tokenization": {
            "examples": len(ids),
            "input_ids": [digest(x)[7:] for x in ids],
            "loss_mask": [digest(x)[7:] for x in masks],
            "example_0": {"input_ids": ids[0], "loss_mask": masks[0]},
        },
    }


def build_lock(
    a_ref: str,
    b_ref: str,
    data: str = DEFAULT_DATA,
    world_size: int = 1,
    examples: int = DEFAULT_EXAMPLES,
    set_a: list[str] | None = None,
    set_b: list[str] | None = None,
) -> dict[str, Any]:
    """Compute the lock document for a recipe pair."""
    if examples < 1:
        raise ParityError(f"--examples must be at least 1, got {examples}")
    recipe_a, recipe_b = resolve_recipe(a_ref, set_a or []), resolve_recipe(b_ref, set_b or [])
    ma, mb = materialize_pair(recipe_a, recipe_b, data, world_size, samples=max(64, examples))
    report = diff_materialized(ma, mb, context=ProbeContext(world_sizes=TABLE_WORLD_SIZES))
    return {
        "schema_version": LOCK_SCHEMA_VERSION,
        "pair": {
            "a": a_ref,
            "b": b_ref,
            "set_a": list(set_a or []),
            "set_b": list(set_b or []),
            "data": data,
            "world_size": world_size,
            "examples": examples,
        },
        "libraries": _library_versions(),
        "findings": [
            {"axis": f.axis, "key": f.key, "a": compact(f.to_dict()["a"]), "b": compact(f.to_dict()["b"])}
            for f in report.findings
        ],
        "recipes": {"a": recipe_section(ma, examples), "b": recipe_section(mb, examples)},
    }


def dump_lock(lock: dict[str, Any]) -> str:
    header = "# parity.lock: what this recipe pair trains on. Regenerate with `parity check --update`.\n"
    return header + yaml.safe_dump(
        lock, sort_keys=False, allow_unicode=True, width=100000, default_flow_style=None
    )


def write_lock(lock: dict[str, Any], path: Path) -> None:
    write_text_atomic(Path(path), dump_lock(lock))


def read_lock(path: Path) -> dict[str, Any]:
    """Load and validate a lock; any problem is one ParityError line."""
    path = Path(path)
    if not path.is_file():
        raise ParityError(f"lock file not found: {path}")
    try:
        lock = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ParityError(f"{path}: not a valid lock (malformed YAML)") from None
    problem = _lock_problem(lock)
    if problem:
        raise ParityError(f"{path}: not a valid lock ({problem}); regenerate it with `parity lock`")
    return lock


def _lock_problem(lock: Any) -> str | None:
    if not isinstance(lock, dict):
        return "expected a mapping"
    if lock.get("schema_version") != LOCK_SCHEMA_VERSION:
        return f"schema_version must be {LOCK_SCHEMA_VERSION}"
    pair = lock.get("pair")
    if not isinstance(pair, dict) or not all(isinstance(pair.get(k), str) for k in ("a", "b", "data")):
        return "pair.a, pair.b and pair.data must be strings"
    if not isinstance(pair.get("world_size"), int) or not isinstance(pair.get("examples"), int):
        return "pair.world_size and pair.examples must be integers"
    if not isinstance(lock.get("findings"), list) or not all(
        isinstance(f, dict) and {"axis", "key", "a", "b"} <= set(f) for f in lock["findings"]
    ):
        return "findings must be a list of {axis, key, a, b}"
    recipes = lock.get("recipes")
    if not isinstance(recipes, dict) or set(recipes) != {"a", "b"}:
        return "recipes must have entries a and b"
    for side, entry in recipes.items():
        if not isinstance(entry, dict) or not {"config_digest", "config", "batch", "tokenization"} <= set(
            entry
        ):
            return f"recipes.{side} needs config_digest, config, batch and tokenization"
        tokens = entry["tokenization"]
        if (
            not isinstance(tokens, dict)
            or not isinstance(tokens.get("input_ids"), list)
            or not isinstance(tokens.get("example_0", {}).get("input_ids"), list)
        ):
            return f"recipes.{side}.tokenization is incomplete"
    return None


@dataclass
class LockDifference:
    """One way the recomputed state differs from the lock."""

    entry: str
    """Which lock entry: 'findings', 'a.config', 'b.batch', 'a.tokenization', ..."""
    message: str
    detail: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    lock: dict[str, Any]
    current: dict[str, Any]
    differences: list[LockDifference]

    @property
    def ok(self) -> bool:
        return not self.differences

    def entries(self) -> list[str]:
        """Every checkable entry name (one pytest item each)."""
        return ["findings"] + [
            f"{side}.{part}" for side in ("a", "b") for part in ("config", "batch", "tokenization")
        ]

    def differences_for(self, entry: str) -> list[LockDifference]:
        return [d for d in self.differences if d.entry == entry]


def _key(finding: dict) -> tuple[str, str]:
    return finding["axis"], finding["key"]


def compare_findings(locked: list[dict], current: list[dict]) -> list[LockDifference]:
    old = {_key(f): f for f in locked}
    new = {_key(f): f for f in current}
    out = []
    for key in sorted(new.keys() - old.keys()):
        f = new[key]
        out.append(LockDifference("findings", f"new finding {key[0]} {key[1]}: a={f['a']!r} b={f['b']!r}"))
    for key in sorted(old.keys() - new.keys()):
        f = old[key]
        out.append(
            LockDifference("findings", f"vanished finding {key[0]} {key[1]} (was a={f['a']!r} b={f['b']!r})")
        )
    for key in sorted(old.keys() & new.keys()):
        for side in ("a", "b"):
            if old[key][side] != new[key][side]:
                out.append(
                    LockDifference(
                        "findings",
                        f"changed finding {key[0]} {key[1]}: {side} was {old[key][side]!r}, now {new[key][side]!r}",
                    )
                )
    return out


def compare_recipe(
    side: str, name: str, locked: dict, current: dict, tokenizer: Any | None
) -> list[LockDifference]:
    out = []
    if locked["config_digest"] != current["config_digest"]:
        changed = [
            f"{key}: was {locked['config'].get(key)!r}, now {current['config'].get(key)!r}"
            for key in sorted(set(locked["config"]) | set(current["config"]))
            if locked["config"].get(key) != current["config"].get(key)
        ]
        message = f"effective config of recipe {name} changed" + (
            f" ({len(changed)} training-relevant value(s))"
            if changed
            else " (a run-management value; digest differs)"
        )
        out.append(LockDifference(f"{side}.config", message, changed))
    for n, plan in current["batch"].items():
        old = locked["batch"].get(n) or locked["batch"].get(str(n))
        if old != plan:
            out.append(
                LockDifference(
                    f"{side}.batch",
                    f"effective batch of recipe {name} at world size {n} changed: was {old}, now {plan}",
                )
            )
    out += _compare_tokenization(side, name, locked["tokenization"], current["tokenization"], tokenizer)
    return out


def _compare_tokenization(
    side: str, name: str, old: dict, new: dict, tokenizer: Any | None
) -> list[LockDifference]:
    out = []
    for i, (old_ids, new_ids, old_mask, new_mask) in enumerate(
        zip(old["input_ids"], new["input_ids"], old["loss_mask"], new["loss_mask"], strict=False)
    ):
        what = [
            w
            for w, changed in (("input_ids", old_ids != new_ids), ("loss mask", old_mask != new_mask))
            if changed
        ]
        if what:
            detail = token_diff(old["example_0"], new["example_0"], tokenizer) if i == 0 else []
            out.append(
                LockDifference(
                    f"{side}.tokenization",
                    f"tokenization of recipe {name} changed at example {i}: {' and '.join(what)}",
                    detail,
                )
            )
    if old["examples"] != new["examples"]:
        out.append(
            LockDifference(
                f"{side}.tokenization",
                f"number of golden examples changed: {old['examples']} -> {new['examples']}",
            )
        )
    return out


def token_diff(old: dict, new: dict, tokenizer: Any | None, context: int = 3) -> list[str]:
    """Token-by-token explanation of how example 0 changed (ids, token strings, loss-mask bits)."""
    import difflib

    def show(ids: list[int], mask: str, start: int, end: int) -> str:
        tokens = (
            tokenizer.convert_ids_to_tokens(ids[start:end])
            if tokenizer is not None
            else [str(i) for i in ids[start:end]]
        )
        return " ".join(
            f"{tok!r}:{tid}{'*' if mask[start + j : start + j + 1] == '1' else ''}"
            for j, (tok, tid) in enumerate(zip(tokens, ids[start:end], strict=True))
        )

    lines = []
    matcher = difflib.SequenceMatcher(a=old["input_ids"], b=new["input_ids"], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        lines.append(
            f"{op} at token {i1}: locked [{show(old['input_ids'], old['loss_mask'], i1, i2)}] -> now [{show(new['input_ids'], new['loss_mask'], j1, j2)}]"
        )
    if not lines and old["loss_mask"] != new["loss_mask"]:
        first = next(
            i for i, (x, y) in enumerate(zip(old["loss_mask"], new["loss_mask"], strict=False)) if x != y
        )
        lines.append(
            f"loss mask differs from token {first}: locked {old['loss_mask'][first : first + 12]} -> now {new['loss_mask'][first : first + 12]} (1 = carries loss)"
        )
    if lines:
        lines.append("(* marks tokens that carry loss)")
    return lines[:12]


def rebuild_lock(lock: dict[str, Any]) -> dict[str, Any]:
    """Recompute a lock document for the pair, data and options it records."""
    pair = lock["pair"]
    return build_lock(
        pair["a"],
        pair["b"],
        pair["data"],
        pair["world_size"],
        pair["examples"],
        pair.get("set_a"),
        pair.get("set_b"),
    )


def update_lock(path: Path) -> None:
    """Rewrite a lock with the current state of its pair (accepting every change)."""
    write_lock(rebuild_lock(read_lock(path)), path)


def check_lock(path: Path) -> CheckResult:
    """Recompute the pair named in the lock and compare every entry."""
    lock = read_lock(path)
    pair = lock["pair"]
    current = rebuild_lock(lock)
    tokenizer = _tokenizer_for(pair["a"], pair.get("set_a"))
    differences = compare_findings(lock["findings"], current["findings"])
    for side in ("a", "b"):
        differences += compare_recipe(
            side, pair[side], lock["recipes"][side], current["recipes"][side], tokenizer
        )
    if differences and lock.get("libraries") != current["libraries"]:
        changed = {
            k: f"{lock.get('libraries', {}).get(k)} -> {v}"
            for k, v in current["libraries"].items()
            if lock.get("libraries", {}).get(k) != v
        }
        differences.append(LockDifference("libraries", f"library versions changed since the lock: {changed}"))
    return CheckResult(lock, current, differences)


def _tokenizer_for(ref: str, overrides: list[str] | None):
    from parity.tokenizer import load_tokenizer

    return load_tokenizer(resolve_recipe(ref, overrides or []))[0]


def format_check(result: CheckResult, path: Path) -> str:
    if result.ok:
        pair = result.lock["pair"]
        return f"parity check: {path} matches ({pair['a']} vs {pair['b']}, {len(result.lock['findings'])} accepted findings)"
    lines = [f"parity check: {path} does not match ({len(result.differences)} difference(s)):"]
    for d in result.differences:
        lines.append(f"  - [{d.entry}] {d.message}")
        lines += [f"      {line}" for line in d.detail]
    lines.append(
        "If the change is intended, accept it with `parity check --lock " + str(path) + " --update`."
    )
    return "\n".join(lines)
