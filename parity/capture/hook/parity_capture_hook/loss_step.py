"""The trainer's own first optimizer step, run on the stand-in model (`--train-step`): the gradient that reaches each
trained token's logits gives the weight the trainer's loop gives that token, whatever reduces the loss (the model's
loss function, the trainer's division by the accumulation steps, accelerate's backward); written to loss_step.json.

A token at position t predicting label y gets d(backward loss)/d(logits[t]) = w * (softmax(logits[t]) - onehot(y)),
so w = grad[t, y] / (p[t, y] - 1). A model that returns the labels' log-probabilities instead of logits
(transformers 5's fused LM head, which TRL's SFTTrainer asks for) gives w = -d(backward loss)/d(log_probs[t])."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from typing import Any

from parity_capture_hook import state

IGNORE_INDEX = -100
ONE_STEP = {
    "max_steps": 1,
    "logging_steps": 1,
    "logging_strategy": "steps",
    "save_strategy": "no",
    "eval_strategy": "no",
    "evaluation_strategy": "no",
    "load_best_model_at_end": False,
    "push_to_hub": False,
    "report_to": [],
}
"""Training arguments changed for the measured step: one optimizer step, logged, nothing saved or evaluated."""


def _one_step_arguments(args: Any) -> None:
    names = {field.name for field in dataclasses.fields(args)}
    for name, value in ONE_STEP.items():
        if name in names:
            current = getattr(args, name)
            if isinstance(value, str) and isinstance(current, enum.Enum):
                value = type(current)(
                    value
                )  # the enum the arguments hold (IntervalStrategy, SaveStrategy, ...)
            setattr(args, name, value)


def _row_weights(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Per row of one micro-batch: trained tokens, the mean, smallest and largest token weight and the mean loss."""
    if "log_probs_grad" in record:
        return [
            _row(-grad[mask], -log_probs[mask])
            for grad, log_probs, mask in zip(
                record["log_probs_grad"].float(),
                record["log_probs"].float(),
                record["label_mask"].bool(),
                strict=True,
            )
        ]
    import torch

    labels, logits, grad = record["labels"], record["logits"].float(), record["grad"].float()
    rows = []
    for b in range(labels.shape[0]):
        targets = labels[b, 1:]
        positions = (targets != IGNORE_INDEX).nonzero().flatten()
        y = targets[positions]
        p = torch.softmax(logits[b, positions], dim=-1).gather(1, y[:, None]).flatten()
        weights = grad[b, positions].gather(1, y[:, None]).flatten() / (p - 1)
        rows.append(_row(weights, -p.log()))
    return rows


def _row(weights: Any, losses: Any) -> dict[str, Any]:
    if weights.numel() == 0:
        return {"trained_tokens": 0, "token_weight": None}
    return {
        "trained_tokens": int(weights.numel()),
        "token_weight": float(weights.mean()),
        "token_weight_min": float(weights.min()),
        "token_weight_max": float(weights.max()),
        "loss": float(losses.mean()),
    }


def _number(value: Any) -> int | None:
    return int(value) if value is not None else None


def measure(trainer: Any) -> dict[str, Any]:
    """Run one optimizer step of `trainer.train()` and return, per micro-batch, the num_items_in_batch the loop
    handed the trainer's compute_loss and the model's forward, and what each trained token weighs in the gradient."""
    model = trainer.model
    head = model.get_output_embeddings()
    if head is None:
        return {"measured": False, "reason": "the model has no output embeddings to read the logits from"}
    records: list[dict[str, Any]] = []
    compute_loss = trainer.compute_loss
    parameters = inspect.signature(compute_loss).parameters

    def recording_compute_loss(*args: Any, **kwargs: Any) -> Any:
        bound = inspect.signature(compute_loss).bind_partial(*args, **kwargs).arguments
        labels = (bound.get("inputs") or {}).get("labels")
        records.append(
            {
                "num_items_in_batch_passed": "num_items_in_batch" in bound,
                "num_items_in_batch": _number(bound.get("num_items_in_batch")),
                "labels": labels.detach().cpu() if labels is not None else None,
            }
        )
        return compute_loss(*args, **kwargs)

    def before_forward(module: Any, args: tuple, kwargs: dict) -> None:
        if not records or "model_num_items_in_batch" in records[-1]:
            records.append({"num_items_in_batch_passed": None, "num_items_in_batch": None, "labels": None})
        record = records[-1]
        record["model_num_items_in_batch"] = _number(kwargs.get("num_items_in_batch"))
        if record["labels"] is None and kwargs.get("labels") is not None:
            record["labels"] = kwargs["labels"].detach().cpu()

    def after_forward(module: Any, args: tuple, kwargs: dict, output: Any) -> None:
        log_probs, mask = getattr(output, "log_probs", None), getattr(output, "label_mask", None)
        if records and log_probs is not None and mask is not None and log_probs.requires_grad:
            record = records[-1]
            record.update(log_probs=log_probs.detach().cpu(), label_mask=mask.detach().cpu())
            log_probs.register_hook(lambda grad: record.__setitem__("log_probs_grad", grad.detach().cpu()))

    def after_head(module: Any, inputs: tuple, output: Any) -> None:
        if not records or "logits" in records[-1] or not getattr(output, "requires_grad", False):
            return
        record = records[-1]
        record["logits"] = output.detach().cpu()
        output.register_hook(lambda grad: record.__setitem__("grad", grad.detach().cpu()))

    if "inputs" in parameters:
        trainer.compute_loss = recording_compute_loss
    hooks = [
        model.register_forward_pre_hook(before_forward, with_kwargs=True),
        model.register_forward_hook(after_forward, with_kwargs=True),
        head.register_forward_hook(after_head),
    ]
    _one_step_arguments(trainer.args)
    if hasattr(trainer, "create_accelerator_and_postprocess"):
        # writing the capture built the arguments' class at its defaults, whose device set-up resets accelerate's
        # shared state: the trainer's own method builds its accelerator again, as its __init__ did
        trainer.create_accelerator_and_postprocess()
    try:
        trainer.train()
    finally:
        for hook in hooks:
            hook.remove()
        trainer.__dict__.pop("compute_loss", None)
    logged = next((entry["loss"] for entry in trainer.state.log_history if "loss" in entry), None)
    micro_batches = []
    for record in records:
        if "log_probs_grad" not in record and (record["labels"] is None or "grad" not in record):
            return {"measured": False, "reason": "no labels or no logits gradient reached for a micro-batch"}
        micro_batches.append(
            {
                "num_items_in_batch_passed": record["num_items_in_batch_passed"],
                "num_items_in_batch": record["num_items_in_batch"],
                "model_num_items_in_batch": record.get("model_num_items_in_batch"),
                "rows": _row_weights(record),
            }
        )
    return {
        "measured": True,
        "accumulation": trainer.args.gradient_accumulation_steps,
        "per_device_train_batch_size": trainer.args.per_device_train_batch_size,
        "micro_batches": micro_batches,
        "logged_loss": logged,
    }


def write(trainer: Any) -> None:
    """loss_step.json: the measured step, or why it could not be measured (the capture itself stands)."""
    try:
        result = measure(trainer)
    except Exception as err:  # noqa: BLE001 - a step the stand-in cannot run is "not measured", not a failed capture
        first_line = (str(err).strip().splitlines() or [""])[0][:300]
        result = {
            "measured": False,
            "reason": f"the trainer's step raised {type(err).__name__}: {first_line}",
        }
    state.write_json("loss_step.json", result)
