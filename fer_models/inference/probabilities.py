"""Class probabilities from a model over uint8 faces, with test-time augmentation (TTA)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from fer_models.data import render, view_thetas


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    images: Tensor,
    input_size: int,
    in_chans: int,
    tta: str = "none",
    batch_size: int = 512,
    amp_dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Softmax probabilities [N, C] for uint8 faces [N, H, W], averaged over the TTA views
    (``none``, ``flip`` or ``ten-crop``). Runs on the device of ``model``'s parameters."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device)
        probs = 0
        views = view_thetas(len(batch), tta, input_size, images.shape[-1], device)
        for theta in views:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(render(batch, theta, input_size, in_chans))
            probs = probs + logits.float().softmax(-1)
        out.append((probs / len(views)).cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)
