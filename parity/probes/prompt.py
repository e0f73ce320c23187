"""Probe `prompt`: the messages each recipe builds for the same raw row before the answer: the user message (diffed
character by character, whitespace made visible), the system prompt, earlier turns and the tool schemas offered."""

from __future__ import annotations

from typing import Any

from parity.data.conversation import Conversation
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
SHOWN_CHARS = 60
"""Characters of wrapping text quoted in a summary."""
MIN_SHARED_CHARS = 20
"""Fewest characters two messages must share to be described as the same text wrapped differently."""


def prompt_parts(conversation: Conversation | None) -> dict[str, Any]:
    """What conditions the answer besides the last user message: the system prompt, the earlier turns (role and
    content, tool calls kept) and the tool schemas."""
    if conversation is None or conversation.plain or not conversation.messages:
        return {"system": None, "history": [], "tools": None}
    prompt = conversation.prompt_messages
    users = [i for i, m in enumerate(prompt) if m.get("role") == "user"]
    last_user = users[-1] if users else len(prompt)
    history = [m for i, m in enumerate(prompt) if i != last_user and m.get("role") != "system"]
    return {"system": conversation.system, "history": history, "tools": conversation.tools}


@measurement("prompt")
def measure(m: Materialized, row: dict[str, Any]) -> dict[str, Any]:
    """The messages the recipe builds for one raw row, and the template and instruction behind them (for a captured
    recipe: its captured row; the spec's template and instruction are not captured)."""
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
        **prompt_parts(example.conversation),
        "pre_tokenized": example.pre_tokenized,
        "example_same_row": example.same_row,
        "example_source": example.source,
    }


def _last_user(conversation: Conversation) -> str:
    if conversation.plain or not conversation.messages:
        return conversation.messages[0]["content"] if conversation.plain else (conversation.text or "")
    turns = conversation.user_turns
    return turns[-1] if turns else ""


def wrapping_notes(a: str, b: str, name_a: str, name_b: str) -> list[str]:
    """How each message wraps the text both share (a template's words around the same question), when the longest
    text they share is most of the shorter one and more than whitespace differs around it; else none."""
    from difflib import SequenceMatcher

    match = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    if not a or not b or match.size < max(MIN_SHARED_CHARS, min(len(a), len(b)) // 2):
        return []
    around = {
        name: (text[:start], text[start + match.size :])
        for name, text, start in ((name_a, a, match.a), (name_b, b, match.b))
    }
    if not any(part.strip() for parts in around.values() for part in parts):
        return []  # only whitespace differs: edge_notes says which
    bare = [name for name, parts in around.items() if not "".join(parts)]
    if bare:
        [(name, (before, after))] = [(n, parts) for n, parts in around.items() if n not in bare]
        shown = " and ".join(_clipped(text) for text in (before, after) if text)
        return [f"{name} wraps the other's message in {shown}"]
    return [
        "the shared text is wrapped differently: "
        + "; ".join(
            f"{name} {_clipped(before)} ... {_clipped(after)}" for name, (before, after) in around.items()
        )
    ]


def _clipped(text: str) -> str:
    return repr(text[:SHOWN_CHARS] + "...") if len(text) > SHOWN_CHARS else repr(text)


def _shown(value: Any) -> str:
    """A system prompt, history or tool list in a summary: clipped, 'none' for nothing."""
    if value in (None, [], ""):
        return "none"
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:60] + "...") if len(text) > 60 else repr(text)


PARTS = {
    "system": ("prompt.system", "system prompt differs"),
    "history": ("prompt.history", "earlier turns differ"),
    "tools": ("prompt.tools", "tool schemas differ"),
}
"""Prompt parts besides the user message: finding key and what it is called."""


@PROBES.register("prompt")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Compare the prompts built from raw train row `ctx.show_example` (and count rows that differ)."""
    row = a.raw.train[ctx.show_example]
    return compare(a, b, measure(a, row), measure(b, row), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    msg_a, msg_b = va["user_message"], vb["user_message"]
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    sample = a.raw.train if a.samples is None else a.raw.train[: a.samples]
    # token ids hold the system prompt, earlier turns and tools inside the decoded prompt: not separable
    separable = not (va["pre_tokenized"] or vb["pre_tokenized"])
    if separable:
        both = [
            (x, y) for x, y in zip(a.shared_prompts(sample), b.shared_prompts(sample), strict=True) if x and y
        ]
        pairs = [(_last_user(x), _last_user(y)) for x, y in both]
        parts = [(prompt_parts(x), prompt_parts(y)) for x, y in both]
    else:
        messages = zip(a.shared_user_messages(sample), b.shared_user_messages(sample), strict=True)
        pairs = [(x, y) for x, y in messages if x is not None and y is not None]
        parts = []
    parts_differing = {name: sum(1 for x, y in parts if x[name] != y[name]) for name in PARTS}
    rows_differing = sum(1 for x, y in pairs if x != y)
    same_row = va["example_same_row"] and vb["example_same_row"]
    ops = char_diff(msg_a, msg_b)
    # a decoded prompt holds its template's words: name them around the shared text
    wrapped = [] if separable else wrapping_notes(msg_a, msg_b, name_a, name_b)
    notes = wrapped or edge_notes(msg_a, msg_b, name_a, name_b)
    notes += [
        f"{name}'s rows reach its trainer as token ids: its message is its prompt decoded (template text included)"
        for name, v in ((name_a, va), (name_b, vb))
        if v["pre_tokenized"]
    ]
    spec_known = NOT_CAPTURED not in (va["instruction"], vb["instruction"])
    same_instruction = va["instruction"] == vb["instruction"] if spec_known else None
    short = list(notes)
    if same_instruction is False:
        short.append("instructions differ")
        notes.append(f"instructions differ: {name_a} {va['instruction']!r}, {name_b} {vb['instruction']!r}")
    if not spec_known and ops and not short:
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
        "rows_differing_by_part": parts_differing if separable else None,
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
    if same_row and separable:
        for name, (key, words) in PARTS.items():
            if va[name] == vb[name]:
                continue
            findings.append(
                make_finding(
                    key,
                    "high",
                    va[name],
                    vb[name],
                    f"{words} for the same row ({parts_differing[name]} of {len(pairs)} rows): "
                    f"{name_a} {_shown(va[name])}, {name_b} {_shown(vb[name])}",
                    {"example_index": ctx.show_example, f"a_{name}": va[name], f"b_{name}": vb[name]}
                    | ({"diff": char_diff(va[name] or "", vb[name] or "")} if name == "system" else {}),
                )
            )
    return ProbeResult(findings=findings, values=plain(values))
