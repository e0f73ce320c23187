"""Probe `answer`: each recipe's eval protocol and whether its extractor reads the other recipe's answer format.
`extract_answer` and `answers_match` follow lm-eval's regex filter and exact-match semantics (reused by `parity run`).
Gold answers and answer formats come from the recipe's task pack (parity/tasks); a recipe without an eval protocol
or a task gets no answer claims."""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal, InvalidOperation
from typing import Any

from parity.data.pipeline import eval_text, preprocess_rows
from parity.findings import Finding
from parity.materialize import Materialized, user_message_of
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.spec import EvalSpec, Recipe
from parity.tasks import Task, gold_rule
from parity.textdiff import char_diff, pair_names

AXIS = "answer"
make_finding = FindingMaker(AXIS)
GOLD_ROWS = 200
"""Benchmark test rows (train rows when the data has no test split) whose preprocessed completions are the gold
completions of the compatibility matrix."""
MODES = ("strict", "flexible")
NO_PROTOCOL = "none (the recipe gives no eval prompt and no answer extractor)"
PROTOCOL_FIELDS = {
    "harness": "medium",
    "task": "low",
    "split": "medium",
    "num_fewshot": "medium",
    "apply_chat_template": "medium",
    "strict_regex": "medium",
    "flexible_regex": "medium",
    "ignore_patterns": "medium",
    "ignore_case": "medium",
    "remove_tokens": "medium",
    "gold_regex": "medium",
}
"""EvalSpec fields compared across recipes, with the severity of a difference."""


def extract_answer(text: str, eval_spec: EvalSpec, mode: str) -> str | None:
    """lm-eval's regex filter: strict takes the first match, flexible the last; a tuple gives its first non-empty group."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pattern = eval_spec.strict_regex if mode == "strict" else eval_spec.flexible_regex
    if not pattern:
        return None
    for token in eval_spec.remove_tokens:
        text = text.replace(token, "")
    matches = re.findall(pattern, text)
    if not matches:
        return None
    match = matches[0 if mode == "strict" else -1]
    if isinstance(match, tuple):
        match = next((group for group in match if group), None)
        if match is None:
            return None
    return match.strip()


def normalize(text: str, eval_spec: EvalSpec) -> str:
    """An answer after the recipe's ignore patterns (regex removal, in order) and case folding."""
    flags = re.IGNORECASE if eval_spec.ignore_case else 0
    for pattern in eval_spec.ignore_patterns:
        text = re.sub(pattern, "", text, flags=flags)
    return (text.lower() if eval_spec.ignore_case else text).strip()


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def answers_match(pred: str | None, gold: str | None, eval_spec: EvalSpec) -> bool:
    """Exact match after normalization; compared as numbers where both sides parse as one."""
    if pred is None or gold is None:
        return False
    p, g = normalize(pred, eval_spec), normalize(gold, eval_spec)
    np_, ng = _number(p), _number(g)
    if np_ is not None and ng is not None:
        return np_ == ng
    return p == g


def extraction_share(
    completions: list[str], golds: list[str | None], eval_spec: EvalSpec, mode: str
) -> float:
    """Share of completions whose extracted answer matches the gold answer of the same row."""
    hits = sum(
        answers_match(extract_answer(text, eval_spec, mode), gold, eval_spec)
        for text, gold in zip(completions, golds, strict=True)
    )
    return round(hits / len(completions), 6) if completions else 0.0


def rows_task(a: Materialized, b: Materialized) -> Task | None:
    """The task pack the shared rows belong to: A's, else B's (a captured recipe names none)."""
    return a.task or b.task


def gold_of(m: Materialized, task: Task | None, reference: str) -> str | None:
    """The gold answer in a reference completion by the recipe's own rule, else the rows' task's rule."""
    pack = m.task or task
    rule = m.recipe.eval.gold_regex or (pack.gold_regex if pack else None)
    return task_gold(rule, reference) if rule else None


