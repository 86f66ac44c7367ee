"""Ensembles of trained models: mean of softmax (default), weights fit on validation, majority vote.

An ensemble is saved as a JSON file (format ``fer-models-ensemble``) listing its member checkpoints and
weights; ``fer-models evaluate`` accepts it like a single checkpoint. Weights are fit on the val split only:
the test split is never looked at before the report.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_models import checkpoint as ckpt
from fer_models.data import TensorSplit, check_tta, data_identity, load_scored_split
from fer_models.evaluation.metrics import classification_metrics
from fer_models.inference.class_mapping import class_mapping
from fer_models.inference.probabilities import checkpoint_proba
from fer_models.models.builtin import shipped_name
from fer_synth.core.errors import FerError
from fer_synth.core.outputs import make_dir, refuse_existing_file, refuse_inputs, remove_stale_temps

logger = logging.getLogger(__name__)

METHODS: tuple[str, ...] = ("mean", "weighted", "vote")


@dataclass
class Ensemble:
    members: list[Path]  # checkpoint .json files
    weights: list[float]
    method: str = "mean"

    def combine(self, member_probs: list[np.ndarray]) -> np.ndarray:
        return combine(member_probs, self.weights, self.method)


def combine(member_probs: list[np.ndarray], weights: list[float] | None = None, method: str = "mean") -> np.ndarray:
    """Ensemble probabilities [N, C] from each member's [N, C].

    ``mean``/``weighted``: weighted mean of the probabilities. ``vote``: the (weighted) share of members
    voting for each class, ties broken by the mean probability.
    """
    if method not in METHODS:
        raise FerError(f"unknown ensemble method {method!r}; choose one of {', '.join(METHODS)}")
    stacked = np.stack(member_probs)  # [M, N, C]
    w = np.ones(len(stacked)) if weights is None else np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    mean = np.tensordot(w, stacked, axes=1)
    if method != "vote":
        return mean
    votes = np.zeros_like(mean)
    for weight, probs in zip(w, stacked):
        votes[np.arange(len(probs)), probs.argmax(1)] += weight
    # A tie-break small enough never to overturn a difference in votes (votes differ by >= min weight).
    return votes + mean * (w.min() * 1e-3)


def fit_weights(member_probs: list[np.ndarray], labels: np.ndarray, steps: int = 300) -> list[float]:
    """Non-negative weights summing to 1 that minimise the val NLL of the weighted mean of probabilities."""
    probs = torch.as_tensor(np.stack(member_probs), dtype=torch.float64)
    target = torch.as_tensor(labels, dtype=torch.long)
    logits = torch.zeros(len(member_probs), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([logits], lr=0.05)
    for _ in range(steps):
        w = logits.softmax(0)
        mixed = torch.einsum("m,mnc->nc", w, probs)
        nll = -mixed[torch.arange(len(target)), target].clamp(min=1e-12).log().mean()
        optimizer.zero_grad()
        nll.backward()
        optimizer.step()
    return logits.detach().softmax(0).tolist()


def member_probs(
    members: list[str | os.PathLike],
    split: TensorSplit,
    tta: str | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 512,
) -> list[np.ndarray]:
    """Each member's probabilities on ``split`` (each at its own input size; its own TTA when ``tta`` is None)."""
    out = []
    for member in members:
        model, meta = ckpt.load_model(member, device)
        mapping = class_mapping(meta["classes"], split.classes, meta["_path"], f"the {split.name} split")
        if mapping.unscorable:
            raise FerError(
                f"{meta['_path']} does not predict {', '.join(mapping.unscorable)}, which the {split.name} "
                "split has: every member of an ensemble must predict every class of the data"
            )
        if mapping.dropped:
            logger.info(f"{meta['_path']}: {mapping.note()}")
        out.append(mapping.probs(checkpoint_proba(model, meta, split.images, tta or meta["tta"], batch_size)))
    return out


def save_ensemble(path: str | os.PathLike, ensemble: Ensemble, info: dict | None = None) -> Path:
    """Write the ensemble file; member paths are stored relative to its folder when they lie below it."""
    path = Path(path)
    base = path.parent.resolve()

    def rel(p: Path) -> str:
        return shipped_name(p) or os.path.relpath(p.resolve(), base)

    doc = {
        "format": ckpt.ENSEMBLE_FORMAT,
        "format_version": ckpt.FORMAT_VERSION,
        "method": ensemble.method,
        "members": [{"checkpoint": rel(m), "weight": w} for m, w in zip(ensemble.members, ensemble.weights)],
        **(info or {}),
    }
    return ckpt.write_json(path, doc)


