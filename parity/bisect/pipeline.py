"""`bisect_pair`: diff the pair, train legs with subsets of the differing axes aligned, attribute the gap.

The gap is metric(A) - metric(B); aligning axes on A (to B) and retraining A measures what each axis explains.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parity.align import align
from parity.axes import parse_align_axes
from parity.bisect.designs import DESIGNS, NONE, DesignResult, run_design
from parity.bisect.runs import METRICS, LegRun, RunCache, ordered
from parity.bisect.stats import Noise, interaction, interval, paired_noise, share, within
from parity.errors import ParityError
from parity.models import shared_weights_note
from parity.run.files import write_json_atomic
from parity.run.model import RANDOM_ARCHITECTURES
from parity.run.options import RunOptions, cuda_available

log = logging.getLogger("parity")

SCHEMA_VERSION = 1
DEFAULT_SEEDS = 3
DEFAULT_DESIGN = "adaptive"
DEFAULT_MAX_STEPS = 8
PROXY_MICRO_BATCH = 16
"""CPU micro-batch with the proxy (its logits are small); accumulation keeps every recipe's global batch."""
RANDOM_MODELS = ("proxy", "tiny")
"""--model values that train from random weights: their greedy answers are noise, whatever the recipe."""


@dataclass
class BisectResult:
    """attribution.json's content, the runs behind it and where the bisect directory is."""

    out: Path
    attribution: dict[str, Any]
    runs: list[LegRun]
    trained: int = 0
    """Legs trained by this call (the others came from the cache in the directory)."""

    def __getitem__(self, key: str) -> Any:
        return self.attribution[key]


def differing_axes(findings: Iterable[Any]) -> list[str]:
    """Align axes of the pair's findings (info-only findings change nothing trained)."""
    return ordered({f.align for f in findings if f.align and f.severity != "info"})


def default_out(a: str, b: str) -> Path:
    from parity.run.pipeline import safe_name

    return Path("reports") / f"bisect-{safe_name(a)}-vs-{safe_name(b)}"


def bisect_pair(
    a_ref: str,
    b_ref: str,
    *,
    axes: str | list[str] | None = None,
    metric: str = "eval_loss",
    seeds: int = DEFAULT_SEEDS,
    design: str = DEFAULT_DESIGN,
    out: str | Path | None = None,
    set_a: Iterable[str] = (),
    set_b: Iterable[str] = (),
    on_leg: Callable[[str], None] | None = None,
    **options: Any,
) -> BisectResult:
    """Attribute the outcome gap between A and B to the differing axes; options are RunOptions fields."""
    if metric not in METRICS:
        raise ParityError(f"--metric must be one of {', '.join(METRICS)}, got '{metric}'")
    if design not in DESIGNS:
        raise ParityError(f"--design must be one of {', '.join(DESIGNS)}, got '{design}'")
    if seeds < 1:
        raise ParityError(f"--seeds must be at least 1, got {seeds}")
    names = {f.name for f in dataclasses.fields(RunOptions)} - {"align", "to", "set_a", "set_b", "out"}
    unknown = sorted(set(options) - names)
    if unknown:
        raise TypeError(f"bisect_pair() got unknown options: {', '.join(unknown)}")
    options["model"] = options.get("model") or "proxy"
    if options.get("max_steps") is None and options.get("epochs") is None:
        options["max_steps"] = DEFAULT_MAX_STEPS
    if options["model"] == "proxy" and options.get("micro_batch") is None and not cuda_available():
        options["micro_batch"] = PROXY_MICRO_BATCH
    opts = RunOptions(**options).resolved()
    if metric == "accuracy" and not opts.eval_samples:
        raise ParityError("--metric accuracy needs --eval-samples > 0 (held-out questions answered greedily)")
    warning = random_accuracy_warning(metric, opts)
    if warning:
        log.warning(warning)
    set_a, set_b = list(set_a), list(set_b)
    out_dir = Path(out) if out is not None else default_out(a_ref, b_ref)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = _axes(a_ref, b_ref, axes, opts, set_a, set_b, out_dir)
    cache = RunCache(a_ref, b_ref, opts, out_dir, set_a, set_b)
    warnings = [warning] if warning else []
    if "model" in chosen:
        note = shared_weights_note(*cache.recipes(0), str(opts.model))
        if note:
            log.warning(note)
            warnings.append(note)
    cache.on_leg = on_leg
    cache.prepare_model([NONE, frozenset(chosen)])
    noise, baseline = _noise(cache, metric, seeds)

    def measure(aligned: frozenset[str]) -> float:
        return _value(cache.leg("a", aligned, 0), metric)

    result = run_design(design, chosen, measure, noise.halfwidth())
    if design != "leave-one-out" and chosen:
        measure(frozenset(chosen))
    attribution = build_attribution(cache, result, noise, baseline, metric, chosen)
    attribution["warnings"] = warnings
    runs = [cache.leg("b", NONE, k) for k in range(seeds)]
    runs += [cache.leg("a", aligned, 0) for aligned in result.measured]
    runs += [cache.leg("a", NONE, k) for k in range(1, seeds)]
    from parity.bisect.report import write_reports

    write_reports(out_dir, attribution, runs)
    return BisectResult(out_dir, attribution, runs, cache.trained)


def random_accuracy_warning(metric: str, opts: RunOptions) -> str | None:
    """One line when accuracy is asked of a random-weight model (nothing it generates can be right but by chance)."""
    if metric != "accuracy" or not (opts.model in RANDOM_MODELS or str(opts.model) in RANDOM_ARCHITECTURES):
        return None
    return (
        f"--metric accuracy with --model {opts.model}: a random-weight model's greedy answers are noise, so "
        "accuracy only measures the eval protocol (prompt, extractor); use a pretrained --model, or eval_loss"
    )


