"""A model spec turned into class probabilities: ``load_classifier(spec).predict_proba(faces)``.

A spec is ``builtin`` (the model shipped inside the package), a run folder, a checkpoint's ``.json`` or
``.safetensors``, or an ensemble ``.json``. The :class:`Classifier` takes uint8 grayscale faces [N, 48, 48]
(FER2013's framing, as :mod:`fer_synth.faces` crops them) and returns probabilities [N, C] over
:attr:`Classifier.classes`, with the model's own test-time augmentation (an ensemble: its members', combined
as the ensemble file says), and names itself: :attr:`Classifier.identity` is the spec as given and a fingerprint
of the weights files and TTA, so that what it judged or predicted traces to exactly these weights. ``predict``,
``export`` and the label-fidelity judge (``judge``) all go through it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from fer_models import checkpoint as ckpt
from fer_models.data import check_tta
from fer_models.evaluation.ensemble import combine, load_ensemble
from fer_models.inference.class_mapping import ClassMapping, class_mapping
from fer_models.inference.probabilities import checkpoint_proba
from fer_models.models.builtin import BUILTIN, SHIPPED
from fer_models.training.precision import autocast_dtype, to_layout, uses_channels_last
from fer_synth.core.errors import FerError

FACE_SIZE = 48  # the side of the faces a classifier takes (FER2013's)


@dataclass
class LoadedModel:
    """One network ready to predict: the model in eval mode, its checkpoint metadata and the TTA it uses."""

    model: nn.Module
    meta: dict
    tta: str
    amp: torch.dtype | None = None

    def predict_proba(self, faces: Tensor, batch_size: int) -> np.ndarray:
        return checkpoint_proba(self.model, self.meta, faces, self.tta, batch_size, self.amp)


class Classifier:
    """Class probabilities of a model or an ensemble for uint8 faces [N, 48, 48]; build it with
    :func:`load_classifier`."""

    def __init__(
        self, spec: str, members: list[LoadedModel], weights: list[float], method: str, kind: str, batch_size: int = 512
    ):
        self.spec, self.members, self.weights, self.method, self.kind = spec, members, weights, method, kind
        self.batch_size = batch_size
        self.classes: tuple[str, ...] = tuple(members[0].meta["classes"])
        for m in members[1:]:
            if tuple(m.meta["classes"]) != self.classes:
                raise FerError(
                    f"{spec}: the ensemble's members predict different classes "
                    f"({', '.join(self.classes)} vs {', '.join(m.meta['classes'])})"
                )

    @functools.cached_property
    def identity(self) -> dict:
        """The model spec as given and a fingerprint of what produces the probabilities: 16 hex digits of SHA-256
        over every weights file, each model's TTA and precision, and an ensemble's weights and method
        (docs/judging.md)."""
        h = hashlib.sha256()
        for member in self.members:
            with open(Path(member.meta["_path"]).parent / member.meta["weights"], "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            h.update(member.tta.encode())
            h.update(str(member.amp).encode())  # bf16 scores differ from float32's in the last digits
        h.update(repr((self.weights, self.method)).encode())
        return {"model": self.spec, "fingerprint": h.hexdigest()[:16]}

    def class_mapping(self, classes: Sequence[str], data: str = "the data") -> ClassMapping:
        """How this classifier's classes map onto ``classes`` (e.g. a pool's); an error when the data has a class
        the classifier does not predict, since its faces could not be judged."""
        mapping = class_mapping(self.classes, classes, self.spec, data)
        if mapping.unscorable:
            raise FerError(
                f"{self.spec} does not predict {', '.join(mapping.unscorable)}, which {data} holds; use a "
                "model that predicts every class of it"
            )
        return mapping

    def predict_proba(
        self, faces: np.ndarray | Tensor, batch_size: int | None = None, classes: Sequence[str] | None = None
    ) -> np.ndarray:
        """Probabilities [N, C] (float32, in the order of :attr:`classes`) for uint8 grayscale faces [N, 48, 48].

        ``classes``: a subset of :attr:`classes` (a seven-class pool for the eight-class built-in model): the
        probabilities of those classes, renormalised to sum to one (:mod:`fer_models.inference.class_mapping`)."""
        probs = self._predict_proba(faces, batch_size)
        return probs if classes is None else self.class_mapping(classes).probs(probs)

    def _predict_proba(self, faces: np.ndarray | Tensor, batch_size: int | None) -> np.ndarray:
        if isinstance(faces, np.ndarray):
            if faces.dtype != np.uint8:
                raise FerError(f"faces must be uint8 grayscale, got {faces.dtype}")
            faces = torch.from_numpy(np.ascontiguousarray(faces))
        if faces.ndim != 3 or tuple(faces.shape[1:]) != (FACE_SIZE, FACE_SIZE):
            raise FerError(f"faces must be an array [N, {FACE_SIZE}, {FACE_SIZE}], got shape {tuple(faces.shape)}")
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        probs = [m.predict_proba(faces, batch_size or self.batch_size) for m in self.members]
        if self.kind != "ensemble":
            return probs[0].astype(np.float32)
        return combine(probs, self.weights, self.method).astype(np.float32)


def load_classifier(
    spec: str | os.PathLike = BUILTIN,
    device: str | torch.device = "cpu",
    tta: str | None = None,
    amp: str = "none",
    batch_size: int = 512,
) -> Classifier:
    """The classifier a spec names: ``builtin``, a run folder, a checkpoint or an ensemble file.

    ``tta``: None uses each model's own (the one its recipe names; an ensemble's, else its members'); else
    ``none``, ``flip`` or ``ten-crop`` for every model. ``amp``: ``none`` (float32, the default: exact and
    comparable) or ``auto``/``bf16`` (faster on CPUs with native bf16; see :mod:`fer_models.training.precision`).
    """
    if tta is not None:
        check_tta(tta)
    device = torch.device(device)
    dtype = autocast_dtype(amp, device)
    meta = ckpt.read_meta(spec)

    def loaded(path: str | os.PathLike, own_tta: str | None) -> LoadedModel:
        model, member_meta = ckpt.load_model(path, device)
        to_layout(model, uses_channels_last(dtype, device))
        return LoadedModel(model, member_meta, tta or own_tta or member_meta.get("tta") or "none", dtype)

    if meta["format"] == ckpt.ENSEMBLE_FORMAT:
        ensemble = load_ensemble(spec)
        members = [loaded(m, meta.get("tta")) for m in ensemble.members]
        return Classifier(str(spec), members, ensemble.weights, ensemble.method, "ensemble", batch_size)
    kind = "shipped" if str(spec) in SHIPPED else "checkpoint"
    return Classifier(str(spec), [loaded(spec, None)], [1.0], "mean", kind, batch_size)
