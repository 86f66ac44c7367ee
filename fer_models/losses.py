"""Training losses by name: cross-entropy (class-weighted, label smoothing), focal loss and EmoNeXt's loss.

A loss is built by ``build_loss(name, class_weights=..., label_smoothing=..., model=..., **options)`` and
called as ``loss(logits, targets)``, where targets are class indices [B] or soft targets [B, C] (mixup,
cutmix). A builder receives the model too, so a loss with a regulariser on the model's features (EmoNeXt's,
which works with any model) registers with :func:`register_loss` like any other. A loss may own trainable
parameters (EmoNeXt's attention): the training loop builds the loss before the optimizer, optimises and
synchronises (DDP) its parameters with the model's, and saves its ``state_dict()`` for ``--resume``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_models.features import FeatureTap
from fer_synth.core.errors import FerError
from fer_synth.core.registry import Registry

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")
CLASS_WEIGHTINGS: tuple[str, ...] = ("none", "balanced", "sqrt")


#: Register ``builder(*, class_weights, label_smoothing, model, **options) -> nn.Module`` under a name.
register_loss = LOSSES.register
list_losses = LOSSES.names


def build_loss(
    name: str,
    *,
    class_weights: Tensor | None = None,
    label_smoothing: float = 0.0,
    model: nn.Module | None = None,
    **options,
) -> nn.Module:
    return LOSSES.get(name)(class_weights=class_weights, label_smoothing=label_smoothing, model=model, **options)


def class_weights(counts: Tensor, weighting: str) -> Tensor | None:
    """Per-class loss weights from training counts: ``balanced`` = N / (C * n_c), ``sqrt`` its square root,
    normalised so a balanced set gets weight 1 everywhere."""
    if weighting not in CLASS_WEIGHTINGS:
        raise FerError(f"unknown class weighting {weighting!r}; choose one of {', '.join(CLASS_WEIGHTINGS)}")
    if weighting == "none":
        return None
    counts = counts.to(torch.float32).clamp(min=1)
    weights = counts.sum() / (len(counts) * counts)
    return weights.sqrt() if weighting == "sqrt" else weights


def soft_targets(targets: Tensor, num_classes: int, label_smoothing: float) -> Tensor:
    """Index or soft targets -> smoothed probability targets [B, C]."""
    if targets.ndim == 1:
        targets = F.one_hot(targets, num_classes).float()
    return targets * (1 - label_smoothing) + label_smoothing / num_classes


class CrossEntropy(nn.Module):
    """Cross-entropy with optional class weights and label smoothing; accepts soft targets."""

    def __init__(self, class_weights: Tensor | None = None, label_smoothing: float = 0.0):
        super().__init__()
        self.register_buffer("weight", class_weights, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return F.cross_entropy(logits.float(), targets, weight=self.weight, label_smoothing=self.label_smoothing)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): ``-alpha_c (1 - p_t)^gamma log p_t``, summed over soft targets,
    averaged over the batch (weighted mean when class weights are given, as cross-entropy does)."""

    def __init__(self, class_weights: Tensor | None = None, label_smoothing: float = 0.0, gamma: float = 2.0):
        super().__init__()
        self.register_buffer("weight", class_weights, persistent=False)
        self.label_smoothing = label_smoothing
        self.gamma = gamma

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        log_p = F.log_softmax(logits.float(), dim=-1)
        t = soft_targets(targets, logits.shape[-1], self.label_smoothing)
        per_class = -t * (1 - log_p.exp()).pow(self.gamma) * log_p
        if self.weight is None:
            return per_class.sum(-1).mean()
        w = self.weight.to(per_class.dtype)
        return (per_class * w).sum() / (t * w).sum()


@register_loss("ce")
def _cross_entropy(*, class_weights=None, label_smoothing=0.0, model=None) -> nn.Module:
    return CrossEntropy(class_weights, label_smoothing)


@register_loss("focal")
def _focal(*, class_weights=None, label_smoothing=0.0, model=None, gamma: float = 2.0) -> nn.Module:
    return FocalLoss(class_weights, label_smoothing, gamma)


class BatchAttentionVariance(nn.Module):
    """EmoNeXt's regulariser: the variance of dot-product attention weights among a batch's feature vectors.

    LayerNorm'd features are projected to queries and keys; the softmax of their dot products, scaled by
    d^-1/4 as in the authors' code, gives each sample's attention over the batch. The authors' value
    projection is left out: their code discards its output.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.scale = 1 / math.sqrt(math.sqrt(dim))

    def forward(self, features: Tensor) -> Tensor:  # [B, D] -> scalar
        x = self.norm(features)
        weights = torch.softmax(self.query(x) @ self.key(x).T * self.scale, dim=-1)
        return ((weights - weights.mean()) ** 2).mean()


class RegularisedLoss(nn.Module):
    """A classification loss plus a regulariser on the model's feature vectors of the batch it just saw.

    The regulariser's parameters belong to this loss: train them with the model (``loss.parameters()`` in
    the optimizer) and keep ``loss.state_dict()`` with the training state. It applies while the model is in
    training mode; in eval mode the loss is the base loss alone.
    """

    def __init__(self, base: nn.Module, regulariser: nn.Module, tap: FeatureTap):
        super().__init__()
        self.base = base
        self.regulariser = regulariser
        self.tap = tap

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        loss = self.base(logits, targets)
        if not self.tap.training:
            return loss
        features = self.tap.pop()
        if len(features) != len(logits):
            raise RuntimeError(
                f"the model's last training forward saw {len(features)} samples, the loss "
                f"{len(logits)}: call the loss right after the forward pass"
            )
        return loss + self.regulariser(features).float()


@register_loss("emonext")
def _emonext(*, class_weights=None, label_smoothing=0.0, model=None) -> nn.Module:
    """EmoNeXt (El Boudouri & Bohi 2023): cross-entropy with label smoothing (0.2 unless set) plus the
    variance of the self-attention weights among the batch's feature vectors, for any model (the features
    are its classifier's input, see :mod:`fer_models.features`)."""
    if model is None:
        raise ValueError("loss 'emonext' regularises a model's features: build it with model=")
    tap = FeatureTap(model)
    return RegularisedLoss(CrossEntropy(class_weights, label_smoothing or 0.2), BatchAttentionVariance(tap.dim), tap)
