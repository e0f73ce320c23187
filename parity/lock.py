"""CI parity checks: a small, reviewable lockfile of what a recipe pair trains on, and its re-check.

The lock records the accepted findings, each recipe's training-relevant effective config (and a digest of all
of it), its batch table, and golden tokenization of the first K examples (hashes, plus example 0 in full).
`Lock` is built from one diff report and the materialized recipes' plans; `check_lock` compares every value.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from parity.atomic import write_text_atomic
from parity.axes import FIELD_AXIS, LOCK_KEYS
from parity.capture.examples import captured_split
from parity.capture.source import captured_directory
from parity.diff import DiffReport, diff_materialized, materialize_pair
from parity.effective import CONTEXT_FIELDS
from parity.errors import ParityError
from parity.installed import running_version
from parity.materialize import CAPTURED_ROWS, Materialized
from parity.plain import config_values, plain
from parity.plan import TABLE_WORLD_SIZES, held_world_sizes
from parity.probes import ProbeContext
from parity.registry import looks_like_path, resolve_recipe
from parity.trl_bridge import IGNORE_INDEX

LOCK_SCHEMA_VERSION = 1
DEFAULT_EXAMPLES = 16
DEFAULT_DATA = "synthetic:800:160"
LONG_VALUE = 120
"""Strings longer than this are stored as a sha256 digest to keep the lock reviewable."""
LIBRARIES = ("trl", "transformers", "tokenizers", "peft", "datasets", "torch")
SIDES = ("a", "b")
RECIPE_PARTS = ("config", "batch", "tokenization")
ENTRIES = ("findings", *(f"{side}.{part}" for side in SIDES for part in RECIPE_PARTS), "libraries")
"""Every checkable entry of a lock (one pytest item each)."""
HEADER = "# parity.lock: what this recipe pair trains on. Regenerate with `parity check --update`.\n"


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


class MalformedLock(ValueError):
    """What is wrong with a lock document (becomes one ParityError line naming the file)."""


def _get(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedLock(f"{where}{key} must be {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", list: "a list", dict: "a mapping"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


@dataclass(frozen=True)
class LockPair:
    """The pair, data and options a lock was computed for (re-used verbatim by the check)."""

    a: str
    b: str
    set_a: list[str]
    set_b: list[str]
    data: str
    world_size: int
    examples: int

    def ref(self, side: str) -> str:
        return self.a if side == "a" else self.b

    def overrides(self, side: str) -> list[str]:
        return self.set_a if side == "a" else self.set_b

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "set_a": list(self.set_a),
            "set_b": list(self.set_b),
            "data": self.data,
            "world_size": self.world_size,
            "examples": self.examples,
        }

    @classmethod
    def parse(cls, doc: Any) -> LockPair:
        if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("a", "b", "data")):
            raise MalformedLock("pair.a, pair.b and pair.data must be strings")
        if not all(isinstance(doc.get(k), int) for k in ("world_size", "examples")):
            raise MalformedLock("pair.world_size and pair.examples must be integers")
        overrides = [doc.get(k) or [] for k in ("set_a", "set_b")]
        if not all(isinstance(o, list) and all(isinstance(x, str) for x in o) for o in overrides):
            raise MalformedLock("pair.set_a and pair.set_b must be lists of strings")
        return cls(doc["a"], doc["b"], *overrides, doc["data"], doc["world_size"], doc["examples"])


@dataclass(frozen=True)
class LockedFinding:
    """An accepted finding: its axis and key and both (compacted) values."""

    axis: str
    key: str
    a: Any
    b: Any

    @property
    def name(self) -> tuple[str, str]:
        return self.axis, self.key

    def value(self, side: str) -> Any:
        return self.a if side == "a" else self.b

    def to_dict(self) -> dict[str, Any]:
        return {"axis": self.axis, "key": self.key, "a": self.a, "b": self.b}

    @classmethod
    def parse(cls, doc: Any) -> LockedFinding:
        if not isinstance(doc, dict) or not {"axis", "key", "a", "b"} <= set(doc):
            raise MalformedLock("findings must be a list of {axis, key, a, b}")
        return cls(str(doc["axis"]), str(doc["key"]), doc["a"], doc["b"])


@dataclass(frozen=True)
class BatchRow:
    """The effective batch of one recipe at one world size."""

    processes: int
    per_device: int
    accumulation: int
    global_batch: int

    def to_dict(self) -> dict[str, int]:
        return {
            "processes": self.processes,
            "per_device": self.per_device,
            "accumulation": self.accumulation,
            "global_batch": self.global_batch,
        }

    @classmethod
    def parse(cls, doc: Any, where: str) -> BatchRow:
        if not isinstance(doc, dict):
            raise MalformedLock(f"{where} must be a mapping")
        return cls(
            *(
                _get(doc, name, int, f"{where}.")
                for name in ("processes", "per_device", "accumulation", "global_batch")
            )
        )


@dataclass(frozen=True)
class GoldenExample:
    """Example 0 in full: its token ids and loss mask ('1' = the token carries loss)."""

    input_ids: list[int]
    loss_mask: str

    def to_dict(self) -> dict[str, Any]:
        return {"input_ids": self.input_ids, "loss_mask": self.loss_mask}


@dataclass(frozen=True)
class Tokenization:
    """Golden tokenization: per-example digests of ids and loss masks, and example 0 in full."""

    examples: int
    input_ids: list[str]
    loss_mask: list[str]
    example_0: GoldenExample

    def to_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            "input_ids": self.input_ids,
            "loss_mask": self.loss_mask,
            "example_0": self.example_0.to_dict(),
        }

    @classmethod
    def parse(cls, doc: Any, where: str) -> Tokenization:
        example = doc.get("example_0") if isinstance(doc, dict) else None
        if (
            not isinstance(doc, dict)
            or not isinstance(doc.get("input_ids"), list)
            or not isinstance(doc.get("loss_mask"), list)
            or not isinstance(doc.get("examples"), int)
            or not isinstance(example, dict)
            or not isinstance(example.get("input_ids"), list)
            or not isinstance(example.get("loss_mask"), str)
        ):
            raise MalformedLock(f"{where} is incomplete")
        golden = GoldenExample(list(example["input_ids"]), example["loss_mask"])
        return cls(doc["examples"], list(doc["input_ids"]), list(doc["loss_mask"]), golden)


@dataclass(frozen=True)
class RecipeLock:
    """The lock entry of one recipe."""

    config_digest: str
    config: dict[str, Any]
    """Training-relevant effective values by dotted key (long values as digests)."""
    batch: dict[int, BatchRow]
    tokenization: Tokenization

    def to_dict(self) -> dict[str, Any]:
        return {
            "config_digest": self.config_digest,
            "config": self.config,
            "batch": {n: row.to_dict() for n, row in self.batch.items()},
            "tokenization": self.tokenization.to_dict(),
        }

    @classmethod
    def parse(cls, doc: Any, where: str) -> RecipeLock:
        if not isinstance(doc, dict) or not set(RECIPE_PARTS) | {"config_digest"} <= set(doc):
            raise MalformedLock(f"{where} needs config_digest, config, batch and tokenization")
        _get(doc, "config_digest", str, f"{where}.")
        _get(doc, "config", dict, f"{where}.")
        _get(doc, "batch", dict, f"{where}.")
        batch = {}
        for n, row in doc["batch"].items():
            try:
                size = int(n)
            except (TypeError, ValueError):
                raise MalformedLock(f"{where}.batch keys must be world sizes, got {n!r}") from None
            batch[size] = BatchRow.parse(row, f"{where}.batch.{n}")
        tokens = Tokenization.parse(doc["tokenization"], f"{where}.tokenization")
        return cls(doc["config_digest"], dict(doc["config"]), batch, tokens)


@dataclass(frozen=True)
class Lock:
    """A parsed or freshly computed lock; `to_dict` is the file's document, key for key."""

    pair: LockPair
    libraries: dict[str, str]
    findings: list[LockedFinding]
    recipes: dict[str, RecipeLock]
    schema_version: int = LOCK_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "pair": self.pair.to_dict(),
            "libraries": self.libraries,
            "findings": [f.to_dict() for f in self.findings],
            "recipes": {side: self.recipes[side].to_dict() for side in SIDES},
        }

    @classmethod
    def parse(cls, doc: Any) -> Lock:
        """The typed lock of a loaded YAML document; anything missing or mistyped is a MalformedLock."""
        if not isinstance(doc, dict):
            raise MalformedLock("expected a mapping")
        if doc.get("schema_version") != LOCK_SCHEMA_VERSION:
            raise MalformedLock(f"schema_version must be {LOCK_SCHEMA_VERSION}")
        pair = LockPair.parse(doc.get("pair"))
        libraries = doc.get("libraries") or {}
        if not isinstance(libraries, dict):
            raise MalformedLock("libraries must be a mapping of package to version")
        if not isinstance(doc.get("findings"), list):
            raise MalformedLock("findings must be a list of {axis, key, a, b}")
        findings = [LockedFinding.parse(f) for f in doc["findings"]]
        recipes = doc.get("recipes")
        if not isinstance(recipes, dict) or set(recipes) != set(SIDES):
            raise MalformedLock("recipes must have entries a and b")
        parsed = {side: RecipeLock.parse(recipes[side], f"recipes.{side}") for side in SIDES}
        return cls(pair, {str(k): str(v) for k, v in libraries.items()}, findings, parsed)


