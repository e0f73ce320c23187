"""Probe `bos`: BOS tokens at the start of the prepared examples, and of the rendered chat text tokenized with the
tokenizer's own special tokens (what a pipeline that renders text first and tokenizes it after feeds the model)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from parity.data.conversation import trl_conversation
from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement, side_values
from parity.textdiff import pair_names

AXIS = "bos"
make_finding = FindingMaker(AXIS)
ALIGN = "template"
"""BOS comes from the chat template (and the tokenizer it is installed on): aligning the template removes it."""
EVAL_NOT_MEASURED = "not measured"
"""The BOS count of the eval harness's input: the harness tokenizes its prompts itself (lm-eval's add_bos_token,
pre-tokenized requests to a server), outside everything parity materializes."""


def leading(ids: list[int], token: int | None) -> int:
    """How many times `token` repeats at the start of `ids`."""
    count = 0
    while token is not None and count < len(ids) and ids[count] == token:
        count += 1
    return count


def rendered_text(tokenizer: Any, row: dict[str, Any]) -> str | None:
    """A TRL-format row as the text TRL tokenizes: conversational rows rendered by the chat template (with their
    tools), plain prompt/completion joined, plain text as is; None for token ids (nothing renders them)."""
    conversation = trl_conversation(row)
    if conversation.messages and not conversation.plain:
        kwargs = {"tools": conversation.tools} if conversation.tools else {}
        return tokenizer.apply_chat_template(conversation.messages, tokenize=False, **kwargs)
    if conversation.plain:
        return str(row["prompt"]) + str(row["completion"])
    if conversation.tokens is not None:
        return None
    return conversation.text or ""


@measurement(AXIS)
def measure(m: Materialized) -> dict[str, Any]:
    """Leading BOS counts of the prepared sample, and of the first example rendered to text then tokenized (not
    applicable to rows handed over as token ids: None)."""
    tokenizer = m.tokenizer
    bos = tokenizer.bos_token_id
    counts = Counter(leading(ids, bos) for ids in m.examples.input_ids)
    text = rendered_text(tokenizer, m.sample_rows[0])
    rendered_bos = 0
    while (
        text is not None and tokenizer.bos_token and text.startswith(tokenizer.bos_token * (rendered_bos + 1))
    ):
        rendered_bos += 1
    return plain(
        {
            "bos_token": tokenizer.bos_token,
            "leading_bos": {str(k): counts[k] for k in sorted(counts)},
            "examples_with_double_bos": sum(n for k, n in counts.items() if k >= 2),
            "examples": len(m.examples),
            "template_emits_bos": rendered_bos if text is not None else None,
            "tokenizer_adds_bos": leading(tokenizer("x")["input_ids"], bos),
            "render_then_tokenize_bos": leading(tokenizer(text)["input_ids"], bos)
            if text is not None
            else None,
            "eval_input_bos": EVAL_NOT_MEASURED if m.recipe.has_eval_protocol else None,
            "eval_harness": m.recipe.eval.harness if m.recipe.has_eval_protocol else None,
        }
    )


def trains_with_bos(v: dict[str, Any]) -> bool:
    """Whether any prepared example starts with BOS."""
    return any(int(count) >= 1 for count in v["leading_bos"])


def _eval_bos_text(name: str, v: dict[str, Any]) -> str:
    leading = ", ".join(f"{n} of {v['examples']} with {k}" for k, n in v["leading_bos"].items())
    return (
        f"{name} trains on examples starting with BOS ({leading}) and is evaluated by {v['eval_harness']!r}; the "
        f"chat text rendered by its template and tokenized with the tokenizer's special tokens starts with "
        f"{v['render_then_tokenize_bos']} BOS"
    )


@PROBES.register(AXIS)
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Double BOS in the training data, and the BOS count a render-then-tokenize pipeline gets."""
    return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    names = pair_names(a.recipe.name, b.recipe.name)
    evidence = side_values(
        va, vb, ("leading_bos", "template_emits_bos", "tokenizer_adds_bos", "render_then_tokenize_bos")
    )
    findings = []
    if va["examples_with_double_bos"] != vb["examples_with_double_bos"]:
        findings.append(
            make_finding(
                "bos.double",
                "high",
                va["examples_with_double_bos"],
                vb["examples_with_double_bos"],
                f"examples starting with two or more BOS: {names[0]} {va['examples_with_double_bos']} of "
                f"{va['examples']}, {names[1]} {vb['examples_with_double_bos']} of {vb['examples']}",
                evidence,
                align=ALIGN,
            )
        )
    rendered = (va["render_then_tokenize_bos"], vb["render_then_tokenize_bos"])
    if None not in rendered and rendered[0] != rendered[1]:
        findings.append(
            make_finding(
                "bos.render_then_tokenize",
                "medium",
                va["render_then_tokenize_bos"],
                vb["render_then_tokenize_bos"],
                f"the chat text rendered by the template and then tokenized with the tokenizer's special tokens starts "
                f"with {va['render_then_tokenize_bos']} BOS in {names[0]} (template {va['template_emits_bos']}, "
                f"tokenizer {va['tokenizer_adds_bos']}) and {vb['render_then_tokenize_bos']} in {names[1]} (template "
                f"{vb['template_emits_bos']}, tokenizer {vb['tokenizer_adds_bos']}); training data starts with "
                f"{va['leading_bos']} / {vb['leading_bos']} (leading BOS count: examples)",
                evidence,
                align=ALIGN,
            )
        )
    evaluated = [
        (name, v)
        for name, v in zip(names, (va, vb), strict=True)
        if v["eval_input_bos"] and trains_with_bos(v)
    ]
    if evaluated and va["eval_harness"] != vb["eval_harness"]:
        findings.append(
            make_finding(
                "bos.eval_input",
                "info",
                va["eval_input_bos"] if trains_with_bos(va) else None,
                vb["eval_input_bos"] if trains_with_bos(vb) else None,
                "how many BOS the eval harness puts in front of its input is not measured (the harness tokenizes its "
                "prompts itself): " + "; ".join(_eval_bos_text(name, v) for name, v in evaluated),
                evidence,
                align=None,
            )
        )
    return ProbeResult(findings=findings, values=plain({"a": va, "b": vb}))
