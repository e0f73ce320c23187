"""Training throughput of a leg: tokens per second, and model FLOPs utilization (MFU) on GPUs with a known peak.
Pure arithmetic on counts the leg measured (tokens, examples, seconds, parameters); `throughput` is the entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PEAK_BF16_TFLOPS = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100", 989.4),
    ("A100", 312.0),
    ("L40S", 362.05),
    ("L4", 121.0),
)
"""Dense bf16 tensor-core peak per GPU (NVIDIA data sheets), matched as a substring of the device name in order
(the first match wins: 'NVIDIA H100 PCIe' is the PCIe card, any other H100 the SXM one)."""


@dataclass(frozen=True)
class ModelShape:
    """What the FLOPs count needs from a model."""

    parameters: int
    trainable: int
    layers: int
    hidden: int


def model_shape(model: Any) -> ModelShape:
    """Parameter counts (all, trainable) and depth/width of a transformers model (PEFT-wrapped or not)."""
    config = model.config
    return ModelShape(
        parameters=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        layers=int(config.num_hidden_layers),
        hidden=int(config.hidden_size),
    )


def flops_per_token(shape: ModelShape, sequence_length: float) -> float:
    """Model FLOPs of one trained token, PaLM's accounting (appendix B): 2N forward, 2N backward through the
    activations, 2N' weight gradients of the N' trainable parameters (N' = N in full fine-tuning; LoRA skips the
    frozen weights), plus 12 x layers x hidden x sequence length for the attention scores. Recomputation
    (gradient checkpointing) is not model FLOPs: MFU counts the work the model needs, not what kernels redo."""
    dense = 4 * shape.parameters + 2 * shape.trainable
    return dense + 12 * shape.layers * shape.hidden * sequence_length


def peak_tflops(device_name: str | None) -> float | None:
    """Dense bf16 peak of one device, or None (CPU, or a GPU this table does not know)."""
    if not device_name:
        return None
    return next((peak for name, peak in PEAK_BF16_TFLOPS if name in device_name), None)


def throughput(
    tokens: int,
    examples: int,
    seconds: float,
    shape: ModelShape,
    devices: int = 1,
    device_name: str | None = None,
) -> dict[str, Any]:
    """tokens/s over the training loop and, with a known peak, MFU = achieved model FLOPs / (devices x peak).

    `tokens` are every token the model was fed (padding excluded), `examples` the rows they came in: their ratio
    is the mean sequence length of the attention term."""
    per_second = tokens / seconds if seconds > 0 else None
    sequence = tokens / examples if examples else 0.0
    per_token = flops_per_token(shape, sequence)
    peak = peak_tflops(device_name)
    mfu = None
    if per_second is not None and peak is not None and devices > 0:
        mfu = per_second * per_token / (devices * peak * 1e12)
    return {
        "tokens": tokens,
        "seconds": round(seconds, 3),
        "tokens_per_second": None if per_second is None else round(per_second, 2),
        "mean_sequence_length": round(sequence, 2),
        "model_flops_per_token": per_token,
        "parameters": shape.parameters,
        "trainable_parameters": shape.trainable,
        "device": device_name or "cpu",
        "devices": devices,
        "peak_tflops_per_device": peak,
        "mfu": None if mfu is None else round(mfu, 4),
    }