def library_versions() -> dict[str, str]:
    return {name: running_version(name) or "not installed" for name in LIBRARIES}


MISSING = object()
NOT_CAPTURED = "not captured"
"""A golden example a captured recipe's own code never produced (its ids and mask are not guessed)."""
NOT_IN_A_CAPTURE = frozenset({"prompt.user_template", "prompt.instruction", "data.preprocess"})
"""Recipe keys a capture holds only as their effect on the rows (the user messages and completions)."""


def locked_value(m: Materialized, lora: dict[str, Any] | None, key: str) -> Any:
    """The lock's value of one recipe key (MISSING for a LoRA field of a recipe without that field)."""
    if key == "peft.method":
        return m.recipe.peft.method
    if m.captured is not None and key in NOT_IN_A_CAPTURE:
        return NOT_CAPTURED
    if key == "data.split_rule":
        return (
            m.data.split_rule if m.captured is None else captured_split(m.captured, m.raw_keys("test")).rule
        )
    if key.startswith("peft.lora."):
        name = key.removeprefix("peft.lora.")
        return compact(lora[name]) if lora and name in lora else MISSING
    section, name = key.split(".")
    return compact(plain(getattr(getattr(m.recipe, section), name)))


def recipe_lock(m: Materialized, examples: int) -> RecipeLock:
    """The lock entry of one materialized recipe, from its resolved configs and cached launch plans."""
    training = {k: v for k, v in config_values(m.sft_config).items() if k not in CONTEXT_FIELDS}
    lora = config_values(m.lora_config) if m.lora_config is not None else None
    config: dict[str, Any] = {
        f"training.{k}": compact(training[k]) for k in sorted(FIELD_AXIS) if k in training
    }
    for key in LOCK_KEYS:
        value = locked_value(m, lora, key)
        if value is not MISSING:
            config[key] = value
    full = {
        "training": training,
        "lora": lora,
        "recipe": {k: plain(v) for k, v in vars(m.recipe).items() if k != "provenance"},
    }
    batch = {}
    for n in held_world_sizes(TABLE_WORLD_SIZES, (m.recipe,)):
        plan = m.launch_plan(n)
        batch[n] = BatchRow(
            plan.num_processes,
            plan.per_device_train_batch_size,
            plan.gradient_accumulation_steps,
            plan.global_batch,
        )
    shared = m.shared_examples(m.raw.train[:examples])
    ids = [e.input_ids if e.same_row else None for e in shared]
    masks = [
        "".join("1" if label != IGNORE_INDEX else "0" for label in e.labels)
        if e.same_row and e.labels is not None
        else None
        for e in shared
    ]
    tokens = Tokenization(
        examples=len(ids),
        input_ids=[digest(x)[7:] if x is not None else NOT_CAPTURED for x in ids],
        loss_mask=[digest(x)[7:] if x is not None else NOT_CAPTURED for x in masks],
        example_0=GoldenExample(ids[0] or [], masks[0] if masks[0] is not None else NOT_CAPTURED),
    )
    return RecipeLock(digest(full), config, batch, tokens)


