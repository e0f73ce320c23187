"""Data-order probe: the order in which training sees its rows, drawn through the HF Trainer's own sampler
(`Trainer._get_train_sampler` with the recipe's SFTConfig) and accelerate's dataloader preparation (the seedable
sampler seeded by `data_seed`, else by the seed the Trainer gives torch), over the tokenized sample."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from parity.axes import field_severity, probe_fields
from parity.findings import Finding
from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.probes.env import installed_instead

make_finding = FindingMaker("data_order")
FIRST_BATCHES = 4
"""Per-device batches of process 0 recorded per recipe."""
SEED_FIELDS = ("seed", "data_seed", "full_determinism")
"""SFTConfig fields of the `seed` align axis that decide the draw."""


def first_batches(m: Materialized, batches: int = FIRST_BATCHES) -> dict[str, Any]:
    """Row indices (into the tokenized sample) of the first per-device batches of process 0, and the sampler.
    The sampler sees the sample's token lengths in the SFTConfig's length column (what group_by_length sorts by).

    The Trainer seeds torch with `args.seed` when it is built; accelerate replaces a RandomSampler by its
    SeedableRandomSampler seeded with `data_seed` (or torch's initial seed) when `use_seedable_sampler` is on."""
    import datasets
    import torch
    from accelerate.data_loader import prepare_data_loader
    from transformers import Trainer

    config = m.sft_config
    lengths = list(map(len, m.prepared.input_ids))
    dataset = datasets.Dataset.from_dict({config.length_column_name: lengths})
    trainer = SimpleNamespace(args=config, train_dataset=dataset, processing_class=m.tokenizer)
    sampler = Trainer._get_train_sampler(trainer, dataset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        loader = torch.utils.data.DataLoader(
            range(len(dataset)),
            batch_size=m.launch.per_device_train_batch_size,
            sampler=sampler,
            drop_last=config.dataloader_drop_last,
        )
        prepared = prepare_data_loader(
            loader,
            num_processes=m.launch.num_processes,
            process_index=0,
            put_on_device=False,
            use_seedable_sampler=config.accelerator_config.use_seedable_sampler,
            data_seed=config.data_seed,
        )
        drawn = [batch.tolist() for _, batch in zip(range(batches), prepared, strict=False)]
        inner = _inner_sampler(prepared)
    return {
        "sampler": type(sampler).__name__,
        "prepared_sampler": type(inner).__name__ if inner is not None else None,
        "rows": len(dataset),
        "batches": drawn,
    }


def _inner_sampler(loader: Any) -> Any:
    batch_sampler = getattr(loader, "batch_sampler", None)
    inner = getattr(batch_sampler, "batch_sampler", batch_sampler)
    return getattr(inner, "sampler", None)


def pre_shuffles(m: Materialized) -> list[dict[str, Any]]:
    """`Dataset.shuffle` calls a captured recipe's own code made before its trainer was built (seed, rows, who
    asked; the capture's manifest), which fix the order the trainer's sampler starts from; none for other recipes."""
    if m.captured is None:
        return []
    return [
        {"seed": s.get("seed"), "rows": s.get("rows"), "asked_by": s.get("asked_by")}
        for s in m.captured.captured.manifest.get("shuffles", [])
    ]


def as_loaded(m: Materialized, batches: list[list[int]]) -> list[list[int | None]]:
    """The drawn rows as positions among the rows the recipe loaded: a pre-tokenized capture's trainer rows are
    paired with its loaded rows (a shuffle before the trainer moves them); other recipes' rows are in that order."""
    pairing = m.captured.token_rows if m.captured is not None else None
    positions = pairing.loaded_positions(len(m.prepared)) if pairing is not None else None
    if positions is None:
        return [list(batch) for batch in batches]
    return [[positions[i] for i in batch] for batch in batches]


@measurement("data_order")
def measure(m: Materialized) -> dict[str, Any]:
    """Sampler fields, seeds, shuffles before the trainer and the first batches drawn."""
    config = m.sft_config
    drawn = first_batches(m)
    return {
        "fields": {name: plain(getattr(config, name)) for name in probe_fields("data_order")},
        "seeds": {name: plain(getattr(config, name)) for name in SEED_FIELDS},
        "use_seedable_sampler": bool(config.accelerator_config.use_seedable_sampler),
        "per_device": m.launch.per_device_train_batch_size,
        "shuffle_dataset": plain(getattr(config, "shuffle_dataset", None)),
        "pre_shuffles": pre_shuffles(m),
        **drawn,
        "loaded_rows_drawn": as_loaded(m, drawn["batches"]),
        "drawn_by": installed_instead(m, "transformers"),
    }


def _flat(v: dict) -> list[int | None]:
    """The first rows drawn, as positions among the rows each recipe loaded."""
    return [i for batch in v.get("loaded_rows_drawn", v["batches"]) for i in batch]


def _order_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    """The first rows drawn differ (compared as one sequence, so a batch-size difference alone does not count)."""
    n = min(len(_flat(va)), len(_flat(vb)))
    first_a, first_b = _flat(va)[:n], _flat(vb)[:n]
    if va["rows"] != vb["rows"] or first_a == first_b:
        return None
    sampler_differs = va["fields"] != vb["fields"] or va["sampler"] != vb["sampler"]
    seeds_differ = [name for name in SEED_FIELDS if va["seeds"][name] != vb["seeds"][name]]
    same = sum(1 for x, y in zip(first_a, first_b, strict=True) if x == y)
    shuffled = (
        f"; shuffled before the trainer: {_shuffles_text(va)} vs {_shuffles_text(vb)}"
        if va["pre_shuffles"] != vb["pre_shuffles"]
        else ""
    )
    return make_finding(
        "data_order.first_batches",
        "medium" if sampler_differs else "low",
        first_a[: va["per_device"]],
        first_b[: vb["per_device"]],
        f"the first {n} rows drawn differ ({same} of {n} at the same position, rows counted as loaded): "
        f"{a.recipe.name} draws with {va['sampler']} seed={va['seeds']['seed']} data_seed="
        f"{va['seeds']['data_seed']}, {b.recipe.name} with {vb['sampler']} seed={vb['seeds']['seed']} data_seed="
        f"{vb['seeds']['data_seed']}{shuffled}"
        + "".join(
            f"; {r.recipe.name}'s sampler built by {v['drawn_by']}"
            for r, v in ((a, va), (b, vb))
            if v.get("drawn_by")
        ),
        {
            "rows": va["rows"],
            "a_batches": va["batches"],
            "b_batches": vb["batches"],
            "a_loaded_rows_drawn": va["loaded_rows_drawn"],
            "b_loaded_rows_drawn": vb["loaded_rows_drawn"],
            "pre_shuffles": {"a": va["pre_shuffles"], "b": vb["pre_shuffles"]},
            "seed_fields_differing": seeds_differ,
            "sampler": [va["sampler"], vb["sampler"]],
            "prepared_sampler": [va["prepared_sampler"], vb["prepared_sampler"]],
        },
        align="data_order" if sampler_differs else "seed",
    )


def _shuffles_text(v: dict) -> str:
    if not v["pre_shuffles"]:
        return "none"
    return ", ".join(
        f"shuffle(seed={s['seed']}) of {s['rows']} rows by {str(s['asked_by']).split(' ')[0]}"
        for s in v["pre_shuffles"]
    )


def _shuffle_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    """The recipes' own code shuffles its dataset before the trainer differently (a capture's recorded
    `Dataset.shuffle` calls): the sampler then draws from rows in another order."""
    if va["pre_shuffles"] == vb["pre_shuffles"]:
        return None
    return make_finding(
        "data_order.pre_shuffle",
        "low",
        _shuffles_text(va),
        _shuffles_text(vb),
        f"dataset shuffled before the trainer's sampler: {a.recipe.name} {_shuffles_text(va)}, {b.recipe.name} "
        f"{_shuffles_text(vb)} (the trainer's rows are in another order than loaded)",
        {"a": va["pre_shuffles"], "b": vb["pre_shuffles"]},
        align=None,  # the recipe's own code shuffles: no spec key aligns it
    )


@PROBES.register("data_order")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Sampler field differences and the first batches each recipe's Trainer would draw."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    findings = [
        make_finding(
            f"training.{name}",
            field_severity(name),
            va["fields"][name],
            vb["fields"][name],
            f"{name}: {a.recipe.name} {va['fields'][name]!r} vs {b.recipe.name} {vb['fields'][name]!r} "
            f"(Trainer sampler {va['sampler']} vs {vb['sampler']})",
        )
        for name in va["fields"]
        if va["fields"][name] != vb["fields"][name]
    ]
    for finding in (_shuffle_finding(a, b, va, vb), _order_finding(a, b, va, vb)):
        if finding is not None:
            findings.append(finding)
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
