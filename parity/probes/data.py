"""Probe `data`: what rows each recipe trains and selects checkpoints on, and how it preprocesses them.
Measures row counts, content hashes, preprocessing effects, eval/test overlap (rows by identity) and the token share
of the task's annotation spans (GSM8K: calculator annotations)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import Any

from parity.capture.data_requests import data_requests
from parity.capture.examples import captured_split
from parity.data.conversation import completion_text, user_text
from parity.data.pipeline import preprocess_rows
from parity.data.sources import rows_digest
from parity.fast_tokenize import direct_backend, encode_texts
from parity.findings import Finding
from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.textdiff import pair_names

AXIS = "data"
make_finding = FindingMaker(AXIS)
PREPROCESS_NOT_CAPTURED = "not captured (a capture holds the rows after the recipe's own preprocessing)"
SEED_NOT_CAPTURED = "not captured (one capture cannot tell whether the recipe's split is seeded)"
NOT_CAPTURED = "not captured"


def annotation_tokens(m: Materialized, answers: list[str]) -> dict[str, Any] | None:
    """Tokens of the recipe's tokenizer that fall inside the task's annotation spans of the answers (GSM8K: <<...>>
    calculator annotations), and all answer tokens; None when the recipe's task has no annotation."""
    pattern = m.task.annotation_regex if m.task is not None else None
    if pattern is None:
        return None
    if not answers:
        return {"rows": 0, "annotation_tokens": 0, "completion_tokens": 0, "annotation_token_share": 0.0}
    spans = [[match.span() for match in pattern.finditer(answer)] for answer in answers]
    annotated = [i for i, row_spans in enumerate(spans) if row_spans]
    plain_answers = [answer for answer, row_spans in zip(answers, spans, strict=True) if not row_spans]
    total = sum(map(len, encode_texts(m.tokenizer, plain_answers)))  # offsets are needed only where spans are
    inside = 0
    for i, offsets in zip(
        annotated, token_offsets(m.tokenizer, [answers[i] for i in annotated]), strict=True
    ):
        total += len(offsets)
        inside += tokens_overlapping(offsets, spans[i])
    return {
        "rows": len(answers),
        "annotation_tokens": inside,
        "completion_tokens": total,
        "annotation_token_share": round(inside / total, 6) if total else 0.0,
    }