def lock_from(pair: LockPair, report: DiffReport, ma: Materialized, mb: Materialized) -> Lock:
    """The lock of a diffed pair: its findings, and each recipe's configs, plans and golden tokenization."""
    findings = [
        LockedFinding(f.axis, f.key, compact(plain(f.a)), compact(plain(f.b))) for f in report.findings
    ]
    recipes = {"a": recipe_lock(ma, pair.examples), "b": recipe_lock(mb, pair.examples)}
    return Lock(pair, library_versions(), findings, recipes)


@contextlib.contextmanager
def working_directory(folder: Path | None) -> Iterator[None]:
    """Resolve a lock's relative paths from `folder` (the lock file's), whatever the current directory."""
    if folder is None:
        yield
        return
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


def relative_to(ref: str, base: Path, data: bool = False) -> str:
    """A recipe reference (YAML path, `capture:DIR`) or data folder given relative to the current directory,
    spelled relative to `base`, the lock file's folder; names, absolute paths and data sources kept."""
    prefix = "capture:" if ref.startswith("capture:") else ""
    body = ref[len(prefix) :]
    if data:
        is_path = not body.startswith("synthetic") and body != "hub"
    else:
        is_path = bool(prefix) or looks_like_path(body)
    if not is_path or not body or os.path.isabs(os.path.expanduser(body)):
        return ref
    return prefix + os.path.relpath(os.path.abspath(body), os.path.abspath(base))


