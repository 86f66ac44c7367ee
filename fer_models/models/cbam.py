"""CBAM ensemble members: the three networks of the "Deep Ensemble Learning with Attention Mechanisms for Robust
Facial Emotion Recognition" repository (N. I. S. Mohammad 2025, github.com/csislam/Deep-Ensemble-FER), each
refined by CBAM (Woo, Park, Lee & Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018).

CBAM is timm's ``CbamModule``: channel attention from a shared MLP (reduction 16) over average- and max-pooled
features, then spatial attention from a 7x7 convolution over channel-wise average and max maps.

- ``cbam-resnet50``: ResNet-50 with a CBAM block after each of its four stages (24.2M parameters).
- ``cbam-efficientnet-b3``: EfficientNet-B3 with a CBAM block on its last feature map (1536 channels, 11.0M).
- ``multiscale-resnet34``: ResNet-34 whose four stage outputs each pass a CBAM block and are average-pooled;
  the concatenated 960-vector feeds the classifier (21.3M).

All take 3x224x224 faces and keep timm's parameter names, so ImageNet weights load from a local timm
``.safetensors`` file (``--weights PATH``); trained without one, they warn that they start from random
weights. The seed trained them with label-smoothing cross-entropy 0.1 (focal loss tried), AdamW 3e-4 and
cosine warm restarts, and averaged their softmax (recipe ``cbam-ensemble``). Deviations: the seed repository
publishes no code, so where CBAM sits in EfficientNet-B3 and what the "multi-scale" head is are this project's
reading of its description; the seed's 73.33% was measured on a different, capped dataset, not on FER2013's
PrivateTest. Dropout 0.3 before each classifier is this project's choice (the seed states none).
"""

from __future__ import annotations

import timm
import torch
from timm.layers.cbam import CbamModule
from torch import nn

from fer_models.models._registry import register_model
from fer_models.models._weights import expect_imagenet_weights

_PAPER = "Mohammad 2025, Deep-Ensemble-FER; CBAM: Woo et al., ECCV 2018"


class _ResNetTrunk(nn.Module):
    """A timm ResNet's stem and stages under timm's names, so a timm checkpoint of it fills them."""

    def __init__(self, architecture: str):
        super().__init__()
        resnet = timm.create_model(architecture, pretrained=False, num_classes=0)
        self.conv1, self.bn1, self.act1, self.maxpool = resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.widths = [info["num_chs"] for info in resnet.feature_info[1:]]
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def stage_outputs(self, x: torch.Tensor, refine: nn.ModuleList | None = None) -> list[torch.Tensor]:
        """Each stage's output, passed through ``refine[i]`` (if given) before the next stage sees it."""
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        outputs = []
        for i, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = stage(x) if refine is None else refine[i](stage(x))
            outputs.append(x)
        return outputs


class CbamResNet(_ResNetTrunk):
    """A timm ResNet with CBAM after every stage."""

    def __init__(self, architecture: str, num_classes: int, dropout: float):
        super().__init__(architecture)
        self.cbam = nn.ModuleList(CbamModule(w) for w in self.widths)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.widths[-1], num_classes))

    def get_classifier(self) -> nn.Linear:
        """The layer that maps the feature vector to the logits (timm's convention)."""
        return self.head[-1]

    def get_cam_layer(self) -> nn.Module:
        """The last stage refined by CBAM (Grad-CAM's layer: fer_models.inference.explain)."""
        return self.cbam[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.stage_outputs(x, self.cbam)[-1]))


class MultiScaleResNet(_ResNetTrunk):
    """A timm ResNet whose four stage outputs, each refined by CBAM and average-pooled, are concatenated.

    CBAM here refines only what the head sees: the next stage gets the unrefined features.
    """

    def __init__(self, architecture: str, num_classes: int, dropout: float):
        super().__init__(architecture)
        self.cbam = nn.ModuleList(CbamModule(w) for w in self.widths)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(sum(self.widths), num_classes))

    def get_classifier(self) -> nn.Linear:
        """The layer that maps the feature vector to the logits (timm's convention)."""
        return self.head[-1]

    def get_cam_layer(self) -> nn.Module:
        """The deepest scale, refined by CBAM (Grad-CAM's layer:
        fer_models.inference.explain); the head sees all four."""
        return self.cbam[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.stage_outputs(x)
        return self.head(torch.cat([self.pool(cbam(f)) for cbam, f in zip(self.cbam, features)], dim=1))


class CbamEfficientNet(nn.Module):
    """A timm EfficientNet, under timm's names, with CBAM on its final feature map."""

    def __init__(self, architecture: str, num_classes: int, dropout: float):
        super().__init__()
        net = timm.create_model(architecture, pretrained=False, num_classes=0)
        self.conv_stem, self.bn1, self.blocks, self.conv_head, self.bn2 = (
            net.conv_stem,
            net.bn1,
            net.blocks,
            net.conv_head,
            net.bn2,
        )
        self.cbam = CbamModule(net.num_features)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(net.num_features, num_classes))

    def get_classifier(self) -> nn.Linear:
        """The layer that maps the feature vector to the logits (timm's convention)."""
        return self.head[-1]

    def get_cam_layer(self) -> nn.Module:
        """The final feature map refined by CBAM (Grad-CAM's layer: fer_models.inference.explain)."""
        return self.cbam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.conv_head(self.blocks(self.bn1(self.conv_stem(x)))))
        return self.head(self.pool(self.cbam(x)))


def _register(name: str, cls: type[nn.Module], architecture: str) -> None:
    @register_model(name, input_size=224, in_chans=3, paper=_PAPER, recipe="cbam-ensemble")
    def build(num_classes: int = 7, dropout: float = 0.3) -> nn.Module:
        return expect_imagenet_weights(cls(architecture, num_classes, dropout), name, architecture)


_register("cbam-resnet50", CbamResNet, "resnet50")
_register("cbam-efficientnet-b3", CbamEfficientNet, "efficientnet_b3")
_register("multiscale-resnet34", MultiScaleResNet, "resnet34")
