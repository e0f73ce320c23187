"""End-of-run evaluation: greedy generation on held-out questions and the extractor cross matrix.

Each leg answers with its own eval prompt; every answer is scored by both recipes' extractors.
"""

from __future__ import annotations

from typing import Any

from parity.data.pipeline import eval_text
from parity.spec import Recipe
from parity.tasks import gold_answer

__all__ = ["cross_matrix", "eval_prompt", "eval_text", "generate", "score"]


def eval_prompt(recipe: Recipe, row: dict[str, Any], tokenizer: Any) -> str:
    """The eval prompt for one raw row as the model sees it: chat-templated when the recipe's harness applies the
    template."""
    text = eval_text(recipe, row)
    if recipe.eval.apply_chat_template and tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
        )
    return text


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int,
    batch_size: int,
    chat: bool,
    remap: Any = None,
) -> list[str]:
    """Greedy completions (new tokens only, special tokens dropped), left-padded batches. With a proxy model's
    `remap` (`parity.run.proxy.Remap`), prompts go in as proxy rows and new tokens come back as real ids."""
    import copy

    import torch

    if not prompts:
        return []
    tok = copy.copy(tokenizer)
    tok.padding_side = "left"
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tok(
                prompts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=not chat,
            )
            input_ids = batch["input_ids"] if remap is None else remap.to_proxy(batch["input_ids"])
            pad_id, eos_id = tok.pad_token_id, tok.eos_token_id
            if remap is not None:
                pad_id, eos_id = remap.row(pad_id), remap.row(eos_id)
            with torch.no_grad():
                generated = model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=pad_id,
                    eos_token_id=eos_id,
                )
            new_tokens = generated[:, input_ids.shape[1] :]
            if remap is not None:
                new_tokens = remap.to_real(new_tokens.cpu())
            outputs.extend(tok.batch_decode(new_tokens, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return outputs


def score(outputs: list[str], raw_answers: list[str], recipe: Recipe) -> dict[str, Any]:
    """Accuracy of one leg's outputs under one recipe's extractor, per mode the recipe defines (gold answers read
    from the reference completions by the recipe's gold rule, see parity.tasks)."""
    from parity.probes.answer import answers_match, extract_answer

    spec = recipe.eval
    result: dict[str, Any] = {}
    for mode, pattern in (("strict", spec.strict_regex), ("flexible", spec.flexible_regex)):
        if not pattern:
            continue
        preds = [extract_answer(text, spec, mode) for text in outputs]
        correct = [
            answers_match(p, gold_answer(recipe, raw), spec)
            for p, raw in zip(preds, raw_answers, strict=True)
        ]
        result[mode] = {
            "accuracy": round(sum(correct) / len(correct), 6) if correct else None,
            "correct": sum(correct),
            "extracted": sum(p is not None for p in preds),
            "n": len(correct),
        }
    return result


def cross_matrix(generations: dict[str, list[dict]], recipes: dict[str, Recipe]) -> dict[str, dict[str, Any]]:
    """matrix[model leg][extractor leg] = scores of that leg's outputs under that recipe's extractor."""
    matrix: dict[str, dict[str, Any]] = {}
    for leg, rows in generations.items():
        outputs = [r["output"] for r in rows]
        raws = [r["gold_raw"] for r in rows]
        matrix[leg] = {ext: score(outputs, raws, recipes[ext]) for ext in recipes}
    return matrix
