"""Mixed precision and memory layout: which autocast dtype and layout a device trains (and predicts) fastest in.

``--amp auto`` means bf16 autocast on CUDA, and on a CPU whose oneDNN has native bf16 kernels (AVX512-BF16 or
AMX: recent Xeon and EPYC); elsewhere float32. On such a CPU the network also runs in ``channels_last``
layout, which oneDNN's bf16 convolutions want: measured with ``python bench/cpu_training_speed.py``, bf16 +
channels_last trains the project's CNNs about 3x faster than float32 and reaches the same accuracy.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

AMP_MODES: tuple[str, ...] = ("auto", "none", "bf16", "fp16")


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (oneDNN's test: AVX512-BF16 or AMX), not by emulation."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` (one of :data:`AMP_MODES`) on ``device``; None means float32.

    ``auto``: bf16 on CUDA and on CPUs with native bf16, else float32. ``bf16``: bf16 wherever asked (emulated,
    so slow, on a CPU without it: a warning says so). ``fp16``: CUDA only (a CPU falls back to float32, warned).
    """
    device = torch.device(device)
    if amp == "none":
        return None
    if device.type == "cuda":
        return torch.float16 if amp == "fp16" else torch.bfloat16
    if device.type == "cpu":
        if amp == "auto":
            return torch.bfloat16 if cpu_has_native_bf16() else None
        if amp == "bf16":
            if not cpu_has_native_bf16():
                logger.warning("--amp bf16: this CPU has no native bf16 (AVX512-BF16/AMX); it is emulated and slow")
            return torch.bfloat16
    if amp != "auto":
        logger.warning(f"--amp {amp} is not supported on {device}; running in float32")
    return None


def uses_channels_last(dtype: torch.dtype | None, device: torch.device) -> bool:
    """Whether to run convolutions in ``channels_last``: for bf16 on a CPU (oneDNN's fast path)."""
    return dtype == torch.bfloat16 and torch.device(device).type == "cpu"


def to_layout(model: nn.Module, channels_last: bool) -> nn.Module:
    """``model`` with its 4-d weights in ``channels_last`` when asked (a convolution then picks that layout for
    its output, so inputs need not change); other parameters are untouched."""
    return model.to(memory_format=torch.channels_last) if channels_last else model
