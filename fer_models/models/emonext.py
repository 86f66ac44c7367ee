"""EmoNeXt: El Boudouri & Bohi, "EmoNeXt: an Adapted ConvNeXt for Facial Emotion Recognition", IEEE MMSP 2023
(github.com/yelboudouri/EmoNeXt).

A spatial transformer (localisation conv7x7->8, conv5x5->10, each BN + max-pool + ReLU; FC 32 -> the 6
affine parameters, initialised to the identity) resamples the 3x224x224 face; an ImageNet ConvNeXt follows,
with a squeeze-and-excitation block (reduction 16) after each of its three downsampling layers; global
average pooling, LayerNorm and a linear head. Sizes: ``emonext-tiny`` ([3, 3, 9, 3], 96..768 channels, 28.8M
parameters: 27.8M ConvNeXt-tiny, 0.87M STN, 0.10M SE, 5k head), ``emonext-small``, ``emonext-base`` and
``emonext-large`` (ConvNeXt-S/B/L, [3, 3, 27, 3]). Stochastic depth 0.1, as the authors.

Training adds the paper's regulariser: LayerNorm'd pooled features are projected to queries and keys,
dot-product attention weights are formed across the batch (scaled by d^-1/4, as in the authors' code), and
their variance is added to a cross-entropy with label smoothing 0.2 (the ``emonext`` loss, recipe
``emonext``). The attention never feeds the logits, so a prediction does not depend on its batch.

Deviations: the regulariser's attention (LayerNorm, query and key: 1.18M parameters for tiny) belongs to the
``emonext`` loss (fer_models/losses.py), not to the model: it reads the pooled vector the head's linear layer
sees, is trained with the model and saved with the run's training state, so the same loss serves any model
and a model trained with another loss carries no unused layers. The authors' value projection, whose output
their code discards, is left out. The ConvNeXt is timm's (ImageNet weights from a local timm ``.safetensors``
file, ``--weights PATH``; a model trained without one warns that it starts from random weights); the SE
blocks are timm's ``SEModule`` without biases. The paper's 76.12% on FER2013 used ImageNet-22k weights.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from timm.layers import SEModule
from torch import nn

from fer_models.models._registry import register_model
from fer_models.models._weights import expect_imagenet_weights

_CONVNEXT = {"tiny": "convnext_tiny", "small": "convnext_small", "base": "convnext_base", "large": "convnext_large"}


class SpatialTransformer(nn.Module):
    """Jaderberg et al.'s STN as EmoNeXt uses it: a small CNN regresses an affine warp of the input."""

    def __init__(self, in_chans: int = 3, input_size: int = 224):
        super().__init__()
        self.localization = nn.Sequential(
            nn.Conv2d(in_chans, 8, 7),
            nn.BatchNorm2d(8),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Conv2d(8, 10, 5),
            nn.BatchNorm2d(10),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
        )
        side = ((input_size - 6) // 2 - 4) // 2
        self.regressor = nn.Sequential(
            nn.Flatten(), nn.Linear(10 * side * side, 32), nn.ReLU(inplace=True), nn.Linear(32, 6)
        )
        nn.init.zeros_(self.regressor[-1].weight)  # start as the identity warp
        with torch.no_grad():
            self.regressor[-1].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        theta = self.regressor(self.localization(x)).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, align_corners=True)


class EmoNeXt(nn.Module):
    def __init__(self, num_classes: int = 7, size: str = "tiny", drop_path_rate: float = 0.1):
        super().__init__()
        self.stn = SpatialTransformer()
        convnext = timm.create_model(
            _CONVNEXT[size], pretrained=False, num_classes=num_classes, drop_path_rate=drop_path_rate
        )
        # timm's names (stem, stages, head), so a timm ConvNeXt checkpoint fills them; SE sits beside them.
        self.stem, self.stages, self.head = convnext.stem, convnext.stages, convnext.head
        dims = [stage.blocks[0].conv_dw.out_channels for stage in self.stages]
        # stage 0's "downsampling" is the stem; the paper adds SE after the three strided downsampling layers.
        self.se = nn.ModuleList(
            [nn.Identity()] + [SEModule(d, rd_ratio=1 / 16, rd_divisor=1, bias=False) for d in dims[1:]]
        )

    def get_classifier(self) -> nn.Linear:
        """The layer that maps the feature vector to the logits (timm's convention)."""
        return self.head.fc

    def get_cam_layer(self) -> nn.Module:
        """The last stage's blocks (Grad-CAM's layer:
        fer_models.inference.explain; forward calls them, not the stage)."""
        return self.stages[-1].blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.stn(x))
        for stage, se in zip(self.stages, self.se):
            x = stage.blocks(se(stage.downsample(x)))
        return self.head(x)


def _register(size: str) -> None:
    @register_model(
        f"emonext-{size}",
        input_size=224,
        in_chans=3,
        paper="El Boudouri & Bohi 2023, EmoNeXt, IEEE MMSP 2023",
        recipe="emonext",
        aliases=("emonext",) if size == "tiny" else (),
    )
    def build(num_classes: int = 7, **kwargs) -> nn.Module:
        return expect_imagenet_weights(
            EmoNeXt(num_classes=num_classes, size=size, **kwargs), f"emonext-{size}", _CONVNEXT[size]
        )


for _size in _CONVNEXT:
    _register(_size)