def task_gold(rule: str, reference: str) -> str | None:
    match = re.search(rule, reference)
    return match.group(1) if match else None


def protocol_state(recipe: Recipe) -> str | None:
    """Why a recipe's eval protocol is not compared ('not captured ...', 'none ...'), None when it is given."""
    if recipe.eval_not_captured:
        return recipe.provenance["eval"]
    return None if recipe.has_eval_protocol else NO_PROTOCOL


def gold_rows(m: Materialized) -> tuple[list[dict[str, Any]], str]:
    """The raw rows whose reference completions serve as gold: the first benchmark test rows, else train rows."""
    if m.raw.test:
        return m.raw.test[:GOLD_ROWS], "benchmark test rows"
    return m.raw.train[:GOLD_ROWS], "train rows (the data has no test split)"


def references(m: Materialized, rows: list[dict[str, Any]]) -> list[str]:
    """The reference completions of raw rows (before any recipe preprocessing)."""
    return [conversation.completion for conversation in m.conversations(rows)]


def completions(m: Materialized, rows: list[dict[str, Any]]) -> list[str]:
    """The completions the recipe trains on for raw rows (after its preprocessing)."""
    return [c.completion for c in m.conversations(preprocess_rows(rows, m.recipe.data.preprocess))]


@measurement("answer")
def measure(m: Materialized, row: dict[str, Any]) -> dict[str, Any]:
    """Eval protocol of the recipe and what its extractors read on one raw row ("not captured" for a captured
    recipe whose protocol nobody gave, "none" for a recipe without one)."""
    state = protocol_state(m.recipe)
    if state is not None:
        return {"eval_protocol": state}
    spec = m.recipe.eval
    eval_prompt = eval_text(m.recipe, row)
    training = user_message_of(m.recipe_rows([row])[0])
    return {
        "harness": spec.harness,
        "task": spec.task,
        "split": spec.split,
        "num_fewshot": spec.num_fewshot,
        "apply_chat_template": spec.apply_chat_template,
        "strict_regex": spec.strict_regex,
        "flexible_regex": spec.flexible_regex,
        "ignore_patterns": list(spec.ignore_patterns),
        "ignore_case": spec.ignore_case,
        "remove_tokens": list(spec.remove_tokens),
        "gold_regex": gold_rule(m.recipe),
        "eval_prompt_template": spec.prompt,
        "eval_prompt": eval_prompt,
        "training_user_message": training,
        "prompt_matches_training": eval_prompt == training,
        "modes": [mode for mode in MODES if (spec.strict_regex if mode == "strict" else spec.flexible_regex)],
    }


def _missing_protocol_finding(va: dict, vb: dict, name_a: str, name_b: str) -> Finding | None:
    """One info finding naming the recipes whose eval protocol is not captured or not given (none when neither
    recipe has one and both lack it the same way)."""
    states = {name: v["eval_protocol"] for name, v in ((name_a, va), (name_b, vb)) if "eval_protocol" in v}
    if len(states) == 2 and va["eval_protocol"] == vb["eval_protocol"] == NO_PROTOCOL:
        return None
    captured = [name for name, state in states.items() if state != NO_PROTOCOL]
    absent = [name for name, state in states.items() if state == NO_PROTOCOL]
    parts = []
    if captured:
        parts.append(
            f"the eval protocol of {' and '.join(captured)} is not captured: eval fields and extractors are not "
            "compared (set eval.* keys in a recipe YAML that declares the capture)"
        )
    if absent:
        parts.append(
            f"{' and '.join(absent)} gives no eval protocol (eval.prompt, eval.strict_regex or "
            "eval.flexible_regex): no answer or consistency claims are made about it"
        )
    return make_finding(
        "eval.not_captured" if captured else "eval.none",
        "info",
        va.get("eval_protocol", "given"),
        vb.get("eval_protocol", "given"),
        "; ".join(parts),
        align="eval",
    )


