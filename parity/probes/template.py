"""Probe `template`: the effective chat template of each recipe and what it renders for the same messages.
Checks BOS/EOS in text and ids, generation-prompt support and whether rendering depends on the date."""

from __future__ import annotations

from typing import Any

from parity.data.conversation import Conversation
from parity.findings import Finding
from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import (
    PROBES,
    FindingMaker,
    ProbeContext,
    ProbeResult,
    compare_on_example,
    measurement,
    recipes_lacking_the_row,
)
from parity.rendering import render, render_is_deterministic
from parity.textdiff import char_diff, edge_notes, pair_names, token_alignment, visible

AXIS = "template"
make_finding = FindingMaker(AXIS)


def example_messages(m: Materialized, row: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """(prompt messages, all messages) the recipe builds for one raw row (for a captured recipe: its captured row,
    or the labelled stand-in where the capture lacks it); empty for rows TRL does not render (plain strings, text)."""
    conversation = _rendered(m.shared_examples([row])[0].conversation)
    return (conversation.prompt_messages, conversation.messages) if conversation else ([], [])


def _rendered(conversation: Conversation | None) -> Conversation | None:
    """The conversation when TRL renders it through the chat template (role/content messages), else None."""
    if conversation is None or conversation.plain or not conversation.messages:
        return None
    return conversation


def _tools(conversation: Conversation | None) -> dict[str, Any]:
    return {"tools": conversation.tools} if conversation is not None and conversation.tools else {}


@measurement("template")
def measure(m: Materialized, row: dict[str, Any]) -> dict[str, Any]:
    """Effective chat template and what it renders for one raw row (nothing is rendered where the tokenizer has no
    template or the row is not conversational: TRL renders neither)."""
    example = m.shared_examples([row])[0]
    conversation = _rendered(example.conversation)
    tok = m.tokenizer
    text = with_gen = without_gen = ""
    deterministic, date_dependent = True, False
    if conversation is not None and tok.chat_template is not None:
        kwargs = _tools(conversation)
        prompt, messages = conversation.prompt_messages, conversation.messages
        text = render(m, messages, **kwargs)
        with_gen = render(m, prompt, add_generation_prompt=True, **kwargs)
        without_gen = render(m, prompt, add_generation_prompt=False, **kwargs)
        deterministic, date_dependent = render_is_deterministic(m, messages, **kwargs)
    ids = example.input_ids
    return {
        "renders": conversation is not None and tok.chat_template is not None,
        "effective": m.tokenizer_info.template_source,
        "own_chat_template": m.tokenizer_info.own_chat_template,
        "template_source": m.recipe.template.source,
        "chat_template": tok.chat_template,
        "rendered": text,
        "rendered_visible": visible(text),
        "generation_prompt": visible(with_gen[len(without_gen) :])
        if with_gen.startswith(without_gen)
        else visible(with_gen),
        "supports_generation_prompt": with_gen != without_gen,
        "deterministic": deterministic,
        "date_dependent": date_dependent,
        "bos_in_text": tok.bos_token is not None and tok.bos_token in text,
        "eos_in_text": tok.eos_token is not None and tok.eos_token in text,
        "bos_in_ids": tok.bos_token_id is not None and tok.bos_token_id in ids,
        "eos_in_ids": tok.eos_token_id is not None and tok.eos_token_id in ids,
        "input_ids": ids,
        "tokens": tok.convert_ids_to_tokens(ids),
        "pre_tokenized": example.pre_tokenized,
        "example_same_row": example.same_row,
        "example_source": example.source,
    }


def _ids_text(ids: list[int], tokens: list[str]) -> str:
    return ", ".join(f"{i} ({t!r})" for i, t in zip(ids, tokens, strict=True))


def _token_note(va: dict, vb: dict, name_a: str, name_b: str) -> str:
    missing = recipes_lacking_the_row(va, vb, name_a, name_b)
    if missing:
        return f"token ids not compared: the raw row is not captured in {' and '.join(missing)}"
    ops = token_alignment(va["input_ids"], vb["input_ids"], va["tokens"], vb["tokens"], limit=1)
    if not ops:
        return "token ids are identical"
    op = ops[0]
    where = "start with" if op["a_pos"][0] == 0 else f"have at position {op['a_pos'][0]}"
    if op["op"] == "delete":
        return f"{name_a}'s token ids {where} {_ids_text(op['a_ids'], op['a_tokens'])}, which {name_b} lacks"
    if op["op"] == "insert":
        return f"{name_b}'s token ids {where} {_ids_text(op['b_ids'], op['b_tokens'])}, which {name_a} lacks"
    return (
        f"token ids first differ at position {op['a_pos'][0]}: {name_a} {_ids_text(op['a_ids'], op['a_tokens'])}, "
        f"{name_b} {_ids_text(op['b_ids'], op['b_tokens'])}"
    )


def head(text: str) -> str:
    """The start of a rendered text up to the end of its first non-blank line."""
    start = len(text) - len(text.lstrip())
    end = text.find("\n", start)
    return text[: end + 1] if end >= 0 else text[:40]


def _template_finding(va: dict, vb: dict, same: dict, name_a: str, name_b: str) -> Finding:
    template_notes = edge_notes(va["chat_template"] or "", vb["chat_template"] or "", name_a, name_b)
    token_note = _token_note(va, vb, name_a, name_b)
    if va["renders"] != vb["renders"]:
        starts = "only one recipe's rows are rendered through it (see template.applied)"
    elif not va["renders"]:
        starts = "neither recipe's rows are rendered through it (plain strings, text or token ids)"
    elif same["a"] == same["b"]:
        starts = "both render the same messages identically"
    elif head(same["a"]) != head(same["b"]):
        starts = f"rendered {name_a} text starts with {head(same['a'])!r}, {name_b} with {head(same['b'])!r}"
    else:
        starts = (
            "; ".join(edge_notes(same["a"], same["b"], name_a, name_b))
            or "the same messages render differently"
        )
    summary = "chat template text differs"
    if template_notes:
        summary += " (template: " + "; ".join(template_notes) + ")"
    return make_finding(
        "template.chat_template",
        "low" if same["a"] == same["b"] or not (va["renders"] and vb["renders"]) else "high",
        va["chat_template"],
        vb["chat_template"],
        f"{summary}: {starts}; {token_note}",
        {
            "template_diff": char_diff(va["chat_template"] or "", vb["chat_template"] or ""),
            "template_notes": template_notes,
            "same_messages_diff": char_diff(same["a"], same["b"]),
            "same_messages_notes": edge_notes(same["a"], same["b"], name_a, name_b),
            "a_rendered": visible(same["a"]),
            "b_rendered": visible(same["b"]),
            "token_ops": token_alignment(
                va["input_ids"], vb["input_ids"], va["tokens"], vb["tokens"], limit=5
            )
            if va["example_same_row"] and vb["example_same_row"]
            else [],
            "token_note": token_note,
            "a_example_source": va["example_source"],
            "b_example_source": vb["example_source"],
            "a_first_ids": va["input_ids"][:8],
            "b_first_ids": vb["input_ids"][:8],
        },
    )


@PROBES.register("template")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Effective template, rendered-text diff, BOS/EOS, generation prompt and determinism for both recipes."""
    return compare_on_example(a, b, ctx, measure, compare)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    conversation = _rendered(a.shared_examples([a.raw.train[ctx.show_example]])[0].conversation)
    same = {  # A's messages through each recipe's template, at the frozen clock, as measure renders
        side: render(m, conversation.messages, **_tools(conversation))
        if conversation is not None and m.tokenizer.chat_template is not None
        else ""
        for side, m in (("a", a), ("b", b))
    }
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    findings = []
    if va["renders"] != vb["renders"]:
        unrendered, rendered = (name_a, name_b) if not va["renders"] else (name_b, name_a)
        how = (
            "reach its trainer as token ids (its framework's own template built them: see prompt)"
            if (va if not va["renders"] else vb)["pre_tokenized"]
            else "reach TRL without a chat template (plain strings, text or token ids, or a tokenizer without one)"
        )
        findings.append(
            make_finding(
                "template.applied",
                "high",
                va["renders"],
                vb["renders"],
                f"{unrendered}'s rows {how}; {rendered}'s are rendered through its chat template",
                {"a_rendered": visible(va["rendered"]), "b_rendered": visible(vb["rendered"])},
            )
        )
    if va["chat_template"] != vb["chat_template"]:
        findings.append(_template_finding(va, vb, same, name_a, name_b))
    if (va["template_source"], va["effective"]) != (vb["template_source"], vb["effective"]):
        findings.append(
            make_finding(
                "template.source",
                "low",
                va["template_source"],
                vb["template_source"],
                f"template provenance differs: {name_a} {va['effective']} from {va['template_source'] or 'n/a'}, "
                f"{name_b} {vb['effective']} from {vb['template_source'] or 'n/a'}",
                {"a_effective": va["effective"], "b_effective": vb["effective"]},
            )
        )
    if va["deterministic"] != vb["deterministic"]:
        volatile = name_a if not va["deterministic"] else name_b
        findings.append(
            make_finding(
                "template.deterministic",
                "medium",
                va["deterministic"],
                vb["deterministic"],
                f"{volatile}'s chat template renders differently from run to run"
                + (" (it depends on the date)" if va["date_dependent"] or vb["date_dependent"] else ""),
                {"a_date_dependent": va["date_dependent"], "b_date_dependent": vb["date_dependent"]},
            )
        )
    if (
        va["renders"]
        and vb["renders"]
        and va["supports_generation_prompt"] != vb["supports_generation_prompt"]
    ):
        lacking = name_a if not va["supports_generation_prompt"] else name_b
        findings.append(
            make_finding(
                "template.generation_prompt",
                "medium",
                va["supports_generation_prompt"],
                vb["supports_generation_prompt"],
                f"{lacking}'s chat template ignores add_generation_prompt (prompt/completion split and eval prompts change)",
                {
                    "a_generation_prompt": va["generation_prompt"],
                    "b_generation_prompt": vb["generation_prompt"],
                },
            )
        )
    keep = ("input_ids", "tokens")
    values = {
        "example_index": ctx.show_example,
        "a": {k: v for k, v in va.items() if k not in keep},
        "b": {k: v for k, v in vb.items() if k not in keep},
        "same_template": va["chat_template"] == vb["chat_template"],
        "same_messages": {
            "a": visible(same["a"]),
            "b": visible(same["b"]),
            "identical": same["a"] == same["b"],
        },
        "same_messages_diff": char_diff(same["a"], same["b"]),
        "same_messages_notes": edge_notes(same["a"], same["b"], name_a, name_b),
        "rendered_diff": char_diff(va["rendered"], vb["rendered"]),
        "template_diff": char_diff(va["chat_template"] or "", vb["chat_template"] or ""),
    }
    return ProbeResult(findings=findings, values=plain(values))
