"""Class probabilities from a model over uint8 faces, with test-time augmentation (TTA) and temperature."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from fer_models.data import render, view_thetas
from fer_models.inference.calibration import temperature_of, tta_probs


@torch.no_grad()
def predict_view_logits(
    model: nn.Module,
    images: Tensor,
    input_size: int,
    in_chans: int,
    tta: str = "none",
    batch_size: int = 512,
    amp_dtype: torch.dtype | None = None,
) -> Tensor:
    """Logits [V, N, C] (float32, on the CPU) for uint8 faces [N, H, W], one row per TTA view (``none``: 1,
    ``flip``: 2, ``ten-crop``: 10). Runs on the device of ``model``'s parameters."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        views = view_thetas(len(batch), tta, input_size, images.shape[-1], device)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out.append(
                torch.stack([model(render(batch, theta, input_size, in_chans)).float().cpu() for theta in views])
            )
    model.train(was_training)
    return torch.cat(out, 1) if out else torch.zeros((1, 0, 0))


def predict_proba(
    model: nn.Module,
    images: Tensor,
    input_size: int,
    in_chans: int,
    tta: str = "none",
    batch_size: int = 512,
    amp_dtype: torch.dtype | None = None,
    temperature: float = 1.0,
) -> np.ndarray:
    """Softmax probabilities [N, C] for uint8 faces [N, H, W], of the logits divided by ``temperature``,
    averaged over the TTA views (``none``, ``flip`` or ``ten-crop``)."""
    logits = predict_view_logits(model, images, input_size, in_chans, tta, batch_size, amp_dtype)
    if logits.numel() == 0:
        return np.zeros((0, 0), np.float32)
    return tta_probs(logits, temperature).numpy()


def checkpoint_proba(
    model: nn.Module, meta: dict, images: Tensor, tta: str, batch_size: int = 512, amp_dtype: torch.dtype | None = None
) -> np.ndarray:
    """:func:`predict_proba` of a loaded checkpoint: its input size, channels and calibration temperature."""
    return predict_proba(
        model, images, meta["input_size"], meta["in_chans"], tta, batch_size, amp_dtype, temperature_of(meta, tta)
    )
