"""summary.json of a matched run: alignment, remaining findings, per-leg curves and metrics, gap and verdict.

Built from the legs' JSONL logs and result files, so a resumed run summarizes exactly like an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from parity.align import AlignedPair
from parity.axes import ALIGN_AXES, DESCRIPTIVE_KEYS
from parity.materialize import Materialized
from parity.run.evaluate import cross_matrix
from parity.run.options import RunOptions, cuda_available
from parity.run.preflight import Preflight
from parity.run.report import SCHEMA_VERSION, loss_gap, verdict
from parity.run.train import read_evals, read_steps

LEGS = ("a", "b")


def same_recipe(a: Materialized, b: Materialized) -> bool:
    """True when the two recipes resolve to the same effective values (pins and descriptions aside)."""
    from parity.effective import effective_values

    def values(m: Materialized) -> dict[str, Any]:
        resolved = effective_values(m.resolved)
        return {
            k: v["value"]
            for k, v in resolved.items()
            if not k.startswith("env.") and k not in DESCRIPTIVE_KEYS
        }

    return values(a) == values(b)


def build_summary(
    run_dir: Path,
    pair: AlignedPair,
    check: Preflight,
    materialized: dict[str, Materialized],
    results: dict[str, dict[str, Any]],
    opts: RunOptions,
) -> dict[str, Any]:
    """summary.json: alignment, remaining findings, per-leg curves and metrics, loss gap and verdict."""
    steps = {leg: read_steps(run_dir, leg) for leg in LEGS}
    gap = loss_gap(steps["a"], steps["b"])
    all_aligned = set(opts.align) == set(ALIGN_AXES)
    same = same_recipe(materialized["a"], materialized["b"])
    recipes = {leg: materialized[leg].recipe for leg in LEGS}
    generations = {leg: results[leg]["generations"] for leg in LEGS if results[leg]["generations"]}
    overrides = {leg: results[leg]["context_overrides"] for leg in LEGS}
    common = {k: v for k, v in overrides["a"].items() if overrides["b"].get(k) == v}
    notes = sorted({n for leg in LEGS for n in results[leg]["notes"]})
    return {
        "schema_version": SCHEMA_VERSION,
        "a": recipes["a"].name,
        "b": recipes["b"].name,
        "aligned": opts.align,
        "to": opts.to,
        "overrides": {"a": pair.overrides_a, "b": pair.overrides_b},
        "preflight": {
            "failed": len(check.failed),
            "forced": bool(check.failed and opts.force),
            "remaining": len(check.remaining),
        },
        "remaining_findings": [f.to_dict() for f in check.remaining],
        "context": {
            "data": materialized["a"].raw.source,
            "world_size": opts.world_size,
            "model": opts.model,
            "seed": opts.seed,
            "device": "cuda" if cuda_available() else "cpu",
            "max_steps": opts.max_steps,
            "epochs": opts.epochs,
            "samples": opts.samples,
            "eval_rows": opts.eval_rows,
            "eval_samples": opts.eval_samples,
            "max_new_tokens": opts.max_new_tokens,
        },
        "context_overrides": {
            "sft_config": common,
            "a": {k: v for k, v in overrides["a"].items() if k not in common},
            "b": {k: v for k, v in overrides["b"].items() if k not in common},
            "notes": notes,
        },
        "runs": {leg: _run_entry(steps[leg], read_evals(run_dir, leg), results[leg]) for leg in LEGS},
        **gap,
        "same_recipe": same,
        "verdict": verdict(gap["max_abs_loss_gap"], all_aligned, same),
        "generation": cross_matrix(generations, recipes) if generations else {},
    }


def merge_evals(records: list[dict]) -> list[dict]:
    """One record per eval step with every eval set's loss ({'step': 4, 'loss': {'own': .., 'shared': ..}})."""
    merged: dict[int, dict[str, float]] = {}
    for record in records:
        merged.setdefault(record["step"], {}).update(record["loss"])
    return [{"step": step, "loss": losses} for step, losses in sorted(merged.items())]


def _run_entry(steps: list[dict], evals: list[dict], result: dict[str, Any]) -> dict[str, Any]:
    final = result["final_eval_loss"]
    return {
        "recipe": result["recipe"],
        "steps": result["global_step"],
        "curve_steps": [r["step"] for r in steps],
        "loss_curve": [r.get("loss") for r in steps],
        "lr_curve": [r.get("learning_rate") for r in steps],
        "grad_norm_curve": [r.get("grad_norm") for r in steps],
        "tokens_per_step": [r.get("tokens") for r in steps],
        "tokens_seen": steps[-1]["tokens_seen"] if steps else 0,
        "final_train_loss": steps[-1].get("loss") if steps else None,
        "final_eval_loss": final.get("own"),
        "final_shared_eval_loss": final.get("shared"),
        "evals": merge_evals(evals),
        "batch": result["batch"],
        "train_rows": result["train_rows"],
        "eval_rows": result["eval_rows"],
        "resumed_from": result["resumed_from"],
        "train_seconds": result["train_seconds"],
        "steps_per_second": result["steps_per_second"],
        "throughput": result.get("throughput"),
        "notes": result["notes"],
    }
