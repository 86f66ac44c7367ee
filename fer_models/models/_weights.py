"""Models that start from an ImageNet backbone: say so when they are trained from random weights instead.

The papers' numbers for RMN, EmoNeXt, PAtt-Lite, the CBAM members and the timm classifiers need ImageNet
pretraining. These models keep their timm backbone's parameter names, so ``create_model(name,
weights=PATH)`` fills the backbone from a timm-format ``.safetensors`` file (as published on the Hugging Face
hub under ``timm/<architecture>.<tag>``; fetch it on a machine with network access) by name and shape, and the
ImageNet classifier, of another shape, is left out. Nothing is ever downloaded.

:func:`expect_imagenet_weights` watches a model: if it is trained (a forward pass in training mode) without any
weights ever loaded, or a weights file left backbone tensors unfilled, a warning says so.
"""

from __future__ import annotations

import logging

import timm
import torch
from torch import nn

logger = logging.getLogger(__name__)


def backbone_keys(model: nn.Module, architecture: str) -> set[str]:
    """The state-dict keys of ``model`` that a timm ``architecture`` checkpoint provides (same name and shape)."""
    with torch.device("meta"):
        reference = timm.create_model(architecture, pretrained=False).state_dict()
    own = model.state_dict()
    return {k for k, v in reference.items() if k in own and own[k].shape == v.shape}


def expect_imagenet_weights(model: nn.Module, name: str, architecture: str) -> nn.Module:
    """Warn once if ``model`` (registered as ``name``) trains with its ``architecture`` backbone at random init."""
    expected = backbone_keys(model, architecture)
    state = {"loaded": False, "warned": False}

    def after_load(module: nn.Module, incompatible) -> None:
        state["loaded"] = True
        unfilled = sorted(expected.intersection(incompatible.missing_keys))
        if unfilled:
            logger.warning(
                f"{name}: the weights file left {len(unfilled)} of the {len(expected)} {architecture} backbone "
                f"tensors at random init (e.g. {unfilled[0]}); is it a timm {architecture} checkpoint?"
            )

    def before_forward(module: nn.Module, args) -> None:
        if module.training and not state["loaded"] and not state["warned"]:
            state["warned"] = True
            logger.warning(
                f"{name}: training from random weights, but its published results start from ImageNet weights: "
                f"pass --weights PATH, a timm {architecture} .safetensors file"
            )

    model.register_load_state_dict_post_hook(after_load)
    model.register_forward_pre_hook(before_forward)
    return model
