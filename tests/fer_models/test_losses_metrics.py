"""Losses and metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_models.evaluation.metrics import classification_metrics, top_k_accuracy
from fer_models.losses import build_loss, class_weights, list_losses, register_loss
from fer_synth.core.errors import FerError


def test_metrics_by_hand():
    # 3 classes used of 7; labels and predictions chosen so every number can be checked by hand.
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    probs = np.full((6, 7), 0.01)
    probs[np.arange(6), predicted] = 0.85
    probs[2, 0] = 0.05  # row 2 (true angry, predicted disgust): truth is its 3rd choice (after fear's 0.06)
    probs[2, 2] = 0.06
    probs[4, 1] = 0.09  # row 4 (true disgust, predicted fear): truth is its 2nd choice
    m = classification_metrics(probs, labels)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # recalls: angry 2/3, disgust 1/2, fear 1/1 -> balanced accuracy over present classes
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # precisions: angry 2/2, disgust 1/2, fear 1/2
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 2 * 0.5 * 0.5 / 1.0, 2 * 0.5 * 1 / 1.5]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["per_class"]["disgust"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["happy"]["support"] == 0
    assert m["confusion"][0][:3] == [2, 1, 0] and m["confusion"][1][:3] == [0, 1, 1]
    assert m["top2_accuracy"] == pytest.approx(5 / 6)
    assert m["top3_accuracy"] == 1.0
    assert m["nll"] == pytest.approx(-(4 * math.log(0.85) + math.log(0.05) + math.log(0.09)) / 6)


def test_top_k():
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6]])
    assert top_k_accuracy(probs, np.array([1, 1]), 1) == 0.0
    assert top_k_accuracy(probs, np.array([1, 1]), 2) == 1.0
    assert top_k_accuracy(probs, np.array([2, 0]), 2) == 0.0


def test_class_weights():
    counts = torch.tensor([10, 30, 60])
    assert torch.allclose(class_weights(counts, "balanced"), torch.tensor([100 / 30, 100 / 90, 100 / 180]))
    assert torch.allclose(class_weights(counts, "sqrt") ** 2, class_weights(counts, "balanced"))
    assert class_weights(counts, "none") is None
    with pytest.raises(FerError, match="class weighting"):
        class_weights(counts, "inverse-cube")


def test_losses():
    logits = torch.randn(8, 7, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 7
    w = torch.linspace(0.5, 2.0, 7)
    ce = build_loss("ce", class_weights=w, label_smoothing=0.1)
    assert ce(logits, y) == pytest.approx(F.cross_entropy(logits, y, weight=w, label_smoothing=0.1).item())
    # Focal with gamma 0 is cross-entropy, also weighted and with soft targets.
    assert build_loss("focal", gamma=0.0)(logits, y) == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert build_loss("focal", gamma=0.0, class_weights=w)(logits, y) == pytest.approx(
        F.cross_entropy(logits, y, weight=w).item(), rel=1e-5
    )
    soft = F.one_hot(y, 7).float() * 0.7 + F.one_hot((y + 1) % 7, 7).float() * 0.3
    assert build_loss("focal", gamma=0.0)(logits, soft) == pytest.approx(F.cross_entropy(logits, soft).item(), rel=1e-5)
    # Focusing lowers the loss of easy examples the most.
    assert build_loss("focal", gamma=2.0)(logits, y) < build_loss("ce")(logits, y)
    with pytest.raises(FerError, match="unknown loss"):
        build_loss("hinge")


def test_register_loss_gets_the_model():
    seen = {}

    @register_loss("test-l2-logits")
    def _builder(*, class_weights=None, label_smoothing=0.0, model=None, scale=1.0):
        seen["model"] = model
        return torch.nn.Module()

    model = torch.nn.Linear(2, 2)
    build_loss("test-l2-logits", model=model, scale=2.0)
    assert seen["model"] is model and "test-l2-logits" in list_losses()
    with pytest.raises(ValueError, match="twice"):
        register_loss("ce")(_builder)
