"""Probe `loss_mask`: which tokens carry loss in each recipe, read from the labels TRL produced.
Prompt/completion split, EOS and BOS handling, and the effective completion_only_loss with its provenance."""

from __future__ import annotations

from typing import Any

from parity.axes import field_axis, field_severity, probe_fields
from parity.data.conversation import trl_conversation
from parity.fast_tokenize import encode_texts
from parity.materialize import Materialized
from parity.plain import plain
from parity.probes import PROBES, FindingMaker, ProbeContext, ProbeResult, measurement, side_values
from parity.probes.eos import TRUNCATION_NOTE, end_of_turn_ids
from parity.rendering import CLOCKS, frozen_clock
from parity.spec import NOT_APPLICABLE
from parity.textdiff import pair_names
from parity.trl_bridge import IGNORE_INDEX, Prepared, resolve_completion_only_loss

AXIS = "loss_mask"
make_finding = FindingMaker(AXIS)


def prompt_lengths(m: Materialized, rows: list[dict], input_ids: list[list[int]]) -> list[int]:
    """Prompt tokens at the start of each input_ids, rendered and tokenized as TRL does for the row's format:
    conversational prompts (messages before the last assistant turn) through the chat template with the generation
    prompt (in one batch where no row carries tools), plain prompt strings through the tokenizer; a row without a
    prompt (plain text, token ids) has none."""
    from trl.data_utils import common_prefix_length

    prompt_ids: list[list[int] | None] = [None] * len(rows)
    batch = []
    for i, row in enumerate(rows):
        prompt = prompt_of(row)
        if isinstance(prompt, str):
            prompt_ids[i] = m.tokenizer(text=prompt)["input_ids"]
        elif prompt and row.get("tools"):
            text = m.tokenizer.apply_chat_template(
                prompt, tools=row["tools"], tokenize=False, add_generation_prompt=True
            )
            prompt_ids[i] = encode_texts(m.tokenizer, [text])[0]
        elif prompt:
            batch.append((i, prompt))
    if batch:
        texts = m.tokenizer.apply_chat_template(
            [p for _, p in batch], tokenize=False, add_generation_prompt=True
        )
        for (i, _), ids in zip(batch, encode_texts(m.tokenizer, texts), strict=True):
            prompt_ids[i] = ids
    return [
        0 if p is None else common_prefix_length(p, ids) for p, ids in zip(prompt_ids, input_ids, strict=True)
    ]


def prompt_of(row: dict) -> list[dict] | str | None:
    """What comes before the trained completion in a TRL-format row: its prompt (messages or string), or the
    messages before its last assistant turn; None for plain text and token ids."""
    prompt = row.get("prompt")
    if isinstance(prompt, list | str):
        return prompt
    if isinstance(row.get("messages"), list):
        return trl_conversation(row).prompt_messages
    return None


def _with_rows(m: Materialized) -> tuple[Prepared, list[dict]]:
    """m.examples with the TRL-format row of each of its rows (re-prepared by TRL when rows cannot be matched)."""
    from parity.trl_bridge import before_packing, prepare_with_trl

    prepared = m.examples
    if prepared.rows is not None:
        return prepared, prepared.rows
    rows = m.sample_rows
    if len(prepared) != len(rows) or m.sft_config.shuffle_dataset:
        config = before_packing(m.sft_config) if m.sft_config.packing else m.sft_config
        prepared = Prepared.from_dataset(prepare_with_trl(rows, m.tokenizer, config, "train"))
        return prepared, prepared.rows or [{} for _ in prepared.input_ids]
    return prepared, rows


def _splits(m: Materialized, prepared: Prepared, rows: list[dict]) -> list[int]:
    """Prompt lengths of the rows: reused from the tokenization when it measured them on these very rows and
    nothing was truncated, else measured here (for token ids a framework built: where each example's completion
    begins, parity.capture.examples)."""
    pairing = m.captured.token_rows if m.captured is not None else None
    if pairing is not None:
        return [
            pairing.prompt_length("train", i, ids, labels) or 0
            for i, (ids, labels) in enumerate(zip(prepared.input_ids, prepared.labels, strict=True))
        ]
    starts = prepared.completion_starts
    max_length = None if m.sft_config.packing else m.sft_config.max_length
    all_ids = prepared.input_ids
    if starts is not None and all(max_length is None or len(ids) < max_length for ids in all_ids):
        return starts
    return prompt_lengths(m, rows, all_ids)


def last_stop_position(ids: list[int], stops: set[int], pad_id: int | None, start: int = 0) -> int | None:
    """Position of the last stop id in an example's content from `start` on (the completion's end of turn, not a
    stop id that ends a prompt turn; trailing padding excluded), or None."""
    from parity.probes.eos import content_end

    for index in range(content_end(ids, pad_id) - 1, start - 1, -1):
        if ids[index] in stops:
            return index
    return None


