"""The seed's "other models" as named timm architectures (seed 001, "Ensemble Models For Facial Emotion
Recognition": trained at 224 input with weighted cross-entropy, SGD 1e-3 and reduce-on-plateau; snapshot
ensembles from a cyclic learning rate).

Each name is a plain timm model with a ``num_classes`` head, at 3x224x224, with ImageNet weights from a local
timm ``.safetensors`` file (``--weights PATH``) or, trained without one, random weights and a warning:

============================  ================================  ==========================================
name                          timm architecture                 paper
============================  ================================  ==========================================
``efficientnet-b0``           ``efficientnet_b0``               Tan & Le 2019, arXiv:1905.11946
``efficientnetv2-m``          ``tf_efficientnetv2_m``           Tan & Le 2021, arXiv:2104.00298
``mobilenetv3-large``         ``mobilenetv3_large_100``         Howard et al. 2019, arXiv:1905.02244
``mobilenetv4-conv-medium``   ``mobilenetv4_conv_medium``       Qin et al. 2024, arXiv:2404.10518
``resnext50-32x4d``           ``resnext50_32x4d``               Xie et al. 2017, arXiv:1611.05431
``eva02-tiny``                ``eva02_tiny_patch14_224``        Fang et al. 2023, arXiv:2303.11331
``fbnetv3-b``                 ``fbnetv3_b``                     Dai et al. 2021, arXiv:2006.02049
============================  ================================  ==========================================

Deviations: the seed names "MobileNetV4" and "EfficientNet V2-M" without a variant; these are the variants
for which timm publishes ImageNet weights. It cites EVA (arXiv:2211.07636), whose timm models are
1B-parameter giants; ``eva02-tiny`` is its successor EVA-02 at 5.5M. ``timm:<name>`` builds any other.
"""

from __future__ import annotations

import timm
from torch import nn

from fer_models.models._registry import register_model
from fer_models.models._weights import expect_imagenet_weights

ALIASES: dict[str, tuple[str, str]] = {
    "efficientnet-b0": ("efficientnet_b0", "Tan & Le 2019, EfficientNet, arXiv:1905.11946"),
    "efficientnetv2-m": ("tf_efficientnetv2_m", "Tan & Le 2021, EfficientNetV2, arXiv:2104.00298"),
    "mobilenetv3-large": ("mobilenetv3_large_100", "Howard et al. 2019, MobileNetV3, arXiv:1905.02244"),
    "mobilenetv4-conv-medium": ("mobilenetv4_conv_medium", "Qin et al. 2024, MobileNetV4, arXiv:2404.10518"),
    "resnext50-32x4d": ("resnext50_32x4d", "Xie et al. 2017, ResNeXt, arXiv:1611.05431"),
    "eva02-tiny": ("eva02_tiny_patch14_224", "Fang et al. 2023, EVA-02, arXiv:2303.11331"),
    "fbnetv3-b": ("fbnetv3_b", "Dai et al. 2021, FBNetV3, arXiv:2006.02049"),
}


def _register(name: str, architecture: str, paper: str) -> None:
    @register_model(name, input_size=224, in_chans=3, paper=paper, recipe="timm-seed")
    def build(num_classes: int = 7, **timm_kwargs) -> nn.Module:
        model = timm.create_model(architecture, pretrained=False, num_classes=num_classes, **timm_kwargs)
        return expect_imagenet_weights(model, name, architecture)


for _name, (_architecture, _paper) in ALIASES.items():
    _register(_name, _architecture, _paper)