def _is_ensemble_file(path: str | os.PathLike) -> bool:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("format") == ckpt.ENSEMBLE_FORMAT


def load_ensemble(path: str | os.PathLike) -> Ensemble:
    meta = ckpt.read_meta(path)
    if meta["format"] != ckpt.ENSEMBLE_FORMAT:
        raise FerError(f"{path}: a single model's checkpoint, not an ensemble file")
    try:
        ensemble = Ensemble(
            ckpt.member_checkpoints(meta), [float(m["weight"]) for m in meta["members"]], meta["method"]
        )
    except (KeyError, TypeError, ValueError) as e:
        raise FerError(
            f"{path}: a damaged ensemble file (bad or missing {e}); build it again with `fer-models ensemble`"
        ) from None
    # Weights that are not a distribution would turn the mean into NaN or negative "probabilities", silently; an
    # unknown method would fail only once every member has run.
    if ensemble.method not in METHODS:
        problem = f"method {ensemble.method!r}, none of {', '.join(METHODS)}"
    elif not ensemble.members or not all(math.isfinite(w) and w >= 0 for w in ensemble.weights):
        problem = "no members" if not ensemble.members else f"weights {ensemble.weights}, not all finite and >= 0"
    elif sum(ensemble.weights) <= 0:
        problem = "weights that sum to 0"
    else:
        return ensemble
    raise FerError(f"{path}: a damaged ensemble file ({problem}); build it again with `fer-models ensemble`")


def build_ensemble(
    members: list[str | os.PathLike],
    data: str | os.PathLike,
    method: str = "mean",
    tta: str | None = None,
    out: str | os.PathLike | None = None,
    split: str = "test",
    device: str | torch.device = "cpu",
    overwrite: bool = False,
) -> dict:
    """Combine ``members``, fitting weights on val for ``weighted``; report each member and the ensemble
    side by side on ``split`` and save the ensemble file to ``out`` when given. An existing ``out`` is replaced
    when it is an earlier ensemble file (the same command again), anything else only with ``overwrite``."""
    if method not in METHODS:
        raise FerError(f"unknown ensemble method {method!r}; choose one of {', '.join(METHODS)}")
    if tta is not None:
        check_tta(tta)
    if len(members) < 2:
        raise FerError("an ensemble needs at least two members (run folders or checkpoints)")
    paths = [ckpt.resolve_checkpoint(m) for m in members]
    if out is not None:  # an output over an input, or a place that cannot be written, fails before the work
        refuse_inputs(out, [*(p for m in members for p in ckpt.input_files(m)), data])
        # An earlier ensemble file is replaced (the same command again); another file (a CSV, another run's
        # checkpoint JSON) is the user's, and replacing it is asked for explicitly.
        refuse_existing_file(out, overwrite=overwrite or _is_ensemble_file(out))
        make_dir(Path(out).parent)
        remove_stale_temps(out)  # what a killed ensemble of the same file left
    weights = [1.0 / len(paths)] * len(paths)
    fit = None
    if method == "weighted":
        val = load_scored_split(data, "val", device, "--method weighted fits its weights there: use --method mean")
        weights = fit_weights(member_probs(paths, val, tta, device), val.labels.cpu().numpy())
        fit = {"split": "val", "objective": "nll", "n": len(val)}
    ensemble = Ensemble(paths, weights, method)
    evaluated = load_scored_split(data, split, device)
    labels = evaluated.labels.cpu().numpy()
    probs = member_probs(paths, evaluated, tta, device)
    rows = [
        {"name": str(p), "weight": w, **_headline(classification_metrics(pr, labels, evaluated.classes))}
        for p, w, pr in zip(paths, weights, probs)
    ]
    combined = classification_metrics(ensemble.combine(probs), labels, evaluated.classes)
    report = {
        "method": method,
        "tta": tta,
        "split": split,
        "n_synthetic": evaluated.n_synthetic,
        "members": rows,
        "ensemble": combined,
        "weights_fit": fit,
    }
    if out is not None:
        report["saved"] = str(
            save_ensemble(out, ensemble, {"tta": tta, "weights_fit": fit, "data": data_identity(data)})
        )
    return report


def _headline(metrics: dict) -> dict:
    return {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "top2_accuracy", "top3_accuracy")}
