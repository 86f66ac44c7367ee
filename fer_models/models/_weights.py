"""timm backbones with ImageNet weights from a local ``.safetensors`` file: never a download, never a pickle.

The papers' numbers for RMN, EmoNeXt, PAtt-Lite and the timm classifiers need ImageNet pretraining. Their
builders take ``weights=PATH``: a timm-format ``model.safetensors`` (as on the Hugging Face hub under
``timm/<architecture>.<tag>``; fetch it on a machine with network access). timm reads it and drops the
ImageNet classifier. Without a file the backbone starts from random weights, and a warning says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import timm
from torch import nn

from fer_synth.console import warn
from fer_synth.errors import FerError


class WeightsError(FerError):
    """A weights file that cannot be used: wrong format, missing, or made for another architecture."""


def create_backbone(
    architecture: str, *, weights: str | os.PathLike | None, model: str, **timm_kwargs
) -> nn.Module:
    """``timm.create_model(architecture, **timm_kwargs)`` with ImageNet weights from ``weights``, if given.

    ``model`` is the registered name the user asked for; it is named in the warning and in errors.
    """
    if weights is None:
        warn(
            f"{model}: no ImageNet weights file given, so its {architecture} backbone starts from random weights "
            f"and will not reach the paper's accuracy; pass weights=PATH to a timm {architecture} .safetensors file"
        )
        return timm.create_model(architecture, pretrained=False, **timm_kwargs)
    path = Path(weights)
    if path.suffix != ".safetensors":
        raise WeightsError(
            f"{path}: ImageNet weights must be a .safetensors file (pickled .pth/.bin files are never loaded); "
            "convert one on a trusted machine with safetensors.torch.save_file(state_dict, 'model.safetensors')"
        )
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist; give the path to a timm {architecture} .safetensors file")
    try:
        # A file in the pretrained config makes timm read that file and nothing else (no hub, no URL).
        return timm.create_model(
            architecture, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **timm_kwargs
        )
    except RuntimeError as e:  # torch's load_state_dict lists every mismatching key on many lines
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise WeightsError(f"{path} does not fit {model}'s {architecture} backbone ({detail})") from None
