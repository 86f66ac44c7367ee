"""VGGNet of Khaireddin & Chen, "Facial Emotion Recognition: State of the Art Performance on FER2013" (2021).

arXiv:2105.03588. Four blocks of two 3x3 conv-BN-ReLU layers and a 2x2 max-pool (64/128/256/512 channels),
then FC 4096-4096-classes with dropout 0.2: 29.9M parameters on 1x40x40 inputs (ten-crops of the 48x48
faces). The paper's recipe is ``khaireddin-vgg`` (SGD Nesterov, reduce-on-plateau, ten-crop test).
"""

from __future__ import annotations

from torch import nn

from fer_models.models._registry import register_model


def _block(in_chans: int, out_chans: int) -> nn.Sequential:
    layers = []
    for c_in in (in_chans, out_chans):
        layers += [nn.Conv2d(c_in, out_chans, 3, padding=1), nn.BatchNorm2d(out_chans), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class KhaireddinVGG(nn.Module):
    def __init__(self, num_classes: int = 7, in_chans: int = 1, input_size: int = 40, dropout: float = 0.2):
        super().__init__()
        widths = (64, 128, 256, 512)
        self.features = nn.Sequential(*(_block(c_in, c_out) for c_in, c_out in zip((in_chans, *widths), widths)))
        side = input_size // 16
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * side * side, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def get_classifier(self) -> nn.Linear:
        """The layer that maps the feature vector to the logits (timm's convention)."""
        return self.classifier[-1]

    def get_cam_layer(self) -> nn.Module:
        """The last feature map before its pooling (Grad-CAM's layer: fer_models.inference.explain)."""
        return self.features[-1][-2]

    def forward(self, x):
        return self.classifier(self.features(x))


@register_model(
    "vgg",
    input_size=40,
    in_chans=1,
    paper="Khaireddin & Chen 2021, arXiv:2105.03588",
    recipe="khaireddin-vgg",
    aliases=("khaireddin-vgg",),
)
def vgg(num_classes: int = 7, **kwargs) -> nn.Module:
    return KhaireddinVGG(num_classes=num_classes, **kwargs)