def compute_lock(pair: LockPair, base: Path | None = None) -> tuple[Lock, dict[str, Materialized]]:
    """Materialize and diff the pair (its relative paths resolved from `base`, the lock's folder); the lock and
    both materialized recipes (their tokenizers explain diffs)."""
    if pair.examples < 1:
        raise ParityError(f"--examples must be at least 1, got {pair.examples}")
    with working_directory(base):
        recipe_a, recipe_b = resolve_recipe(pair.a, pair.set_a), resolve_recipe(pair.b, pair.set_b)
        ma, mb = materialize_pair(
            recipe_a, recipe_b, pair.data, pair.world_size, samples=max(64, pair.examples)
        )
        report = diff_materialized(ma, mb, context=ProbeContext(world_sizes=TABLE_WORLD_SIZES))
    return lock_from(pair, report, ma, mb), {"a": ma, "b": mb}


def build_lock(
    a_ref: str,
    b_ref: str,
    data: str | None = None,
    world_size: int = 1,
    examples: int = DEFAULT_EXAMPLES,
    set_a: list[str] | None = None,
    set_b: list[str] | None = None,
    base: Path | None = None,
) -> Lock:
    """Compute the lock for a recipe pair; with `base` (the lock file's folder), recipe and data paths given
    relative to the current directory are stored relative to it, so `check` works from any directory. Without
    `data`: two captured recipes are locked on A's captured rows, any other pair on DEFAULT_DATA."""
    if data is None:
        both_captured = all(
            captured_directory(resolve_recipe(ref, list(sets or []))) is not None
            for ref, sets in ((a_ref, set_a), (b_ref, set_b))
        )
        data = CAPTURED_ROWS if both_captured else DEFAULT_DATA
    if base is not None:
        a_ref, b_ref = relative_to(a_ref, base), relative_to(b_ref, base)
        data = data if data == CAPTURED_ROWS else relative_to(data, base, True)
    pair = LockPair(a_ref, b_ref, list(set_a or []), list(set_b or []), data, world_size, examples)
    return compute_lock(pair, base)[0]


def dump_lock(lock: Lock) -> str:
    return HEADER + yaml.safe_dump(
        lock.to_dict(), sort_keys=False, allow_unicode=True, width=100000, default_flow_style=None
    )


def write_lock(lock: Lock, path: Path) -> None:
    write_text_atomic(Path(path), dump_lock(lock))


