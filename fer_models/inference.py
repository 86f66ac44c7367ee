"""A trained model, or an ensemble of them, as one classifier of 48x48 grayscale faces.

``load_classifier(spec)`` takes what every command accepts as a model: a run folder, a checkpoint's ``.json`` or
``.safetensors``, or an ensemble ``.json``. The classifier applies each model's own input size, channels and
test-time augmentation, and names itself (``identity``: the model and a fingerprint of its weights) so that what it
judged can be traced to exactly these weights.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fer_models import checkpoint as ckpt
from fer_models.ensemble import combine, load_ensemble
from fer_models.predict import predict_probs
from fer_synth.core.errors import FerError


@dataclass
class _Member:
    model: nn.Module
    input_size: int
    in_chans: int
    tta: str
    weights_file: Path


@dataclass
class Classifier:
    """Class probabilities for uint8 faces [N, 48, 48]: one model, or an ensemble's weighted combination."""

    members: list[_Member]
    classes: tuple[str, ...]
    weights: list[float] = field(default_factory=lambda: [1.0])
    method: str = "mean"
    name: str = ""

    @torch.no_grad()
    def predict_proba(self, faces: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Probabilities [N, C] in the order of :attr:`classes`."""
        faces = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.uint8))
        probs = [predict_probs(m.model, faces, m.input_size, m.in_chans, m.tta, batch_size) for m in self.members]
        if len(faces) == 0:
            return np.zeros((0, len(self.classes)), np.float32)
        return probs[0] if len(probs) == 1 else combine(probs, self.weights, self.method).astype(np.float32)

    @property
    def identity(self) -> dict:
        """The model spec as given and a fingerprint of every weights file it loaded."""
        h = hashlib.sha256()
        for member in self.members:
            with open(member.weights_file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            h.update(member.tta.encode())
        h.update(repr((self.weights, self.method)).encode())
        return {"model": self.name, "fingerprint": h.hexdigest()[:16]}


def _member(path: str | os.PathLike, device: str | torch.device, tta: str | None) -> tuple[_Member, list[str]]:
    model, meta = ckpt.load_model(path, device)
    weights = Path(meta["_path"]).parent / meta["weights"]
    return _Member(model, meta["input_size"], meta["in_chans"], tta or meta.get("tta") or "none", weights), meta["classes"]


def load_classifier(spec: str | os.PathLike, device: str | torch.device = "cpu", tta: str | None = None) -> Classifier:
    """A :class:`Classifier` from a run folder, checkpoint or ensemble file; ``tta`` overrides the models' own."""
    meta = ckpt.read_meta(spec)
    if meta["format"] == ckpt.ENSEMBLE_FORMAT:
        ensemble = load_ensemble(spec)
        loaded = [_member(m, device, tta or meta.get("tta")) for m in ensemble.members]
        members, class_lists = [m for m, _ in loaded], [c for _, c in loaded]
        if any(c != class_lists[0] for c in class_lists):
            raise FerError(f"{spec}: its members predict different class lists; ensemble models of one dataset")
        return Classifier(members, tuple(class_lists[0]), ensemble.weights, ensemble.method, str(spec))
    member, classes = _member(spec, device, tta)
    return Classifier([member], tuple(classes), name=str(spec))