def token_offsets(tokenizer: Any, texts: list[str]) -> list[list[tuple[int, int]]]:
    """Character offsets of each text's tokens (no special tokens), through the Rust batch encoder when the
    tokenizer has one (the offsets `tokenizer(..., return_offsets_mapping=True)` reports, without its wrapping)."""
    if not texts:
        return []
    backend = direct_backend(tokenizer)
    if backend is not None:
        return [encoding.offsets for encoding in backend.encode_batch(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]


def tokens_overlapping(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> int:
    """How many tokens overlap at least one of the sorted, disjoint character spans (token offsets are sorted,
    so each span's tokens are one index range, found by bisection; ranges shared by two spans count once)."""
    count = reached = 0
    for span_start, span_end in spans:
        first = max(bisect_right(offsets, span_start, key=itemgetter(1)), reached)
        last = bisect_left(offsets, span_end, key=itemgetter(0))
        count += max(0, last - first)
        reached = max(reached, last)
    return count


def selection_uses_eval(m: Materialized) -> bool:
    """Whether the eval split picks the checkpoint (best-model reload or early stopping)."""
    return bool(m.sft_config.load_best_model_at_end) or m.recipe.launch.early_stopping_patience is not None


@measurement("data")
def measure(m: Materialized) -> dict[str, Any]:
    """Row counts, digests, preprocessing and split rule of the recipe's data (for a captured recipe: of the rows
    its own code produced, see measure_captured)."""
    if m.captured is not None:
        return measure_captured(m)
    steps = m.recipe.data.preprocess
    processed = preprocess_rows(m.raw.train, steps)
    changed = sum(1 for raw, new in zip(m.raw.train, processed, strict=True) if raw != new)
    test_keys = set(m.raw_keys("test"))
    overlap = sum(1 for key in m.eval_keys if key in test_keys)
    selects = selection_uses_eval(m)
    return {
        "source": m.raw.source,
        "rows": {"train": len(m.data.train), "eval": len(m.data.eval), "test": len(m.raw.test)},
        "preprocess": plain(steps),
        "preprocess_changed": changed,
        "preprocess_changed_share": round(changed / len(m.raw.train), 6) if m.raw.train else 0.0,
        "split_rule": m.data.split_rule,
        "train_digest": rows_digest(m.data.train),
        "eval_digest": rows_digest(m.data.eval),
        "train_text_digest": text_digest(m.train_rows),
        "eval_is_benchmark_test": m.data.eval_is_benchmark_test,
        "eval_questions_in_test": overlap,
        "selection_uses_eval": selects,
        "load_best_model_at_end": bool(m.sft_config.load_best_model_at_end),
        "test_leak_into_selection": selects and (m.data.eval_is_benchmark_test or overlap > 0),
        "upstream_split_seeded": m.recipe.data.upstream_split_seeded,
        "annotations": annotation_tokens(m, [completion_text(row) for row in m.sample_rows]),
        "identity": data_identity(m, test_keys),
    }


def text_pairs(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(user text, completion text) of TRL-format rows: what a built-in and a captured recipe both have."""
    return [(user_text(row), completion_text(row)) for row in rows]


def text_digest(rows: list[dict[str, Any]]) -> str:
    """A short order-sensitive content hash of the user and completion texts of TRL-format rows."""
    return pairs_digest(text_pairs(rows))


def pairs_digest(pairs: list[tuple[str, str]]) -> str:
    return rows_digest([{"user": q, "completion": a} for q, a in pairs])


def captured_pairs(m: Materialized) -> list[tuple[str, str]]:
    """(user text, completion) of a captured recipe's train rows: of the rows handed to its trainer, or for a
    pre-tokenized trainer of the raw rows its framework loaded, paired with the examples it built from them."""
    assert m.captured is not None
    pairing = m.captured.token_rows
    return pairing.text_pairs() if pairing is not None else text_pairs(m.train_rows)


def measure_captured(m: Materialized) -> dict[str, Any]:
    """The data measurement of a captured recipe, read from the rows its own code produced and the dataset
    requests its manifest records; what a capture cannot know is said to be "not captured"."""
    assert m.captured is not None
    split = captured_split(m.captured, m.raw_keys("test"))
    requests = data_requests(m.captured.captured.manifest)
    pairs = captured_pairs(m)
    sample = pairs if m.samples is None else pairs[: m.samples]
    load_best = bool(m.sft_config.load_best_model_at_end)
    overlap = split.test_in_eval
    train_digest = pairs_digest(pairs)
    return {
        "source": requests.text(),
        "rows": {"train": split.train_rows, "eval": split.eval_rows, "test": len(m.raw.test)},
        "preprocess": PREPROCESS_NOT_CAPTURED,
        "preprocess_changed": None,
        "preprocess_changed_share": None,
        "split_rule": split.rule,
        "train_digest": NOT_CAPTURED,
        "eval_digest": NOT_CAPTURED,
        "train_text_digest": train_digest,
        "eval_is_benchmark_test": split.eval_is_benchmark_test,
        "eval_questions_in_test": overlap,
        "selection_uses_eval": load_best,
        "early_stopping": "not captured (callbacks are not recorded)",
        "load_best_model_at_end": load_best,
        "test_leak_into_selection": load_best and (split.eval_is_benchmark_test or overlap > 0),
        "upstream_split_seeded": SEED_NOT_CAPTURED,
        "annotations": annotation_tokens(m, [completion for _, completion in sample]),
        "identity": {
            "hub": requests.hub(),
            "rows_source": ", ".join(requests.served_from) or NOT_CAPTURED,
            "raw_train_digest": train_digest,
            "raw_test_digest": NOT_CAPTURED,
            "raw_rows": {"train": split.train_rows, "test": NOT_CAPTURED},
            "train_questions_in_test": split.test_in_train,
        },
    }


def data_identity(m: Materialized, test_keys: set[str]) -> dict[str, Any]:
    """Which dataset the recipe names upstream (hub path, config, splits) and the rows read here: content
    digests of the raw splits and how many distinct train rows (by identity) also appear in the test split."""
    spec = m.recipe.data
    return {
        "hub": {
            "path": spec.hub_path,
            "config": spec.hub_config,
            "train_split": spec.hub_train_split,
            "eval_split": spec.hub_eval_split,
        },
        "rows_source": m.raw.source,
        "raw_train_digest": rows_digest(m.raw.train),
        "raw_test_digest": rows_digest(m.raw.test),
        "raw_rows": {"train": len(m.raw.train), "test": len(m.raw.test)},
        "train_questions_in_test": len(set(m.train_keys) & test_keys),
    }


def _hub_text(hub: dict[str, Any]) -> str:
    config = f" ({hub['config']})" if hub["config"] else ""
    if "splits_requested" in hub:  # a capture's recorded requests
        pushed = f", pushed as {', '.join(hub['pushed'])}" if hub["pushed"] else ""
        return f"{hub['path']}{config} [splits requested: {', '.join(hub['splits_requested'])}{pushed}]"
    return f"{hub['path']}{config} [{hub['train_split']}/{hub['eval_split']}]"


def _identity_findings(a: Materialized, b: Materialized, va: dict, vb: dict) -> list[Finding]:
    """The datasets the recipes name differ (reported whether or not the rows at hand differ), and the
    train/test overlap differs."""
    ia, ib = va["identity"], vb["identity"]
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    findings = []
    captured = a.captured is not None or b.captured is not None
    named_a, named_b = (
        ((ia["hub"]["path"], ia["hub"]["config"]), (ib["hub"]["path"], ib["hub"]["config"]))
        if captured
        else (ia["hub"], ib["hub"])
    )
    if named_a != named_b:
        shared = (
            not captured
            and ia["rows_source"] == ib["rows_source"]
            and ia["raw_train_digest"] == ib["raw_train_digest"]
        )
        findings.append(
            make_finding(
                "data.source",
                "medium" if shared else "high",
                _hub_text(ia["hub"]),
                _hub_text(ib["hub"]),
                f"the recipes name different datasets: {name_a} {_hub_text(ia['hub'])}, {name_b} "
                f"{_hub_text(ib['hub'])}"
                + (
                    f"; both read the same rows here ({ia['rows_source']}), so content differences between the two "
                    "datasets are not measured (--data hub reads each recipe's own)"
                    if shared
                    else f"; rows read: {ia['rows_source']} vs {ib['rows_source']}"
                ),
                {
                    "hub": {"a": ia["hub"], "b": ib["hub"]},
                    "rows_source": [ia["rows_source"], ib["rows_source"]],
                    "raw_train_digest": [ia["raw_train_digest"], ib["raw_train_digest"]],
                    "raw_test_digest": [ia["raw_test_digest"], ib["raw_test_digest"]],
                    "raw_rows": {"a": ia["raw_rows"], "b": ib["raw_rows"]},
                    "same_rows_here": shared,
                },
            )
        )
    if ia["train_questions_in_test"] != ib["train_questions_in_test"]:
        findings.append(
            make_finding(
                "data.train_test_overlap",
                "high",
                ia["train_questions_in_test"],
                ib["train_questions_in_test"],
                f"train questions that are also test questions: {name_a} {ia['train_questions_in_test']} of "
                f"{va['rows']['train']}, {name_b} {ib['train_questions_in_test']} of {vb['rows']['train']}",
            )
        )
    return findings


def _example_pair(a: Materialized, b: Materialized) -> dict[str, Any]:
    """A's first train row and B's row with the same identity (else B's first row)."""
    row_a = a.data.train[0]
    key = a.train_keys[0]
    index = b.train_keys.index(key) if key in b.train_keys else None
    row_b = b.data.train[index or 0]
    return {"a": row_a, "b": row_b, "same_question": index is not None}


def _completion_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    """With a captured recipe on either side: the completions both recipes train on for the same shared rows
    (the measured effect of preprocessing, which a capture does not hold as steps)."""
    sample = a.raw.train if a.samples is None else a.raw.train[: a.samples]
    pairs = [
        (row, x, y)
        for row, x, y in zip(sample, a.shared_completions(sample), b.shared_completions(sample), strict=True)
        if x is not None and y is not None
    ]
    differing = [(row, x, y) for row, x, y in pairs if x != y]
    if not differing:
        return None
    row, answer_a, answer_b = differing[0]
    x, y = a.shared_examples([row])[0], b.shared_examples([row])[0]
    share_a, share_b = _share(va), _share(vb)
    return make_finding(
        "data.preprocess",
        "high",
        answer_a,
        answer_b,
        f"completions differ for {len(differing)} of {len(pairs)} shared rows both recipes train on "
        f"({len(sample) - len(pairs)} not in both)" + _annotation_clause(a, b, share_a, share_b),
        {
            "rows_differing": len(differing),
            "rows": len(pairs),
            "rows_not_in_both": len(sample) - len(pairs),
            "raw_answer": a.conversations([row])[0].completion,
            "a_answer": answer_a,
            "b_answer": answer_b,
            "a_preprocess": va["preprocess"],
            "b_preprocess": vb["preprocess"],
            "a_source": x.source,
            "b_source": y.source,
            "annotation_token_share": {"a": share_a, "b": share_b},
        },
    )


def _share(v: dict[str, Any]) -> float | None:
    return v["annotations"]["annotation_token_share"] if v["annotations"] is not None else None


def _annotation_clause(a: Materialized, b: Materialized, share_a: float | None, share_b: float | None) -> str:
    """'; <the task's annotation spans> take x% vs y% of completion tokens' where the task measures both, else ''."""
    task = a.task or b.task
    if task is None or task.annotation is None or share_a is None or share_b is None:
        return ""
    return f"; {task.annotation.name} take {share_a:.1%} vs {share_b:.1%} of completion tokens"


def _pairs(m: Materialized) -> list[tuple[str, str]]:
    return captured_pairs(m) if m.captured is not None else text_pairs(m.train_rows)


def _shared_example_pair(a: Materialized, b: Materialized, ctx: ProbeContext) -> dict[str, Any]:
    """Shared raw train row `ctx.show_example` as each recipe trains it (user message, completion, source)."""
    row = a.raw.train[ctx.show_example]
    sides = {}
    for side, m in (("a", a), ("b", b)):
        example = m.shared_examples([row])[0]
        sides[side] = {
            "user_message": example.user_message,
            "completion": (example.completion or "")
            if example.pre_tokenized
            else (example.conversation.completion if example.conversation else ""),
            **example.evidence(),
        }
    return {**sides, "same_question": sides["a"]["same_row"] and sides["b"]["same_row"]}


def _preprocess_finding(
    a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext
) -> Finding | None:
    if a.captured is not None or b.captured is not None:
        return _completion_finding(a, b, va, vb)
    raw = a.raw.train
    out_a = preprocess_rows(raw, a.recipe.data.preprocess)
    out_b = preprocess_rows(raw, b.recipe.data.preprocess)
    differing = [i for i, (x, y) in enumerate(zip(out_a, out_b, strict=True)) if x != y]
    if not differing:
        return None
    index = ctx.show_example if ctx.show_example in set(differing) else differing[0]
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    share_a, share_b = _share(va), _share(vb)
    completions = {
        name: a.conversations([rows[index]])[0].completion
        for name, rows in (("raw", raw), ("a", out_a), ("b", out_b))
    }
    return make_finding(
        "data.preprocess",
        "high",
        va["preprocess"],
        vb["preprocess"],
        f"preprocessing differs: {len(differing)} of {len(raw)} answers come out different "
        f"({name_a} changes {va['preprocess_changed_share']:.1%} of answers, {name_b} {vb['preprocess_changed_share']:.1%})"
        + _annotation_clause(a, b, share_a, share_b),
        {
            "rows_differing": len(differing),
            "rows": len(raw),
            "example_index": index,
            "raw_answer": completions["raw"],
            "a_answer": completions["a"],
            "b_answer": completions["b"],
            "annotation_token_share": {"a": share_a, "b": share_b},
        },
    )


def _eval_split_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    leak_a, leak_b = va["test_leak_into_selection"], vb["test_leak_into_selection"]
    if a.captured is not None or b.captured is not None:  # rules are worded differently: compare what they do
        same = all(va[k] == vb[k] for k in ("eval_is_benchmark_test", "eval_questions_in_test")) and (
            va["rows"]["eval"] == vb["rows"]["eval"]
        )
    else:
        same = va["split_rule"] == vb["split_rule"]
    if same and leak_a == leak_b:
        return None
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    parts = [f"{name_a}: {va['split_rule']}", f"{name_b}: {vb['split_rule']}"]
    for name, v in ((name_a, va), (name_b, vb)):
        if v["test_leak_into_selection"]:
            parts.append(
                f"{name} selects checkpoints on benchmark test questions ({v['eval_questions_in_test']} of "
                f"{v['rows']['eval']} eval questions are in the test split, load_best_model_at_end="
                f"{v['load_best_model_at_end']}): test-set leakage into checkpoint selection"
            )
    return make_finding(
        "data.eval_split",
        "high" if leak_a != leak_b else "medium",
        va["split_rule"],
        vb["split_rule"],
        "eval split differs; " + "; ".join(parts),
        {
            side: {
                "eval_is_benchmark_test": v["eval_is_benchmark_test"],
                "eval_questions_in_test": v["eval_questions_in_test"],
                "eval_rows": v["rows"]["eval"],
                "selection_uses_eval": v["selection_uses_eval"],
                "load_best_model_at_end": v["load_best_model_at_end"],
                "test_leak_into_selection": v["test_leak_into_selection"],
            }
            for side, v in (("a", va), ("b", vb))
        },
    )


@PROBES.register("data")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Row counts, hashes, preprocessing, split rule, eval/test overlap and annotation share of each recipe."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    findings: list[Finding] = []
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    captured = a.captured is not None or b.captured is not None
    digest = "train_text_digest" if captured else "train_digest"
    if va[digest] != vb[digest]:
        evidence: dict[str, Any] = {"rows": {"a": va["rows"], "b": vb["rows"]}}
        summary = (
            f"train content differs: {name_a} trains on {va['rows']['train']} rows ({va['source']}), "
            f"{name_b} on {vb['rows']['train']} rows ({vb['source']})"
        )
        if captured:
            common = len(set(_pairs(a)) & set(_pairs(b)))
            evidence |= {"rows_in_common": common, "example": _shared_example_pair(a, b, ctx)}
            summary += f"; {common} rows have the same user message and completion in both"
        else:
            evidence["example"] = _example_pair(a, b)
        findings.append(make_finding("data.train", "high", va[digest], vb[digest], summary, evidence))
    for finding in (_preprocess_finding(a, b, va, vb, ctx), _eval_split_finding(a, b, va, vb)):
        if finding is not None:
            findings.append(finding)
    findings.extend(_identity_findings(a, b, va, vb))
    seeds_known = SEED_NOT_CAPTURED not in (va["upstream_split_seeded"], vb["upstream_split_seeded"])
    if seeds_known and va["upstream_split_seeded"] != vb["upstream_split_seeded"]:
        unseeded = name_a if not va["upstream_split_seeded"] else name_b
        findings.append(
            make_finding(
                "data.split_seed",
                "medium",
                va["upstream_split_seeded"],
                vb["upstream_split_seeded"],
                f"{unseeded} splits train/eval upstream without a seed: its split cannot be reproduced",
                {"a_split_rule": va["split_rule"], "b_split_rule": vb["split_rule"]},
            )
        )
    values = {"a": va, "b": vb, "same_train_content": va["train_digest"] == vb["train_digest"]}
    return ProbeResult(findings=findings, values=plain(values))