def read_lock(path: Path) -> Lock:
    """Load and parse a lock; any problem is one ParityError line."""
    path = Path(path)
    if not path.is_file():
        raise ParityError(f"lock file not found: {path}")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ParityError(f"{path}: not a valid lock (malformed YAML)") from None
    try:
        return Lock.parse(doc)
    except MalformedLock as problem:
        raise ParityError(f"{path}: not a valid lock ({problem}); regenerate it with `parity lock`") from None


@dataclass(frozen=True)
class LockDifference:
    """One way the recomputed state differs from the lock."""

    entry: str
    """Which lock entry: 'findings', 'a.config', 'b.batch', 'a.tokenization', 'libraries'."""
    message: str
    detail: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    """The lock keys that differ (e.g. 'a.config.training.learning_rate', 'libraries.trl')."""


@dataclass(frozen=True)
class CheckResult:
    """A lock, the state recomputed for its pair, and every difference between them."""

    lock: Lock
    current: Lock
    differences: list[LockDifference]

    @property
    def ok(self) -> bool:
        return not self.differences

    def entries(self) -> list[str]:
        """Every checkable entry name (one pytest item each)."""
        return list(ENTRIES)

    def differences_for(self, entry: str) -> list[LockDifference]:
        return [d for d in self.differences if d.entry == entry]

    def changed_keys(self) -> list[str]:
        """Every lock key that differs, in check order."""
        return [key for d in self.differences for key in d.keys]


def compare_findings(locked: list[LockedFinding], current: list[LockedFinding]) -> list[LockDifference]:
    old = {f.name: f for f in locked}
    new = {f.name: f for f in current}
    out = []
    for key in sorted(new.keys() - old.keys()):
        f = new[key]
        out.append(
            LockDifference(
                "findings", f"new finding {key[0]} {key[1]}: a={f.a!r} b={f.b!r}", keys=[f"findings.{key[1]}"]
            )
        )
    for key in sorted(old.keys() - new.keys()):
        f = old[key]
        out.append(
            LockDifference(
                "findings",
                f"vanished finding {key[0]} {key[1]} (was a={f.a!r} b={f.b!r})",
                keys=[f"findings.{key[1]}"],
            )
        )
    for key in sorted(old.keys() & new.keys()):
        for side in SIDES:
            was, now = old[key].value(side), new[key].value(side)
            if was != now:
                out.append(
                    LockDifference(
                        "findings",
                        f"changed finding {key[0]} {key[1]}: {side} was {was!r}, now {now!r}",
                        keys=[f"findings.{key[1]}.{side}"],
                    )
                )
    return out


def compare_config(side: str, name: str, locked: RecipeLock, current: RecipeLock) -> list[LockDifference]:
    """Every recorded config value, then the digest of the whole effective config."""
    changed = sorted(
        key
        for key in set(locked.config) | set(current.config)
        if locked.config.get(key, MISSING) != current.config.get(key, MISSING)
    )
    if changed:
        lines = [f"{key}: was {locked.config.get(key)!r}, now {current.config.get(key)!r}" for key in changed]
        message = f"effective config of recipe {name} changed ({len(changed)} training-relevant value(s))"
        return [LockDifference(f"{side}.config", message, lines, [f"{side}.config.{k}" for k in changed])]
    if locked.config_digest != current.config_digest:
        message = f"effective config of recipe {name} changed (a run-management value; digest differs)"
        detail = [
            f"config_digest: was {locked.config_digest}, now {current.config_digest}",
            "it covers every trl.SFTConfig and peft.LoraConfig field and every recipe section; the keys "
            "behind it that the lock does not record one by one are the run-management training fields "
            "(logging, saving, hub, reporting), LoRA fields outside the recorded ones and the recipe's "
            "model, tokenizer, launch, eval, env and upstream sections",
        ]
        return [LockDifference(f"{side}.config", message, detail, [f"{side}.config_digest"])]
    return []


def compare_batch(side: str, name: str, locked: RecipeLock, current: RecipeLock) -> list[LockDifference]:
    out = []
    for n in sorted(set(locked.batch) | set(current.batch)):
        old, new = locked.batch.get(n), current.batch.get(n)
        if old != new:
            was = old.to_dict() if old else None
            now = new.to_dict() if new else None
            out.append(
                LockDifference(
                    f"{side}.batch",
                    f"effective batch of recipe {name} at world size {n} changed: was {was}, now {now}",
                    keys=[f"{side}.batch.{n}"],
                )
            )
    return out


