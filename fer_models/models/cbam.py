"""CBAM ensemble members: the three networks of the "Deep Ensemble Learning with Attention Mechanisms for Robust
Facial Emotion Recognition" repository (N. I. S. Mohammad 2025, github.com/csislam/Deep-Ensemble-FER), each
refined by CBAM (Woo, Park, Lee & Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018).

CBAM is timm's ``CbamModule``: channel attention from a shared MLP (reduction 16) over average- and max-pooled
features, then spatial attention from a 7x7 convolution over channel-wise average and max maps.

- ``cbam-resnet50``: ResNet-50 with a CBAM block after each of its four stages (25.6M parameters).
- ``cbam-efficientnet-b3``: EfficientNet-B3 with a CBAM block on its last feature map (1536 channels, 11.0M).
- ``multiscale-resnet34``: ResNet-34 whose four stage outputs each pass a CBAM block and are average-pooled;
  the concatenated 960-vector feeds the classifier (21.4M).

All take 3x224x224 faces and ImageNet weights from a local timm ``.safetensors`` file (``weights=PATH``);
without one they start from random weights, with a warning. The seed trained them with label-smoothing
cross-entropy 0.1 (focal loss tried), AdamW 3e-4 and cosine warm restarts, and averaged their softmax
(recipe ``cbam-ensemble``). Deviations: the seed repository publishes no code, so where CBAM sits in
EfficientNet-B3 and what the "multi-scale" head is are this project's reading of its description; the
seed's 73.33% was measured on a different, capped dataset, not on FER2013's PrivateTest.
"""

from __future__ import annotations

import os

import torch
from timm.layers.cbam import CbamModule
from torch import nn

from fer_models.models import register_model
from fer_models.models._weights import create_backbone

_PAPER = "Mohammad 2025, Deep Ensemble FER (github.com/csislam/Deep-Ensemble-FER); CBAM: Woo et al., ECCV 2018"


def _resnet_stages(resnet: nn.Module) -> nn.ModuleList:
    return nn.ModuleList([resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4])


def _classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_features, num_classes))


class CbamResNet(nn.Module):
    """A timm ResNet with CBAM after every stage."""

    def __init__(self, architecture: str, model: str, num_classes: int, weights: str | os.PathLike | None,
                 dropout: float):
        super().__init__()
        resnet = create_backbone(architecture, weights=weights, model=model, num_classes=0)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool)
        self.stages = _resnet_stages(resnet)
        self.cbam = nn.ModuleList(CbamModule(info["num_chs"]) for info in resnet.feature_info[1:])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = _classifier(resnet.num_features, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage, cbam in zip(self.stages, self.cbam):
            x = cbam(stage(x))
        return self.head(self.pool(x))


class CbamEfficientNet(nn.Module):
    """A timm EfficientNet with CBAM on its final feature map."""

    def __init__(self, architecture: str, model: str, num_classes: int, weights: str | os.PathLike | None,
                 dropout: float):
        super().__init__()
        self.backbone = create_backbone(architecture, weights=weights, model=model, num_classes=0, global_pool="")
        self.cbam = CbamModule(self.backbone.num_features)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = _classifier(self.backbone.num_features, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.cbam(self.backbone(x))))


class MultiScaleResNet(nn.Module):
    """A timm ResNet whose four stage outputs, each refined by CBAM and average-pooled, are concatenated."""

    def __init__(self, architecture: str, model: str, num_classes: int, weights: str | os.PathLike | None,
                 dropout: float):
        super().__init__()
        resnet = create_backbone(architecture, weights=weights, model=model, num_classes=0)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool)
        self.stages = _resnet_stages(resnet)
        widths = [info["num_chs"] for info in resnet.feature_info[1:]]
        self.cbam = nn.ModuleList(CbamModule(w) for w in widths)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = _classifier(sum(widths), num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        pooled = []
        for stage, cbam in zip(self.stages, self.cbam):
            x = stage(x)
            pooled.append(self.pool(cbam(x)))
        return self.head(torch.cat(pooled, dim=1))


def _register(name: str, cls: type[nn.Module], architecture: str) -> None:
    @register_model(name, input_size=224, in_chans=3, paper=_PAPER, recipe="cbam-ensemble")
    def build(num_classes: int = 7, weights: str | os.PathLike | None = None, dropout: float = 0.3) -> nn.Module:
        return cls(architecture, name, num_classes, weights, dropout)


_register("cbam-resnet50", CbamResNet, "resnet50")
_register("cbam-efficientnet-b3", CbamEfficientNet, "efficientnet_b3")
_register("multiscale-resnet34", MultiScaleResNet, "resnet34")
