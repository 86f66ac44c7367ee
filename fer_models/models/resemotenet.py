"""ResEmoteNet: Roy, Kathania, Sharma, Dey & Ryan, "ResEmoteNet: Bridging Accuracy and Loss Reduction in
Facial Emotion Recognition", IEEE Signal Processing Letters 2024, arXiv:2409.10545.

Three [conv3x3-BN-ReLU-maxpool2] stages (64/128/256 channels, dropout 0.2 after the first two), a
squeeze-and-excitation block (reduction 16, no biases), three residual blocks 256->512->1024->2048 (stride 2,
1x1 projection shortcuts), global average pooling and an MLP head 2048-1024-512-256 (ReLU, dropout 0.5) ->
classes: 80.2M parameters on 3x64x64 inputs. The paper's recipe is ``resemotenet`` (SGD 1e-3, momentum 0.9).

Deviations from the authors' code: the last layer has ``num_classes`` outputs (their public model file has 6);
the SE block is timm's ``SEModule`` (1x1 convolutions, numerically the same as their linear layers).
Their repository orders the classes happy, surprise, sad, anger, disgust, fear, neutral: this model is trained
on the project's FER2013 order, so their label indices never apply here.

The claimed 79.79% on FER2013 has not been reproduced (58-72% reported by others); see docs/models.md.
"""

from __future__ import annotations

import torch
from timm.layers import SEModule
from torch import nn

from fer_models.models._registry import register_model


def _conv_stage(in_chans: int, out_chans: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_chans, out_chans, 3, padding=1), nn.BatchNorm2d(out_chans), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN layers (the first strided) plus a 1x1 conv-BN projection of the input."""

    def __init__(self, in_chans: int, out_chans: int, stride: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, out_chans, 3, stride=stride, padding=1),
            nn.BatchNorm2d(out_chans),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_chans, out_chans, 3, padding=1),
            nn.BatchNorm2d(out_chans),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(in_chans, out_chans, 1, stride=stride), nn.BatchNorm2d(out_chans))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResEmoteNet(nn.Module):
    def __init__(self, num_classes: int = 7, in_chans: int = 3, stage_dropout: float = 0.2, head_dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            _conv_stage(in_chans, 64),
            nn.Dropout(stage_dropout),
            _conv_stage(64, 128),
            nn.Dropout(stage_dropout),
            _conv_stage(128, 256),
            SEModule(256, rd_ratio=1 / 16, rd_divisor=1, bias=False),
            ResidualBlock(256, 512),
            ResidualBlock(512, 1024),
            ResidualBlock(1024, 2048),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        head: list[nn.Module] = []
        for width_in, width_out in ((2048, 1024), (1024, 512), (512, 256)):
            head += [nn.Linear(width_in, width_out), nn.ReLU(inplace=True), nn.Dropout(head_dropout)]
        self.head = nn.Sequential(*head, nn.Linear(256, num_classes))

    def get_classifier(self) -> nn.Linear:
        """The layer that maps the feature vector to the logits (timm's convention)."""
        return self.head[-1]

    def get_cam_layer(self) -> nn.Module:
        """The SE block's 8x8 map (Grad-CAM's layer: fer_models.inference.explain): the strided residual blocks after it
        shrink a 64x64 face to 1x1."""
        return self.features[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model(
    "resemotenet",
    input_size=64,
    in_chans=3,
    paper="Roy et al. 2024, ResEmoteNet, arXiv:2409.10545",
    recipe="resemotenet",
)
def resemotenet(num_classes: int = 7, **kwargs) -> nn.Module:
    return ResEmoteNet(num_classes=num_classes, **kwargs)
