"""What the environment decides, in one place for both packages: the device ``auto`` means, and whether
downloads are switched off."""

from __future__ import annotations

import os

DEVICE_HELP = "auto (cuda, then mps, then cpu) or a torch device such as cuda:1 or cpu."
#: Set to 1 to forbid every download (models, face detector); Hugging Face's own ``HF_HUB_OFFLINE`` counts too.
ENV_OFFLINE = "FER_SYNTH_OFFLINE"
_TRUE = {"1", "true", "yes", "on"}


def resolve_device(name: str = "auto", local_rank: int = 0) -> str:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``mps``, else ``cpu``. A bare ``cuda``
    also picks this process's GPU (``LOCAL_RANK`` under torchrun); any other name is returned as given (torch
    checks it when it is used)."""
    if name not in ("auto", "cuda"):
        return name
    import torch  # imported here: the data tools never need torch

    if name == "cuda" or torch.cuda.is_available():
        return f"cuda:{local_rank % max(torch.cuda.device_count(), 1)}"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def offline() -> bool:
    """True when downloads are off: ``FER_SYNTH_OFFLINE`` or Hugging Face's offline flag (variable or constant)."""
    if any(os.environ.get(v, "").lower() in _TRUE for v in (ENV_OFFLINE, "HF_HUB_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)
