"""Probe `prompt`: the user message each recipe builds for the same raw row, diffed character by character.
Whitespace is made visible in the evidence; instruction strings and user templates are compared too."""

from __future__ import annotations

from typing import Any

from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import (
    PROBES,
    FindingMaker,
    ProbeContext,
    ProbeResult,
    measurement,
    recipes_lacking_the_row,
)
from parity.textdiff import char_diff, edge_notes, pair_names, visible, whitespace_edges

AXIS = "prompt"
make_finding = FindingMaker(AXIS)
NOT_CAPTURED = "not captured (a capture holds the user messages the recipe's code built, not a template)"


def user_messages(m: Materialized, rows: list[dict[str, str]]) -> list[str | None]:
    """The user message content the recipe builds for each raw row (None: a captured recipe's own code never
    produced that row)."""
    return m.shared_user_messages(rows)


@measurement("prompt")
def measure(m: Materialized, row: dict[str, str]) -> dict[str, Any]:
    """The user message the recipe builds for one raw row, and the template and instruction behind it (for a
    captured recipe: the user text of its captured row; the spec's template and instruction are not captured)."""
    example = m.shared_examples([row])[0]
    message = example.user_message
    captured = m.captured is not None
    return {
        "user_message": message,
        "user_message_visible": visible(message),
        "user_template": NOT_CAPTURED if captured else m.recipe.prompt.user_template,
        "instruction": NOT_CAPTURED if captured else m.recipe.prompt.instruction,
        "whitespace": whitespace_edges(message),
        "length_chars": len(message),
        "example_same_row": example.same_row,
        "example_source": example.source,
    }


@PROBES.register("prompt")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Compare the user messages built from raw train row `ctx.show_example` (and count rows that differ)."""
    row = a.raw.train[ctx.show_example]
    return compare(a, b, measure(a, row), measure(b, row), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    msg_a, msg_b = va["user_message"], vb["user_message"]
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    sample = a.raw.train if a.samples is None else a.raw.train[: a.samples]
    pairs = [
        (x, y)
        for x, y in zip(user_messages(a, sample), user_messages(b, sample), strict=True)
        if x is not None and y is not None
    ]
    rows_differing = sum(1 for x, y in pairs if x != y)
    same_row = va["example_same_row"] and vb["example_same_row"]
    ops = char_diff(msg_a, msg_b)
    notes = edge_notes(msg_a, msg_b, name_a, name_b)
    spec_known = NOT_CAPTURED not in (va["instruction"], vb["instruction"])
    same_instruction = va["instruction"] == vb["instruction"] if spec_known else None
    short = list(notes)
    if same_instruction is False:
        short.append("instructions differ")
        notes.append(f"instructions differ: {name_a} {va['instruction']!r}, {name_b} {vb['instruction']!r}")
    if not spec_known and ops:
        short.append(f"{len(ops)} character edits (a capture holds no template to name them)")
    if spec_known and va["user_template"] != vb["user_template"]:
        short.append("user templates differ")
        notes.append(
            f"user templates differ: {name_a} {va['user_template']!r}, {name_b} {vb['user_template']!r}"
        )
    values = {
        "example_index": ctx.show_example,
        "a": va,
        "b": vb,
        "same_user_message": msg_a == msg_b,
        "same_instruction": same_instruction,
        "diff": ops,
        "notes": notes,
        "rows_compared": len(pairs),
        "rows_not_captured": len(sample) - len(pairs),
        "rows_differing": rows_differing,
    }
    findings = []
    if not same_row:
        missing = recipes_lacking_the_row(va, vb, name_a, name_b)
        findings.append(
            make_finding(
                "prompt.user_message_not_captured",
                "info",
                va["example_same_row"],
                vb["example_same_row"],
                f"raw train row {ctx.show_example} is not among the rows {' and '.join(missing)}'s own code "
                f"produced: its user messages are not compared ({rows_differing} of {len(pairs)} rows found in "
                "both differ)",
                {
                    "example_index": ctx.show_example,
                    "a_source": va["example_source"],
                    "b_source": vb["example_source"],
                    "rows_compared": len(pairs),
                    "rows_not_captured": len(sample) - len(pairs),
                    "rows_differing": rows_differing,
                },
            )
        )
    elif msg_a != msg_b:
        findings.append(
            make_finding(
                "prompt.user_message",
                "high",
                msg_a,
                msg_b,
                f"user message differs for the same row ({rows_differing} of {len(pairs)} rows): "
                + "; ".join(short or [f"{len(ops)} character edits"]),
                {
                    "example_index": ctx.show_example,
                    "a_message": visible(msg_a),
                    "b_message": visible(msg_b),
                    "diff": ops,
                    "notes": notes,
                    "a_instruction": va["instruction"],
                    "b_instruction": vb["instruction"],
                },
            )
        )
    return ProbeResult(findings=findings, values=plain(values))
