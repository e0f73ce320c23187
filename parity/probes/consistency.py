"""Consistency probe: what one recipe trains on against what its own evaluation feeds the model and extracts.
A finding is about each recipe alone (a: A's mismatch, b: B's), reported even when both recipes share it.

Measured: the prompt as TRL's prepared ids render it (decoded up to the completion) against the eval input (the
eval prompt, through the same tokenizer's chat template when the eval applies one); the eval extractor on the
recipe's own completion format; the ending of few-shot shots (the task's reference completions) against training
completions. A recipe without an eval protocol, or without a task for the answer checks, gets no such claims.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from parity.data.conversation import trl_conversation
from parity.data.pipeline import CHAT_TEMPLATE_FORMATS, eval_text
from parity.findings import Finding
from parity.materialize import Materialized, user_message_of
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement
from parity.probes.answer import completions, extraction_share, gold_of, gold_rows, protocol_state, references
from parity.textdiff import char_diff

make_finding = FindingMaker("consistency")


def training_prompt(m: Materialized) -> str:
    """The text before the completion in TRL's prepared first row (decoded ids, special tokens kept)."""
    ids = m.examples.input_ids[0]
    text = m.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    completion = trl_conversation(m.sample_rows[0]).completion
    cut = text.rfind(completion)
    return text[:cut] if cut >= 0 else text


def eval_input(m: Materialized, row: dict[str, Any]) -> str:
    """What the eval harness feeds the model for the same row (zero-shot part): the eval prompt, rendered
    with the recipe tokenizer's chat template (generation prompt added) when the eval applies it."""
    spec = m.recipe.eval
    prompt = eval_text(m.recipe, row)
    if not spec.apply_chat_template:
        return prompt
    return m.tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
    )


def _strip_bos(text: str, bos: str | None) -> str:
    return text[len(bos) :] if bos and text.startswith(bos) else text


@measurement("consistency")
def measure(m: Materialized) -> dict[str, Any]:
    """Training prompt vs eval input, own extractor on own completions, few-shot ending vs training ending
    (only the training side for a captured recipe whose eval protocol is not captured)."""
    state = protocol_state(m.recipe)
    if state is not None:
        return {"eval_protocol": state, "input_matches": None, "primary_mode": None, "num_fewshot": None}
    question = user_message_of(m.sample_rows[0])
    bos = m.tokenizer.bos_token
    trained = training_prompt(m)
    fed = eval_input(m, m.data.train[0]) if m.recipe.eval.prompt else None
    spec = m.recipe.eval
    raw_gold, _ = gold_rows(m)
    task = m.task
    trained_completions = completions(m, raw_gold)
    modes = [
        mode for mode, regex in (("strict", spec.strict_regex), ("flexible", spec.flexible_regex)) if regex
    ]
    shares = {}
    if task is not None or spec.gold_regex:
        golds = [gold_of(m, task, text) for text in references(m, raw_gold)]
        shares = {mode: extraction_share(trained_completions, golds, spec, mode) for mode in modes}
    training_format = Counter(map(task.answer_format, trained_completions)).most_common(1) if task else []
    shot_format = Counter(map(task.answer_format, references(m, raw_gold))).most_common(1) if task else []
    return {
        "training_user_message": question,
        "training_prompt": trained,
        "training_starts_with_bos": bool(bos) and trained.startswith(bos),
        "training_uses_chat_template": m.tokenizer.chat_template is not None
        and m.trl_format in CHAT_TEMPLATE_FORMATS,
        "eval_applies_chat_template": spec.apply_chat_template,
        "eval_input": fed,
        "input_matches": None if fed is None else _strip_bos(trained, bos) == _strip_bos(fed, bos),
        "extraction": shares,
        "primary_mode": modes[0] if modes and shares else None,
        "training_answer_format": training_format[0][0] if training_format else "",
        "num_fewshot": spec.num_fewshot,
        "fewshot_answer_format": shot_format[0][0] if shot_format else "",
    }


def _last_lines(v: dict) -> str:
    """' (trains on "...", evaluates on "...")' when the last lines of the two prompts differ, else ''."""
    trained = v["training_user_message"].strip().rsplit("\n", 1)[-1]
    fed = v["eval_input"].strip().rsplit("\n", 1)[-1]
    return "" if trained == fed else f" (last line trained {trained!r}, evaluated {fed!r})"


def _input_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    def describe(v: dict) -> str | None:
        if v["input_matches"] or v["input_matches"] is None:
            return None
        train = "chat template" if v["training_uses_chat_template"] else "raw text"
        evaluate = "chat template" if v["eval_applies_chat_template"] else "raw text"
        return f"trains on {train}, evaluates on {evaluate}"

    da, db = describe(va), describe(vb)
    if da is None and db is None:
        return None
    template_shift = any(
        v["training_uses_chat_template"] != v["eval_applies_chat_template"]
        for v, d in ((va, da), (vb, db))
        if d
    )
    parts = [f"{m.recipe.name} {d}{_last_lines(v)}" for m, v, d in ((a, va, da), (b, vb, db)) if d]
    return make_finding(
        "consistency.model_input",
        "high" if template_shift else "medium",
        da,
        db,
        "the eval input differs from the training prompt for the same question: " + "; ".join(parts),
        {
            side: {
                "training_prompt": v["training_prompt"],
                "eval_input": v["eval_input"],
                "diff": char_diff(v["training_prompt"], v["eval_input"]),
            }
            for side, v, d in (("a", va, da), ("b", vb, db))
            if d
        },
        align=None,
    )


def _extraction_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    def share(v: dict) -> float | None:
        mode = v["primary_mode"]
        return v["extraction"][mode] if mode else None

    sa, sb = share(va), share(vb)
    off = [(m, v, s) for m, v, s in ((a, va, sa), (b, vb, sb)) if s is not None and s < 1.0]
    if not off:
        return None
    return make_finding(
        "consistency.answer_extraction",
        "high",
        sa,
        sb,
        "the eval extractor misses the recipe's own training answer format: "
        + "; ".join(
            f"{m.recipe.name}'s {v['primary_mode']} extractor reads {s:.1%} of completions ending "
            f"{v['training_answer_format']!r}"
            for m, v, s in off
        ),
        {"a": va["extraction"], "b": vb["extraction"]},
        align=None,
    )


def _fewshot_finding(a: Materialized, b: Materialized, va: dict, vb: dict) -> Finding | None:
    def mismatch(v: dict) -> str | None:
        if v["num_fewshot"] and v["fewshot_answer_format"] != v["training_answer_format"]:
            return f"{v['num_fewshot']} shots end {v['fewshot_answer_format']!r}, training completions {v['training_answer_format']!r}"
        return None

    ma, mb = mismatch(va), mismatch(vb)
    if ma is None and mb is None:
        return None
    return make_finding(
        "consistency.fewshot_format",
        "medium",
        ma,
        mb,
        "few-shot examples (raw benchmark answers) are formatted unlike training completions: "
        + "; ".join(f"{m.recipe.name}: {x}" for m, x in ((a, ma), (b, mb)) if x),
        align=None,
    )


@PROBES.register("consistency")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Train-vs-eval mismatches of each recipe, reported whether or not the other recipe shares them."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    findings = [
        f
        for f in (
            _input_finding(a, b, va, vb),
            _extraction_finding(a, b, va, vb),
            _fewshot_finding(a, b, va, vb),
        )
        if f is not None
    ]
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