def metric_definition(metric: str, opts: RunOptions) -> str:
    """What the metric's numbers are, in one sentence (report and terminal say it)."""
    if metric == "eval_loss":
        return (
            f"eval_loss: final loss on the first {opts.eval_rows} rows of the shared held-out split, the same "
            "rows for every leg (lower is better)"
        )
    return (
        f"accuracy: k/n of the first {opts.eval_samples} held-out questions answered correctly by greedy "
        f"generation (up to {opts.max_new_tokens} new tokens) from each leg's own eval prompt, read by that "
        "leg's own answer extractor (strict mode, else flexible; an aligned eval axis uses B's)"
    )


def _axes(
    a_ref: str,
    b_ref: str,
    axes: str | list[str] | None,
    opts: RunOptions,
    set_a: list[str],
    set_b: list[str],
    out: Path,
) -> list[str]:
    """The differing axes to attribute: all the diff finds, or the chosen ones (each must differ)."""
    from parity.diff import run_diff

    report = run_diff(a_ref, b_ref, opts.data, opts.world_size, set_a=set_a, set_b=set_b)
    write_json_atomic(out / "diff.json", report.to_dict())
    differing = differing_axes(report.findings)
    if axes is None:
        return differing
    chosen = parse_align_axes(axes)
    for axis in chosen:
        if axis not in differing:
            found = ", ".join(differing) or "none"
            raise ParityError(f"--axes: {axis} does not differ between the recipes (differing: {found})")
    return chosen


def _value(run: LegRun, metric: str) -> float:
    value = run.metrics.get(metric)
    if value is None:
        raise ParityError(
            f"--metric {metric}: leg {run.key} has no value (eval_loss needs a test split; "
            "accuracy needs --eval-samples > 0)"
        )
    return float(value)


def _noise(cache: RunCache, metric: str, seeds: int) -> tuple[Noise, dict[str, list[float]]]:
    """The unaligned pair repeated over data-order seeds 0..K-1 (model init shared)."""
    values: dict[str, list[float]] = {"a": [], "b": []}
    for seed in range(seeds):
        values["b"].append(_value(cache.leg("b", NONE, seed), metric))
        values["a"].append(_value(cache.leg("a", NONE, seed), metric))
    return paired_noise(values), values


def axis_keys(cache: RunCache, axis: str) -> list[str]:
    """The spec keys aligning this one axis changes on A."""
    recipe_a, recipe_b = cache.recipes(0)
    return sorted(align(recipe_a, recipe_b, [axis], "b").applied_a)


def run_entry(
    cache: RunCache, side: str, aligned: frozenset[str], seed: int, value: float, metric: str
) -> dict[str, Any]:
    """One run of attribution.json; accuracy runs also carry k (`correct`) and n of their fraction."""
    entry = {
        "key": cache.key(side, aligned, seed),
        "leg": side,
        "aligned": ordered(aligned),
        "seed": seed,
        "value": value,
    }
    if metric == "accuracy":
        metrics = cache.leg(side, aligned, seed).metrics
        entry.update(correct=metrics.get("accuracy_correct"), n=metrics.get("accuracy_n"))
    return entry


def build_attribution(
    cache: RunCache,
    result: DesignResult,
    noise: Noise,
    baseline: dict[str, list[float]],
    metric: str,
    axes: list[str],
) -> dict[str, Any]:
    """attribution.json: schema_version, metric, total_gap, noise, design, runs, axes."""
    b_value = baseline["b"][0]
    base = result.measured[NONE]
    gap = base - b_value
    diff_halfwidth = noise.halfwidth()
    everything = frozenset(axes)
    full = result.measured.get(everything, base)
    groups: dict[tuple[str, ...], float] = {}
    for effect in result.effects.values():
        groups.setdefault(effect.group, effect.effect)
    rows = []
    for axis in axes:
        effect = result.effects[axis]
        rows.append(
            {
                "name": axis,
                "keys": axis_keys(cache, axis),
                "effect": effect.effect,
                "interval": interval(effect.effect, diff_halfwidth),
                "share": share(effect.effect, gap),
                "rank": None,
                "indistinguishable_from_zero": within(effect.effect, diff_halfwidth),
                "measured_as": list(effect.group),
                "runs": [cache.key("a", effect.with_set, 0), cache.key("a", effect.against, 0)],
            }
        )
    order = sorted(rows, key=lambda r: (len(r["measured_as"]) > 1, -abs(r["effect"]), axes.index(r["name"])))
    for rank, row in enumerate(order, 1):
        row["rank"] = rank
    seed_gaps = [a - b for a, b in zip(baseline["a"], baseline["b"], strict=True)]
    return {
        "schema_version": SCHEMA_VERSION,
        "metric": metric,
        "metric_definition": metric_definition(metric, cache.opts),
        "total_gap": {
            "a": cache.recipes(0)[0].name,
            "b": cache.recipes(0)[1].name,
            "value": gap,
            "interval": interval(gap, diff_halfwidth),
            "within_noise": within(gap, diff_halfwidth),
            "a_value": base,
            "b_value": b_value,
            "per_seed": seed_gaps,
            "residual_all_aligned": full - b_value,
            "interaction": interaction(base - full, list(groups.values()), noise) if axes else None,
        },
        "noise": noise.to_dict(),
        "design": result.design,
        "runs": [
            run_entry(cache, "a", aligned, 0, value, metric) for aligned, value in result.measured.items()
        ]
        + [
            run_entry(cache, leg, NONE, seed, value, metric)
            for leg in ("a", "b")
            for seed, value in enumerate(baseline[leg])
            if not (leg == "a" and seed == 0)
        ],
        "axes": order,
    }
