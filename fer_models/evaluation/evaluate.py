"""Evaluate a checkpoint or an ensemble file on one split: metrics without and with TTA, real vs synthetic.

The report (a JSON-able dict) holds accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1,
top-2/top-3 accuracy and the confusion matrix, for all rows and separately for real and synthetic rows. A
split holding synthetic rows is flagged loudly: such a number is not a FER2013 result.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from fer_models import checkpoint as ckpt
from fer_models.data import TensorSplit, check_tta, load_split
from fer_models.evaluation.ensemble import load_ensemble, member_probs
from fer_models.evaluation.metrics import classification_metrics
from fer_models.inference.probabilities import predict_proba
from fer_synth.core import store
from fer_synth.core.atomic import atomic_file
from fer_synth.core.classes import CLASSES
from fer_synth.core.dataset import SYNTHETIC
from fer_synth.core.errors import SplitNotFoundError
from fer_synth.core.outputs import make_dir
from fer_synth.ui.plots import confusion_figure

MEMBERS_TTA = "members"  # an ensemble's members each with their own recipe's TTA


def predict_file(
    path: str | os.PathLike, split: TensorSplit, tta: str, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Probabilities of a checkpoint or an ensemble file on ``split`` with ``tta``."""
    meta = ckpt.read_meta(path)
    if meta["format"] == ckpt.ENSEMBLE_FORMAT:
        ensemble = load_ensemble(path)
        return ensemble.combine(member_probs(ensemble.members, split, None if tta == MEMBERS_TTA else tta, device))
    model, meta = ckpt.load_model(path, device)
    ckpt.check_classes(meta, split.classes, f"the {split.name} split")
    return predict_proba(model, split.images, meta["input_size"], meta["in_chans"], tta)


def evaluate(
    path: str | os.PathLike,
    data: str | os.PathLike,
    split: str = "test",
    tta: str | None = None,
    device: str | torch.device = "cpu",
    out: str | os.PathLike | None = None,
) -> dict:
    """Evaluate ``path`` (run folder, checkpoint or ensemble file) on ``split`` of ``data``.

    Reports no TTA and, unless ``tta`` is ``none``, the given TTA (default: the one the checkpoint's recipe
    names, else flip; for an ensemble, the one it was built with, else each member's own). Writes
    ``evaluation-<split>.json``, ``confusion-<split>.png`` and each row's probabilities (``evaluation-<split>.npz``)
    into ``out`` when given; an ensemble's file names start with its own (``<name>.``).
    """
    if tta is not None:
        check_tta(tta)
    if out is not None:
        make_dir(out)  # a place that cannot be written fails before the work
    meta = ckpt.read_meta(path)
    attrs = store.read_attrs(data)
    if split not in attrs["splits"]:
        raise SplitNotFoundError(f"{data}: no split {split!r}; it has {', '.join(attrs['splits'])}")
    default = MEMBERS_TTA if meta["format"] == ckpt.ENSEMBLE_FORMAT else "flip"
    tta = tta or meta.get("tta") or default
    evaluated = load_split(data, split, device)
    labels = evaluated.labels.cpu().numpy()
    synthetic = evaluated.source.cpu().numpy() == SYNTHETIC
    results = {}
    for mode in dict.fromkeys(("none", tta)):
        probs = predict_file(path, evaluated, mode, device)  # the last mode's stay for the predictions file
        results[mode] = {"all": classification_metrics(probs, labels, evaluated.classes)}
        if synthetic.any():
            results[mode]["real"] = classification_metrics(probs[~synthetic], labels[~synthetic], evaluated.classes)
            results[mode]["synthetic"] = classification_metrics(probs[synthetic], labels[synthetic], evaluated.classes)
    trained_on = meta.get("data", {}).get("fingerprint")
    report = {
        "checkpoint": meta["_path"],
        "kind": meta["format"],
        "model": meta.get("model", "ensemble"),
        "data": str(data),
        "data_path": str(Path(data).resolve()),
        "data_fingerprint": attrs.get("fingerprint"),
        "same_data_as_training": trained_on == attrs.get("fingerprint") if trained_on else None,
        "split": split,
        "n": len(labels),
        "n_synthetic": int(synthetic.sum()),
        "tta": tta,
        "classes": list(evaluated.classes),
        "results": results,
    }
    if out is not None:
        out = Path(out)
        prefix = output_prefix(meta)
        report["predictions_file"] = str(save_predictions(out / f"{prefix}evaluation-{split}.npz", probs, labels))
        report["report_file"] = str(ckpt.write_json(out / f"{prefix}evaluation-{split}.json", report))
        report["confusion_png"] = str(
            plot_confusion(
                out / f"{prefix}confusion-{split}.png",
                results[tta]["all"]["confusion"],
                f"{report['model']} on {split} (TTA {tta})",
                rows=list(evaluated.classes),
            )
        )
    return report


def output_prefix(meta: dict) -> str:
    """What evaluate's file names start with: nothing for a run (one model per folder), ``<name>.`` for an ensemble,
    since one folder often holds several ensemble files and their evaluations must not replace each other."""
    return f"{Path(meta['_path']).stem}." if meta["format"] == ckpt.ENSEMBLE_FORMAT else ""


def save_predictions(path: Path, probs: np.ndarray, labels: np.ndarray) -> Path:
    """Each row's class probabilities (with the report's TTA) and label, for reports that show faces."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, probs=probs.astype(np.float32), labels=labels.astype(np.int64))
    return path


def plot_confusion(
    path: Path,
    confusion: list[list[int]],
    title: str = "",
    rows: list[str] | None = None,
    columns: list[str] | None = None,
    axes: tuple[str, str] = ("predicted", "true"),
) -> Path:
    """The confusion matrix as a PNG: counts and row-normalised rates side by side. ``rows`` and ``columns``
    name the classes (default: FER2013's); ``axes`` names the x and y axes."""
    rows = list(rows or CLASSES)
    return confusion_figure(
        path, confusion, rows, title, true_label=axes[1], predicted_label=axes[0], columns=list(columns or rows)
    )


def load_predictions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N, C], labels [N]) from :func:`save_predictions`' file (plain arrays, no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        return data["probs"], data["labels"]
