"""A small fast CNN for CPU work: the project's default model, not a paper's.

Three stages of [conv3x3-BN-ReLU]x2 + max-pool (32/64/128 channels) on 1x48x48, global average pooling and a
linear head: about 0.29M parameters, a few hundred images/s for training on two CPU cores.
"""

from __future__ import annotations

from torch import nn

from fer_models.models._registry import register_model


class SmallCNN(nn.Module):
    def __init__(
        self, num_classes: int = 7, in_chans: int = 1, widths: tuple[int, ...] = (32, 64, 128), dropout: float = 0.2
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_chans
        for width in widths:
            for c in (c_in, width):
                layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
            c_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
        )

    def get_classifier(self) -> nn.Linear:
        """The layer that maps the feature vector to the logits (timm's convention)."""
        return self.head[-1]

    def get_cam_layer(self) -> nn.Module:
        """The last feature map before its pooling (Grad-CAM's layer: fer_models.inference.explain)."""
        return self.features[-2]

    def forward(self, x):
        return self.head(self.features(x))


@register_model("small-cnn", input_size=48, in_chans=1, paper="(none: a fast CPU baseline)", recipe="cpu-fast")
def small_cnn(num_classes: int = 7, **kwargs) -> nn.Module:
    return SmallCNN(num_classes=num_classes, **kwargs)