def _protocol_findings(va: dict, vb: dict, name_a: str, name_b: str) -> list[Finding]:
    if "eval_protocol" in va or "eval_protocol" in vb:
        finding = _missing_protocol_finding(va, vb, name_a, name_b)
        return [finding] if finding is not None else []
    findings = []
    for name, severity in PROTOCOL_FIELDS.items():
        if va[name] != vb[name]:
            findings.append(
                make_finding(
                    f"eval.{name}",
                    severity,
                    va[name],
                    vb[name],
                    f"eval {name} differs: {name_a} {va[name]!r}, {name_b} {vb[name]!r}",
                    align="eval",
                )
            )
    if va["eval_prompt"] != vb["eval_prompt"]:
        findings.append(
            make_finding(
                "eval.prompt",
                "medium",
                va["eval_prompt"],
                vb["eval_prompt"],
                f"eval prompts differ for the same question ({len(char_diff(va['eval_prompt'], vb['eval_prompt']))} character edits)",
                {
                    "diff": char_diff(va["eval_prompt"], vb["eval_prompt"]),
                    "a_template": va["eval_prompt_template"],
                    "b_template": vb["eval_prompt_template"],
                },
                align="eval",
            )
        )
    if (
        va["prompt_matches_training"] != vb["prompt_matches_training"]
        and va["eval_prompt"] != vb["eval_prompt"]
    ):
        off, v = (name_a, va) if not va["prompt_matches_training"] else (name_b, vb)
        findings.append(
            make_finding(
                "eval.prompt_matches_training",
                "medium",
                va["prompt_matches_training"],
                vb["prompt_matches_training"],
                f"{off} evaluates with a prompt that differs from its training user message",
                {
                    "eval_prompt": v["eval_prompt"],
                    "training_user_message": v["training_user_message"],
                    "diff": char_diff(v["training_user_message"], v["eval_prompt"]),
                },
                align="eval",
            )
        )
    return findings