def stops_cut_by_truncation(va: dict[str, Any], vb: dict[str, Any]) -> bool:
    """Whether every example without a stop id, on either side, reached max_length (truncation cut it off, which the
    `padding` probe reports) and every stop id present carries loss on both sides."""
    return any(v["examples_without_stop_at_max_length"] for v in (va, vb)) and all(
        v["examples"] - v["examples_ending_with_eos"] == v["examples_without_stop_at_max_length"]
        and v["eos_trained_count"] == v["examples_ending_with_eos"]
        for v in (va, vb)
    )


def mask_stats(m: Materialized) -> dict[str, Any]:
    """Trained-token counts over the recipe's TRL-prepared train sample."""
    prepared, rows = _with_rows(m)
    total = trained = prompt_tokens = prompt_trained = completion_tokens = completion_trained = 0
    ends_eos = eos_trained = bos_first = cut = 0
    max_length = None if m.sft_config.packing else m.sft_config.max_length
    bos, pad = m.tokenizer.bos_token_id, m.tokenizer.pad_token_id
    stops = end_of_turn_ids(m)
    for ids, labels, split in zip(
        prepared.input_ids, prepared.labels, _splits(m, prepared, rows), strict=True
    ):
        row_trained = len(labels) - labels.count(IGNORE_INDEX)
        head = labels[:split]
        head_trained = len(head) - head.count(IGNORE_INDEX)
        total += len(ids)
        trained += row_trained
        prompt_tokens += split
        prompt_trained += head_trained
        completion_tokens += len(ids) - split
        completion_trained += row_trained - head_trained
        end = last_stop_position(ids, stops, pad, start=split)
        if end is not None:
            ends_eos += 1
            eos_trained += labels[end] != IGNORE_INDEX
        else:
            cut += max_length is not None and len(ids) >= max_length
        bos_first += bool(ids) and ids[0] == bos
    examples = len(prepared)
    return {
        "examples": examples,
        "tokens": total,
        "trained_tokens": trained,
        "trained_fraction": round(trained / total, 6) if total else 0.0,
        "prompt_tokens": prompt_tokens,
        "prompt_tokens_trained_count": prompt_trained,
        "prompt_tokens_trained": prompt_trained > 0,
        "completion_tokens": completion_tokens,
        "completion_tokens_trained_count": completion_trained,
        "examples_ending_with_eos": ends_eos,
        "eos_trained_count": eos_trained,
        "eos_trained": ends_eos > 0 and eos_trained == ends_eos,
        "examples_without_stop_at_max_length": cut,
        "bos_at_start_count": bos_first,
        "bos_at_start": examples > 0 and bos_first == examples,
    }


def completion_only_loss(m: Materialized) -> dict[str, Any]:
    """The effective completion_only_loss as TRL resolves it, with where it comes from."""
    not_applicable = m.recipe.provenance.get("training.completion_only_loss", "")
    if not_applicable.startswith(NOT_APPLICABLE):
        # a captured SFTConfig of a TRL without the field: its labels say what was trained (prompt_tokens_trained)
        return {"configured": None, "effective": None, "provenance": not_applicable}
    raw = m.sft_config.completion_only_loss
    effective = resolve_completion_only_loss(m.sft_config, m.sample_rows[0])
    if "completion_only_loss" in m.recipe.training:
        provenance = f"set by recipe ({m.recipe.provenance.get('training.completion_only_loss', 'recipe')})"
    else:
        kind = "prompt/completion" if m.trl_format.startswith("prompt_completion") else m.trl_format
        provenance = f"TRL default (SFTConfig.completion_only_loss={raw!r}, resolved {raw!r}->{effective} for {kind} data)"
    return {"configured": raw, "effective": effective, "provenance": provenance}


def example_view(m: Materialized, row: dict[str, Any]) -> list[list[Any]]:
    """[[token string, trained], ...] for one raw row through the recipe's pipeline (for a captured recipe: its
    captured example or a labelled stand-in, see `shared_examples`; trained is None where the capture cannot say
    which tokens carry loss)."""
    example = m.shared_examples([row])[0]
    tokens = m.tokenizer.convert_ids_to_tokens(example.input_ids)
    labels = example.labels if example.labels is not None else [None] * len(tokens)
    return [
        [token, None if label is None else label != IGNORE_INDEX]
        for token, label in zip(tokens, labels, strict=True)
    ]


@measurement("loss_mask")
def measure(m: Materialized) -> dict[str, Any]:
    """Trained-token statistics and the effective completion_only_loss over the tokenized sample."""
    stats = mask_stats(m)
    col = completion_only_loss(m)
    return {
        **stats,
        "completion_only_loss": col["effective"],
        "completion_only_loss_configured": col["configured"],
        "completion_only_loss_provenance": col["provenance"],
        "fields": {name: getattr(m.sft_config, name) for name in _owned_fields()},
    }


