"""Evaluate a checkpoint or an ensemble file on one split: metrics without and with TTA, real vs synthetic.

The report (a JSON-able dict) holds accuracy, balanced accuracy, macro-F1, per-class precision/recall/F1,
top-2/top-3 accuracy and the confusion matrix, for all rows and separately for real and synthetic rows. A
split holding synthetic rows is flagged loudly: such a number is not a FER2013 result.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from fer_models import checkpoint as ckpt
from fer_models.data import TensorSplit, check_tta, load_scored_split
from fer_models.evaluation.ensemble import load_ensemble, member_probs
from fer_models.evaluation.metrics import classification_metrics
from fer_models.inference.class_mapping import ClassMapping, class_mapping
from fer_models.inference.probabilities import checkpoint_proba
from fer_synth.core import store
from fer_synth.core.atomic import atomic_file
from fer_synth.core.classes import CLASSES
from fer_synth.core.dataset import SYNTHETIC
from fer_synth.core.errors import OutputError, SplitNotFoundError
from fer_synth.core.images import printable
from fer_synth.core.outputs import make_dir, refuse_inputs, remove_stale_temps
from fer_synth.ui.plots import confusion_figure

logger = logging.getLogger(__name__)

MEMBERS_TTA = "members"  # an ensemble's members each with their own recipe's TTA


def predict_file(
    path: str | os.PathLike, split: TensorSplit, tta: str, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, ClassMapping]:
    """Probabilities of a checkpoint or an ensemble file on ``split`` with ``tta``, over the classes the model
    shares with the split (:mod:`fer_models.inference.class_mapping`), and that mapping."""
    meta = ckpt.read_meta(path)
    if meta["format"] == ckpt.ENSEMBLE_FORMAT:
        ensemble = load_ensemble(path)
        probs = ensemble.combine(member_probs(ensemble.members, split, None if tta == MEMBERS_TTA else tta, device))
        return probs, ClassMapping(tuple(split.classes), tuple(split.classes))
    model, meta = ckpt.load_model(path, device)
    mapping = class_mapping(meta["classes"], split.classes, meta["_path"], f"the {split.name} split")
    return mapping.probs(checkpoint_proba(model, meta, split.images, tta)), mapping


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
    into ``out`` when given; other than a run's ``best``, their names start with the checkpoint's (``<name>.``).
    """
    if tta is not None:
        check_tta(tta)
    meta = ckpt.read_meta(path)
    if out is not None:  # outputs over an input, or a place that cannot be written, fail before the work
        inputs = [*ckpt.input_files(path), data]
        for name in output_names(meta, split):
            refuse_inputs(Path(out) / name, inputs, "--out", beside=True)
        refuse_other_evaluation(Path(out) / output_names(meta, split)[1], meta["_path"])
        make_dir(out)
        for name in output_names(meta, split):
            remove_stale_temps(Path(out) / name)  # what a killed evaluate of the same files left
    attrs = store.read_attrs(data)
    if split not in attrs["splits"]:
        raise SplitNotFoundError(f"{data}: no split {split!r}; it has {', '.join(attrs['splits'])}")
    default = MEMBERS_TTA if meta["format"] == ckpt.ENSEMBLE_FORMAT else "flip"
    tta = tta or meta.get("tta") or default
    evaluated = load_scored_split(data, split, device)
    results = {}
    for mode in dict.fromkeys(("none", tta)):
        probs, mapping = predict_file(path, evaluated, mode, device)  # the last mode's stay for the predictions file
        # Rows labelled with a class the model does not predict cannot be scored: left out, and said so.
        kept, labels = mapping.rows(evaluated.labels.cpu().numpy())
        probs, synthetic, classes = probs[kept], evaluated.source.cpu().numpy()[kept] == SYNTHETIC, mapping.shared
        results[mode] = {"all": classification_metrics(probs, labels, classes)}
        if synthetic.any():
            results[mode]["real"] = classification_metrics(probs[~synthetic], labels[~synthetic], classes)
            results[mode]["synthetic"] = classification_metrics(probs[synthetic], labels[synthetic], classes)
    if not mapping.identity:
        logger.warning(f"{meta['_path']} on {split}: {mapping.note()} ({len(evaluated) - len(kept)} rows left out)")
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
        "classes": list(classes),
        "results": results,
    }
    if not mapping.identity:
        report["class_mapping"] = {
            **mapping.describe(),
            "note": mapping.note(),
            "rows_left_out": len(evaluated) - len(kept),
        }
    if out is not None:
        out = Path(out)
        npz, report_json, png = output_names(meta, split)
        report["predictions_file"] = str(save_predictions(out / npz, probs, labels, kept))
        # The report last: it is what marks an evaluation done (compare reuses one it finds), so a kill before it
        # leaves the evaluation to be made again, never a report without its confusion matrix.
        confusion = plot_confusion(
            out / png,
            results[tta]["all"]["confusion"],
            f"{report['model']} on {split} (TTA {tta})",
            rows=list(classes),
        )
        report["report_file"] = str(ckpt.write_json(out / report_json, report))
        report["confusion_png"] = str(confusion)
    return report


