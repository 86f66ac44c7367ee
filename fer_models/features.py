"""The pooled feature vector a model's classifier sees, read by a forward pre-hook (for feature regularisers).

The classifier is ``model.get_classifier()`` (timm's convention, which every registered model follows: timm
models, the seed's aliases, ``timm:<name>`` and each native model; tests/fer_models/test_loss_any.py checks that it
produces the logits of each).
Its input is the feature vector: the globally pooled (and, in ConvNeXt/EmoNeXt, LayerNorm'd) features of a
CNN, the pooled token of a ViT, the last hidden layer of an MLP head such as VGG's. A hook needs no change to
the models and works unchanged inside DDP.
"""

from __future__ import annotations

from torch import Tensor, nn

from fer_synth.core.errors import FerError


def find_classifier(model: nn.Module) -> nn.Module:
    """The layer that maps the feature vector to the logits (see the module docstring)."""
    classifier = model.get_classifier() if hasattr(model, "get_classifier") else None
    if not isinstance(classifier, nn.Linear) and not (
        isinstance(classifier, nn.Conv2d) and classifier.kernel_size == (1, 1)
    ):
        raise FerError(
            f"{type(model).__name__}: no linear or 1x1-conv classifier found (got "
            f"{type(classifier).__name__}); a feature regulariser needs one, e.g. a get_classifier() "
            "method returning the layer that produces the logits"
        )
    return classifier


class FeatureTap:
    """Keeps the classifier's input of ``model``'s latest forward pass in training mode, as [B, D].

    Eval-mode passes are not kept, so validation never overwrites (or holds on to) a training batch's
    features. Not an ``nn.Module``: it owns no parameters and is not part of any state dict.
    """

    def __init__(self, model: nn.Module):
        self.classifier = find_classifier(model)
        conv = isinstance(self.classifier, nn.Conv2d)
        self.dim: int = self.classifier.in_channels if conv else self.classifier.in_features
        self._features: Tensor | None = None
        self.classifier.register_forward_pre_hook(self._keep)

    def _keep(self, module: nn.Module, args: tuple) -> None:
        if module.training:
            x = args[0]
            self._features = x.mean((2, 3)) if x.ndim == 4 else x  # a 1x1-conv classifier sees [B, D, 1, 1]

    @property
    def training(self) -> bool:
        return self.classifier.training

    def pop(self) -> Tensor:
        """The kept features, released so the next training forward must supply new ones."""
        if self._features is None:
            raise RuntimeError("no training-mode forward pass of the model since the features were last read")
        features, self._features = self._features, None
        if features.ndim != 2:
            raise RuntimeError(f"the classifier's input has shape {list(features.shape)}, not [batch, {self.dim}]")
        return features
