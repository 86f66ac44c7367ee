"""Training losses by name: cross-entropy (class-weighted, label smoothing), focal loss and EmoNeXt's loss.

A loss is built by ``build_loss(name, class_weights=..., label_smoothing=..., model=..., **options)`` and
called as ``loss(logits, targets)``, where targets are class indices [B] or soft targets [B, C] (mixup,
cutmix). A builder receives the model too, so a loss with a regulariser on the model's internals (EmoNeXt's)
registers with :func:`register_loss` like any other.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_synth.errors import FerError

_LOSSES: dict[str, Callable[..., nn.Module]] = {}
CLASS_WEIGHTINGS: tuple[str, ...] = ("none", "balanced", "sqrt")


def register_loss(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``builder(*, class_weights, label_smoothing, model, **options) -> nn.Module``."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _LOSSES:
            raise ValueError(f"loss {name!r} is registered twice")
        _LOSSES[name] = builder
        return builder

    return decorator


def list_losses() -> list[str]:
    return sorted(_LOSSES)


def build_loss(name: str, *, class_weights: Tensor | None = None, label_smoothing: float = 0.0,
               model: nn.Module | None = None, **options) -> nn.Module:
    if name not in _LOSSES:
        raise FerError(f"unknown loss {name!r}; choose one of {', '.join(list_losses())}")
    return _LOSSES[name](class_weights=class_weights, label_smoothing=label_smoothing, model=model, **options)


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


class RegularisedLoss(nn.Module):
    """A classification loss plus a model's own regulariser on the batch it just saw (training only)."""

    def __init__(self, base: nn.Module, regulariser: Callable[[], Tensor], is_training: Callable[[], bool]):
        super().__init__()
        self.base = base
        self.regulariser = regulariser  # a bound method: the model is not registered as a submodule
        self.is_training = is_training

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        loss = self.base(logits, targets)
        return loss + self.regulariser().float() if self.is_training() else loss


@register_loss("emonext")
def _emonext(*, class_weights=None, label_smoothing=0.0, model=None) -> nn.Module:
    """EmoNeXt (El Boudouri & Bohi 2023): cross-entropy with label smoothing (0.2 unless set) plus the
    variance of the self-attention weights among the batch's pooled features, which the model computes."""
    if model is None or not hasattr(model, "attention_variance"):
        raise FerError(f"loss 'emonext' needs a model that computes EmoNeXt's attention regulariser (emonext-tiny, "
                       f"-small, -base, -large), not {getattr(getattr(model, 'spec', None), 'name', model)!r}; "
                       "for others use --loss ce --label-smoothing 0.2")
    return RegularisedLoss(CrossEntropy(class_weights, label_smoothing or 0.2), model.attention_variance,
                           lambda: model.training)
