"""Temperature scaling (Guo et al., ICML 2017, arXiv:1706.04599): one scalar T, fit on validation, that divides a
model's logits so that its probabilities mean what they say; and the expected calibration error that measures it.

A network trained with cross-entropy is typically over-confident: "p = 0.9" is right less than 90% of the time.
``balance --judged --min-prob P`` and every probability a user reads assume the opposite, so a checkpoint stores
the T that minimises the validation negative log-likelihood (with the test-time augmentation it is used with:
the probabilities of the views are averaged after scaling) and every prediction applies it. T changes no argmax:
accuracies are unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from fer_models.evaluation.metrics import expected_calibration_error

#: The search range of log T: T from 1/20 to 20.
LOG_T_RANGE = (-math.log(20), math.log(20))


def tta_probs(view_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Logits of the views [V, N, C] -> probabilities [N, C]: softmax of logits / T, averaged over the views."""
    return (view_logits.float() / temperature).softmax(-1).mean(0)


def nll(view_logits: Tensor, labels: Tensor, temperature: float) -> float:
    """Mean negative log-likelihood of the true labels under :func:`tta_probs`."""
    p = tta_probs(view_logits, temperature)[torch.arange(len(labels)), labels]
    return float(-p.clamp(min=1e-12).log().mean())


def fit_temperature(view_logits: Tensor, labels: Tensor, tolerance: float = 1e-4) -> float:
    """The T minimising :func:`nll` on (``view_logits`` [V, N, C], ``labels`` [N]): golden-section search over
    log T (the NLL of one temperature is unimodal in practice; deterministic, no learning rate to tune)."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    lo, hi = LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(view_logits, labels, math.exp(a)), nll(view_logits, labels, math.exp(b))
    while hi - lo > tolerance:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(view_logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(view_logits, labels, math.exp(b))
    return math.exp((lo + hi) / 2)


def temperature_of(meta: dict, tta: str) -> float:
    """The temperature a checkpoint's metadata stores for ``tta`` (1.0, i.e. none, for checkpoints without
    calibration)."""
    return float(meta.get("calibration", {}).get("temperature", {}).get(tta, 1.0))


def calibration_record(view_logits: dict[str, Tensor], labels: np.ndarray, split: str) -> dict:
    """What a checkpoint stores: per TTA mode, the temperature fit on ``split`` and the NLL and ECE before and
    after (``view_logits``: mode -> logits [V, N, C] of that split)."""
    labels_t = torch.as_tensor(labels, dtype=torch.int64)
    record: dict = {
        "method": "temperature scaling (Guo et al. 2017)",
        "fit_on": split,
        "n": len(labels),
        "temperature": {},
        "nll": {},
        "ece": {},
    }
    for tta, logits in view_logits.items():
        t = fit_temperature(logits, labels_t)
        record["temperature"][tta] = round(t, 4)
        record["nll"][tta] = {"before": nll(logits, labels_t, 1.0), "after": nll(logits, labels_t, t)}
        record["ece"][tta] = {
            "before": expected_calibration_error(tta_probs(logits).numpy(), labels),
            "after": expected_calibration_error(tta_probs(logits, t).numpy(), labels),
        }
    return record
