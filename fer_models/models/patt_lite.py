"""PAtt-Lite: Ngwe, Lim, Lee, Ong & Alqahtani, "PAtt-Lite: Lightweight Patch and Attention MobileNet for
Challenging Facial Expression Recognition", IEEE Access 2024, arXiv:2306.09626.

An ImageNet MobileNetV1 truncated after the depthwise convolution of its 9th block (14x14x512 at 224 input),
a patch-extraction block (separable conv 256 k4 s4 -> separable conv 256 k2 s2 -> conv 256 1x1, ReLU each)
that leaves 2x2 patches, dropout 0.1, Dense 32 (ReLU) + BatchNorm, dot-product self-attention with a learned
scale, and a linear classifier: about 1.1M parameters at 3x224x224. Recipe: ``patt-lite``.

Deviations from the paper and its notebook:

- **Attention within a sample.** The published model pools the 2x2 patches to one 32-vector per image and
  feeds the ``[batch, 32]`` matrix to Keras' ``Attention``, which then attends from every image to every other
  image of the batch: a prediction depends on the other samples in its batch (and on the batch size). Here the
  four patch tokens of one image attend to each other and are averaged afterwards. The layers and the
  parameter count are the paper's; only the axis the attention runs over differs.
- The backbone is timm's ``mobilenetv1_100`` (ReLU6, as in Keras); ImageNet weights come from a local timm
  ``.safetensors`` file (``--weights PATH``); trained without one, it warns that it starts from random weights.
- The notebook's resizing and augmentation layers live in the data path, not in the model, and its Keras
  ``preprocess_input`` ([-1, 1] scaling) is the data path's normalisation.
- The paper trains in two stages (frozen backbone, then fine-tuning); ``freeze_backbone=True`` builds the
  first stage's model. In both, as in the notebook, the backbone's BatchNorm layers run in inference mode.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

from fer_models.models._registry import register_model
from fer_models.models._weights import expect_imagenet_weights

_BACKBONE = "mobilenetv1_100"


def truncated_mobilenetv1() -> tuple[nn.Module, nn.Module, nn.Sequential]:
    """MobileNetV1's stem and blocks up to and including the depthwise conv (+BN+ReLU6) of its 9th block.

    The modules keep timm's names (``conv_stem``, ``bn1``, ``blocks.i.j``), so a timm checkpoint fills them.
    """
    net = timm.create_model(_BACKBONE, pretrained=False, num_classes=0)
    # timm groups the 13 separable blocks by stage as 1, 2, 2, 6, 2: the 9th block is blocks[3][3].
    ninth = net.blocks[3][3]
    ninth.conv_pw, ninth.bn2 = nn.Identity(), nn.Identity()
    return net.conv_stem, net.bn1, nn.Sequential(*net.blocks[:3], net.blocks[3][:4])


class SeparableConv(nn.Sequential):
    """Keras' SeparableConv2D: depthwise conv without bias, then a 1x1 conv with bias, then ReLU."""

    def __init__(self, in_chans: int, out_chans: int, kernel_size: int, stride: int, padding: int = 0):
        super().__init__(
            nn.Conv2d(in_chans, in_chans, kernel_size, stride, padding, groups=in_chans, bias=False),
            nn.Conv2d(in_chans, out_chans, 1),
            nn.ReLU(inplace=True),
        )


class PatchSelfAttention(nn.Module):
    """Dot-product self-attention over the patch tokens of each sample (query = key = value, learned scale)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))  # Keras Attention(use_scale=True) starts at 1

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # [B, N, D] -> [B, N, D]
        weights = torch.softmax(self.scale * tokens @ tokens.transpose(1, 2), dim=-1)
        return weights @ tokens


class PAttLite(nn.Module):
    def __init__(
        self,
        num_classes: int = 7,
        dropout: float = 0.1,
        freeze_backbone: bool = False,
    ):
        super().__init__()
        self.conv_stem, self.bn1, self.blocks = truncated_mobilenetv1()
        for module in (self.conv_stem, self.bn1, self.blocks):
            module.requires_grad_(not freeze_backbone)
        self.patches = nn.Sequential(
            # Keras 'same' padding for k4 s4 on 14x14 pads one pixel each side: 16x16 -> 4x4.
            SeparableConv(512, 256, 4, 4, padding=1),
            SeparableConv(256, 256, 2, 2),
            nn.Conv2d(256, 256, 1),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(dropout)
        self.embed = nn.Sequential(nn.Linear(256, 32), nn.ReLU(inplace=True))
        self.norm = nn.BatchNorm1d(32)
        self.attention = PatchSelfAttention()
        self.classifier = nn.Linear(32, num_classes)

    def train(self, mode: bool = True) -> PAttLite:
        # The notebook calls the backbone with training=False in both stages: its BatchNorm layers keep their
        # ImageNet statistics (and its dropout-free layers are unaffected).
        super().train(mode)
        for module in (self.conv_stem, self.bn1, self.blocks):
            module.eval()
        return self

    def get_classifier(self) -> nn.Linear:
        """The layer that maps the feature vector to the logits (timm's convention)."""
        return self.classifier

    def get_cam_layer(self) -> nn.Module:
        """The backbone's 14x14 map (Grad-CAM's layer:
        fer_models.inference.explain); the patch layers leave only 2x2."""
        return self.blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patches(self.blocks(self.bn1(self.conv_stem(x)))).flatten(2).transpose(1, 2)  # [B, 4, 256]
        tokens = self.embed(self.dropout(tokens))
        tokens = self.norm(tokens.transpose(1, 2)).transpose(1, 2)  # BatchNorm over the 32 features
        return self.classifier(self.attention(tokens).mean(1))


@register_model(
    "patt-lite",
    input_size=224,
    in_chans=3,
    paper="Ngwe et al. 2024, PAtt-Lite, arXiv:2306.09626",
    recipe="patt-lite",
)
def patt_lite(num_classes: int = 7, **kwargs) -> nn.Module:
    return expect_imagenet_weights(PAttLite(num_classes=num_classes, **kwargs), "patt-lite", _BACKBONE)