def compare_tokenization(
    side: str, name: str, old: Tokenization, new: Tokenization, tokenizer: Any | None
) -> list[LockDifference]:
    """Per-example digests of ids and loss masks, and golden example 0 value by value."""
    out = []
    golden = old.example_0 != new.example_0
    for i, (old_ids, new_ids, old_mask, new_mask) in enumerate(
        zip(old.input_ids, new.input_ids, old.loss_mask, new.loss_mask, strict=False)
    ):
        what = [
            w
            for w, changed in (("input_ids", old_ids != new_ids), ("loss mask", old_mask != new_mask))
            if changed
        ]
        keys = [
            f"{side}.tokenization.{k}[{i}]"
            for k, w in (("input_ids", "input_ids"), ("loss_mask", "loss mask"))
            if w in what
        ]
        if i == 0 and golden:
            edited = [
                f"example_0.{part}"
                for part in ("input_ids", "loss_mask")
                if getattr(old.example_0, part) != getattr(new.example_0, part)
            ]
            what = what or edited
            keys += [f"{side}.tokenization.{k}" for k in edited]
        if what:
            detail = token_diff(old.example_0.to_dict(), new.example_0.to_dict(), tokenizer) if i == 0 else []
            out.append(
                LockDifference(
                    f"{side}.tokenization",
                    f"tokenization of recipe {name} changed at example {i}: {' and '.join(what)}",
                    detail,
                    keys,
                )
            )
    if old.examples != new.examples:
        out.append(
            LockDifference(
                f"{side}.tokenization",
                f"number of golden examples changed: {old.examples} -> {new.examples}",
                keys=[f"{side}.tokenization.examples"],
            )
        )
    return out


def compare_libraries(locked: dict[str, str], current: dict[str, str]) -> list[LockDifference]:
    changed = {
        k: f"{locked.get(k)} -> {current.get(k)}"
        for k in [*current, *(k for k in locked if k not in current)]
        if locked.get(k) != current.get(k)
    }
    if not changed:
        return []
    return [
        LockDifference(
            "libraries",
            f"library versions changed since the lock: {changed}",
            keys=[f"libraries.{k}" for k in changed],
        )
    ]


def compare_locks(lock: Lock, current: Lock, tokenizers: dict[str, Any]) -> list[LockDifference]:
    """Every difference between a lock and the recomputed one, entry by entry (ENTRIES order)."""
    differences = compare_findings(lock.findings, current.findings)
    for side in SIDES:
        name, old, new = lock.pair.ref(side), lock.recipes[side], current.recipes[side]
        differences += compare_config(side, name, old, new)
        differences += compare_batch(side, name, old, new)
        differences += compare_tokenization(
            side, name, old.tokenization, new.tokenization, tokenizers.get(side)
        )
    return differences + compare_libraries(lock.libraries, current.libraries)


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


def update_lock(path: Path) -> None:
    """Rewrite a lock with the current state of its pair (accepting every change)."""
    write_lock(compute_lock(read_lock(path).pair, Path(path).parent)[0], path)


def check_lock(path: Path) -> CheckResult:
    """Recompute the pair named in the lock and compare every recorded value."""
    lock = read_lock(path)
    current, materialized = compute_lock(lock.pair, Path(path).parent)
    tokenizers = {side: m.tokenizer for side, m in materialized.items()}
    return CheckResult(lock, current, compare_locks(lock, current, tokenizers))


def format_check(result: CheckResult, path: Path) -> str:
    """The check's outcome as text (the CLI prints it)."""
    if result.ok:
        pair = result.lock.pair
        return f"parity check: {path} matches ({pair.a} vs {pair.b}, {len(result.lock.findings)} accepted findings)"
    lines = [f"parity check: {path} does not match ({len(result.differences)} difference(s)):"]
    for d in result.differences:
        lines.append(f"  - [{d.entry}] {d.message}")
        lines += [f"      {line}" for line in d.detail]
    lines.append(
        "If the change is intended, accept it with `parity check --lock " + str(path) + " --update`."
    )
    return "\n".join(lines)
