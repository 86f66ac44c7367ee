"""Classification metrics on predicted probabilities: accuracy, balanced accuracy, macro-F1, per-class
precision/recall/F1, top-k accuracy and the confusion matrix (rows: true class, columns: predicted)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fer_synth.core.classes import CLASSES


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = len(CLASSES)) -> np.ndarray:
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support per class; 0 where undefined (no predictions / no rows)."""
    tp = np.diag(confusion).astype(float)
    predicted, support = confusion.sum(0), confusion.sum(1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return float((top == labels[:, None]).any(1).mean()) if len(labels) else 0.0


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes: Sequence[str] = CLASSES) -> dict:
    """Everything a FER report shows, as plain JSON-able values; ``classes`` names the columns of ``probs``.

    Balanced accuracy and macro-F1 average over the classes present in ``labels`` (a class with no rows has
    no recall to average).
    """
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.int64)
    if len(probs) and probs.shape[1] != len(classes):
        raise ValueError(f"probabilities of {probs.shape[1]} classes, but {len(classes)} class names")
    predictions = probs.argmax(1)
    confusion = confusion_matrix(labels, predictions, len(classes))
    pc = per_class(confusion)
    present = pc["support"] > 0
    n = len(labels)
    nll = float(-np.log(np.clip(probs[np.arange(n), labels], 1e-12, None)).mean()) if n else 0.0
    return {
        "n": n,
        "accuracy": float((predictions == labels).mean()) if n else 0.0,
        "balanced_accuracy": float(pc["recall"][present].mean()) if present.any() else 0.0,
        "macro_f1": float(pc["f1"][present].mean()) if present.any() else 0.0,
        "top2_accuracy": top_k_accuracy(probs, labels, 2),
        "top3_accuracy": top_k_accuracy(probs, labels, 3),
        "nll": nll,
        "ece": expected_calibration_error(probs, labels),
        "per_class": {
            c: {
                "precision": float(pc["precision"][i]),
                "recall": float(pc["recall"][i]),
                "f1": float(pc["f1"][i]),
                "support": int(pc["support"][i]),
            }
            for i, c in enumerate(classes)
        },
        "confusion": confusion.tolist(),
    }


ECE_BINS = 15


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE (Naeini et al. 2015; Guo et al. 2017): the confidence-weighted gap between confidence and accuracy,
    over ``bins`` equal-width bins of the top-class probability. 0 is perfect."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            gap += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(gap)