@PROBES.register("answer")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Eval protocols, answer formats and the extractor x gold compatibility matrix of both recipes."""
    row = a.raw.train[ctx.show_example]
    return compare(a, b, measure(a, row), measure(b, row), ctx)


def gold_completions(a: Materialized, b: Materialized) -> tuple[list[dict], dict[str, list[str]], str]:
    """(raw rows, each recipe's completion for them, where they come from): the first benchmark test rows through
    each recipe's preprocessing; with a captured recipe, the shared train rows both recipes' data holds (a capture
    holds the rows its own code built, not its preprocessing as steps)."""
    if a.captured is None and b.captured is None:
        raw, kind = gold_rows(a)
        golds = {side: completions(m, raw) for side, m in (("a", a), ("b", b))}
        return raw, golds, f"first {len(raw)} {kind}, each recipe's preprocessing"
    candidates = a.raw.train[:GOLD_ROWS]
    texts = {"a": a.shared_completions(candidates), "b": b.shared_completions(candidates)}
    kept = [i for i in range(len(candidates)) if texts["a"][i] is not None and texts["b"][i] is not None]
    golds = {side: [texts[side][i] for i in kept] for side in ("a", "b")}
    source = (
        f"{len(kept)} of the first {len(candidates)} train rows, as found in the captured rows "
        "(the completions the recipe's own code built)"
    )
    return [candidates[i] for i in kept], golds, source


def _references(m: Materialized, rows: list[dict[str, Any]]) -> list[str]:
    """Reference completions of shared raw rows, read in the format of the recipe whose rows they are."""
    return references(m, rows) if m.captured is None or not m.raw.templated else m.shared_completions(rows)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    row = a.raw.train[ctx.show_example]
    raw_gold, golds, gold_source = gold_completions(a, b)
    recipes = {"a": a, "b": b}
    task = rows_task(a, b)
    # answer claims need a recipe that evaluates (its extractor) and a task that says what an answer looks like
    extractors = [x for x, m in recipes.items() if m.recipe.has_eval_protocol and (m.task or task)]
    reference = _references(a, raw_gold) if extractors else []
    gold = {x: [gold_of(recipes[x], task, text) for text in reference] for x in extractors}
    matrix: dict[str, dict[str, float]] = {}
    for mode in MODES:
        entries = {
            f"{x}_extractor_on_{y}_gold": extraction_share(golds[y], gold[x], recipes[x].recipe.eval, mode)
            for x in extractors
            if (
                recipes[x].recipe.eval.strict_regex
                if mode == "strict"
                else recipes[x].recipe.eval.flexible_regex
            )
            for y in ("a", "b")
        }
        if entries:
            matrix[mode] = entries
    va, vb = dict(va), dict(vb)  # answer formats are added below
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    for side, v in (("a", va), ("b", vb)):
        m = recipes[side]
        if not extractors or task is None:
            continue
        formats = Counter(task.answer_format(text) for text in golds[side])
        if m.captured is None:
            example = completions(m, [row])[0]
        else:
            example = m.shared_completions([row])[0] or (golds[side][0] if golds[side] else "")
        v["answer_format"] = formats.most_common(1)[0][0] if formats else ""
        v["answer_formats"] = dict(sorted(formats.items()))
        v["example_ending"] = example.rstrip().rsplit("\n", 1)[-1]
    findings = []
    rows_kind = "test rows" if a.captured is None and b.captured is None else "shared train rows"
    if not a.raw.test and rows_kind == "test rows":
        rows_kind = "train rows"
    if extractors and task is not None:
        differing = sum(
            1
            for x, y in zip(golds["a"], golds["b"], strict=True)
            if task.answer_format(x) != task.answer_format(y)
        )
        if differing:
            findings.append(
                make_finding(
                    "answer.format",
                    "high",
                    va["answer_format"],
                    vb["answer_format"],
                    f"answer format of completions differs on {differing} of {len(raw_gold)} {rows_kind}: "
                    f"{name_a} completions end {va['example_ending']!r}, {name_b} {vb['example_ending']!r}",
                    {
                        "a_formats": va["answer_formats"],
                        "b_formats": vb["answer_formats"],
                        "rows_differing": differing,
                    },
                    align="data",
                )
            )
    for mode, entries in matrix.items():
        for x, y, name_x, name_y in (("a", "b", name_a, name_b), ("b", "a", name_b, name_a)):
            own, cross = entries.get(f"{x}_extractor_on_{x}_gold"), entries.get(f"{x}_extractor_on_{y}_gold")
            if own is None or cross is None or cross >= own:
                continue
            findings.append(
                make_finding(
                    f"answer.{mode}_extractor.{x}",
                    "high",
                    entries[f"{x}_extractor_on_a_gold"],
                    entries[f"{x}_extractor_on_b_gold"],
                    f"{name_x}'s {mode} extractor reads {own:.1%} of its own gold completions but "
                    f"{cross:.1%} of {name_y}'s",
                    {
                        "regex": (va if x == "a" else vb)[f"{mode}_regex"],
                        "rows": len(raw_gold),
                        "example_completion_ending": golds[y][0].rstrip().rsplit("\n", 1)[-1]
                        if golds[y]
                        else "",
                        "extracted": extract_answer(golds[y][0], recipes[x].recipe.eval, mode)
                        if golds[y]
                        else None,
                        "gold": gold[x][0] if gold[x] else None,
                    },
                    align="data",
                )
            )
    findings.extend(_protocol_findings(va, vb, name_a, name_b))
    values = {
        "example_index": ctx.show_example,
        "gold_rows": len(raw_gold),
        "gold_source": gold_source,
        "a": va,
        "b": vb,
        "matrix": matrix,
    }
    return ProbeResult(findings=findings, values=plain(values))
