"""Residual Masking Network: Pham, Vu & Tran, "Facial Expression Recognition Using Residual Masking Network",
ICPR 2020 (github.com/phamquiluan/ResidualMaskingNetwork).

An ImageNet ResNet-34 ([3, 4, 6, 3] basic blocks) at 3x224x224 (FER2013's 48x48 upscaled, gray repeated to
three channels). After each of its four stages a masking block, a small U-Net of ResNet basic blocks of depth
4/3/2/1 whose output M is a softmax over channels, refines the features as F * (1 + M). Global average
pooling, dropout 0.4 and a linear classifier: 137.8M parameters (the masks hold 116.5M of them).
Recipe: ``rmn`` (RAdam, reduce-on-plateau, TTA by flips and rotations).

Deviations: the ResNet-34 and its basic blocks are timm's (the same layers and parameter names as
torchvision's); ImageNet weights come from a local timm or torchvision ``.safetensors`` file
(``--weights PATH``), and a model trained without one warns that it starts from random weights. The masks'
transposed convolutions keep PyTorch's default initialisation. The published 143M counts each mask's
projection shortcuts twice (the authors' code registers them under two names); counted once, 137.8M.
The paper's 74.14% (76.82% as an ensemble of 7) needs the ImageNet weights; users report 65-73% on retraining.
"""

from __future__ import annotations

import timm
import torch
from timm.models.resnet import BasicBlock
from torch import nn

from fer_models.models._registry import register_model
from fer_models.models._weights import expect_imagenet_weights


def _basic_block(in_chans: int, out_chans: int) -> BasicBlock:
    projection = nn.Sequential(nn.Conv2d(in_chans, out_chans, 1, bias=False), nn.BatchNorm2d(out_chans))
    block = BasicBlock(in_chans, out_chans, downsample=projection)
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    block.zero_init_last()  # the residual branch starts at zero, as in the authors' masks
    return block


class MaskingBlock(nn.Module):
    """A U-Net of ``depth`` levels over ``channels``-wide features; returns a channel-softmax mask.

    Level i of the contracting path is a basic block to ``channels * 2**(i+1)`` channels, max-pooled between
    levels. The expanding path upsamples with a stride-2 transposed conv (+BN+ReLU), concatenates the skip
    and halves the channels with a basic block; a last basic block returns to ``channels``.
    """

    def __init__(self, channels: int, depth: int):
        super().__init__()
        widths = [channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList(_basic_block(widths[i], widths[i + 1]) for i in range(depth))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.Sequential(
                nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2),
                nn.BatchNorm2d(widths[i]),
                nn.ReLU(inplace=True),
            )
            for i in range(depth - 1, 0, -1)
        )
        self.merge = nn.ModuleList(_basic_block(widths[i + 1], widths[i]) for i in range(depth - 1, 0, -1))
        self.out = _basic_block(widths[1], widths[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(self.pool(x) if i else x)
            skips.append(x)
        skips.pop()  # the deepest level feeds the expanding path directly
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return torch.softmax(self.out(x), dim=1)


class ResidualMaskingNetwork(nn.Module):
    def __init__(self, num_classes: int = 7, dropout: float = 0.4):
        super().__init__()
        resnet = timm.create_model("resnet34", pretrained=False, num_classes=0)
        # timm's names, so a timm resnet34 checkpoint fills the backbone.
        self.conv1, self.bn1, self.act1, self.maxpool = resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.masks = nn.ModuleList(MaskingBlock(c, d) for c, d in ((64, 4), (128, 3), (256, 2), (512, 1)))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(512, num_classes)
        )

    def get_classifier(self) -> nn.Linear:
        """The layer that maps the feature vector to the logits (timm's convention)."""
        return self.head[-1]

    def get_cam_layer(self) -> nn.Module:
        """The last stage (Grad-CAM's layer: fer_models.inference.explain); its gradient flows through the mask too."""
        return self.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act1(self.bn1(self.conv1(x))))
        for stage, mask in zip((self.layer1, self.layer2, self.layer3, self.layer4), self.masks):
            x = stage(x)
            x = x * (1 + mask(x))
        return self.head(x)


@register_model(
    "rmn",
    input_size=224,
    in_chans=3,
    paper="Pham, Vu & Tran 2020, Residual Masking Network, ICPR 2020",
    recipe="rmn",
    aliases=("residual-masking-network",),
)
def rmn(num_classes: int = 7, **kwargs) -> nn.Module:
    return expect_imagenet_weights(ResidualMaskingNetwork(num_classes=num_classes, **kwargs), "rmn", "resnet34")