def is_evaluation_of(recorded: str, checkpoint: str | os.PathLike) -> bool:
    """Whether an evaluation report of the checkpoint ``recorded`` (its ``checkpoint`` field) is about
    ``checkpoint``: the same file; or, for a run folder moved or copied since, a file of the same name that is gone
    or holds the same bytes. Another run's ``best.json`` (``evaluate runs/a --out runs/b``) is not."""
    recorded_path, checkpoint = Path(recorded), Path(checkpoint)
    try:
        if os.path.samefile(recorded_path, checkpoint):
            return True
        return recorded_path.name == checkpoint.name and recorded_path.read_bytes() == checkpoint.read_bytes()
    except OSError:
        return not recorded_path.exists() and recorded_path.name == checkpoint.name


def refuse_other_evaluation(report_file: Path, checkpoint: str) -> None:
    """Raise when ``report_file`` is another checkpoint's evaluation (``evaluate runs/a --out runs/b`` over runs/b's
    own): replacing it would lose that evaluation, and the runs report would show a's numbers as b's."""
    try:
        recorded = json.loads(report_file.read_text())["checkpoint"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return  # absent, or damaged: nothing of value to keep
    if isinstance(recorded, str) and not is_evaluation_of(recorded, checkpoint):
        raise OutputError(
            f"{report_file} is the evaluation of {printable(recorded)}, not of {printable(checkpoint)}; choose "
            "another --out"
        )


def output_names(meta: dict, split: str) -> tuple[str, str, str]:
    """evaluate's files: the probabilities (.npz), the report (.json), the confusion matrix (.png). Their names start
    with nothing for a run's ``best`` checkpoint and a shipped model (the model of its folder), ``<name>.`` for any
    other checkpoint (``last.json``) or ensemble file, since one folder often holds several and their evaluations
    must not replace each other."""
    path = Path(meta["_path"])
    own = meta["format"] == ckpt.CHECKPOINT_FORMAT and (path.stem == "best" or ckpt.shipped_name(path))
    prefix = "" if own else f"{path.stem}."
    return f"{prefix}evaluation-{split}.npz", f"{prefix}evaluation-{split}.json", f"{prefix}confusion-{split}.png"


def save_predictions(path: Path, probs: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> Path:
    """Each scored row's class probabilities (with the report's TTA), label (into the report's classes) and row
    in the split, for reports that show faces."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f, probs=probs.astype(np.float32), labels=labels.astype(np.int64), rows=rows.astype(np.int64)
        )
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


def load_predictions(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities [N, C], labels [N], rows [N]) from :func:`save_predictions`' file (plain arrays, no pickle);
    ``rows`` index the split (files written before rows were recorded: every row, in order)."""
    with np.load(path, allow_pickle=False) as data:
        rows = data["rows"] if "rows" in data else np.arange(len(data["labels"]))
        return data["probs"], data["labels"], rows