def _owned_fields() -> list[str]:
    """SFTConfig fields this probe reports (besides completion_only_loss)."""
    return sorted(n for n in probe_fields(AXIS) if n != "completion_only_loss")


def _evidence(va: dict, vb: dict) -> dict[str, Any]:
    keys = (
        "trained_fraction",
        "trained_tokens",
        "tokens",
        "prompt_tokens",
        "prompt_tokens_trained_count",
        "examples",
    )
    return side_values(va, vb, keys)


@PROBES.register("loss_mask")
def probe(a: Materialized, b: Materialized, ctx: ProbeContext) -> ProbeResult:
    """Trained-token fractions, prompt/EOS/BOS handling and the effective completion_only_loss of both recipes."""
    with frozen_clock(CLOCKS[0]):
        return compare(a, b, measure(a), measure(b), ctx)


def compare(a: Materialized, b: Materialized, va: dict, vb: dict, ctx: ProbeContext) -> ProbeResult:
    """Findings and pair values from the two recipes' measurements."""
    row = a.raw.train[ctx.show_example]
    example = {"a": example_view(a, row), "b": example_view(b, row)}  # at probe()'s frozen clock
    name_a, name_b = pair_names(a.recipe.name, b.recipe.name)
    findings = []
    if va["completion_only_loss"] != vb["completion_only_loss"] and None not in (
        va["completion_only_loss"],
        vb["completion_only_loss"],
    ):
        findings.append(
            make_finding(
                "training.completion_only_loss",
                field_severity("completion_only_loss"),
                va["completion_only_loss"],
                vb["completion_only_loss"],
                f"effective completion_only_loss differs: {name_a} {va['completion_only_loss']} "
                f"({va['completion_only_loss_provenance']}), {name_b} {vb['completion_only_loss']} "
                f"({vb['completion_only_loss_provenance']})",
                {
                    "a_configured": va["completion_only_loss_configured"],
                    "b_configured": vb["completion_only_loss_configured"],
                    **_evidence(va, vb),
                },
                align=field_axis("completion_only_loss"),
            )
        )
    if va["prompt_tokens_trained"] != vb["prompt_tokens_trained"]:
        trains = name_a if va["prompt_tokens_trained"] else name_b
        other = name_b if va["prompt_tokens_trained"] else name_a
        findings.append(
            make_finding(
                "loss_mask.prompt_tokens_trained",
                "high",
                va["prompt_tokens_trained"],
                vb["prompt_tokens_trained"],
                f"{trains} trains on prompt tokens, {other} does not: trained fraction "
                f"{va['trained_fraction']:.4f} vs {vb['trained_fraction']:.4f} "
                f"({va['trained_tokens']}/{va['tokens']} vs {vb['trained_tokens']}/{vb['tokens']} tokens)",
                _evidence(va, vb),
            )
        )
    if va["eos_trained"] != vb["eos_trained"]:
        cut = stops_cut_by_truncation(va, vb)
        findings.append(
            make_finding(
                "loss_mask.eos_trained",
                "info" if cut else "high",
                va["eos_trained"],
                vb["eos_trained"],
                f"the end-of-turn stop id carries loss in {name_a if va['eos_trained'] else name_b} only"
                + (TRUNCATION_NOTE if cut else ""),
                side_values(va, vb, ("examples_ending_with_eos", "eos_trained_count", "examples")),
                align="tokens"
                if cut
                else "template"
                if a.tokenizer.chat_template != b.tokenizer.chat_template
                else AXIS,
            )
        )
    if va["bos_at_start"] != vb["bos_at_start"]:
        findings.append(
            make_finding(
                "loss_mask.bos",
                "medium",
                va["bos_at_start"],
                vb["bos_at_start"],
                f"sequences start with BOS in {name_a if va['bos_at_start'] else name_b} only",
                {"a_count": va["bos_at_start_count"], "b_count": vb["bos_at_start_count"]},
                align="template",
            )
        )
    for name in _owned_fields():
        if va["fields"][name] != vb["fields"][name]:
            findings.append(
                make_finding(
                    f"training.{name}",
                    field_severity(name),
                    va["fields"][name],
                    vb["fields"][name],
                    f"{name} differs: {name_a} {va['fields'][name]!r}, {name_b} {vb['fields'][name]!r}",
                    align=field_axis(name),
                )
            )
    values = {
        "a": va,
        "b": vb,
        "example_index": ctx.show_example,
        "example": example,
        "example_source": {
            "a": a.shared_examples([row])[0].evidence(),
            "b": b.shared_examples([row])[0].evidence(),
        },
    }
    return ProbeResult(findings=findings, values=plain(values))
