"""What the environment decides, in one place for both packages: the device ``auto`` means, and whether
downloads are switched off."""

from __future__ import annotations

import os

from fer_synth.core.errors import InvalidOptionError

DEVICE_HELP = "auto (cuda, then mps, then cpu) or a torch device such as cuda:1 or cpu."
#: Set to 1 to forbid every download (models, face detector); Hugging Face's own ``HF_HUB_OFFLINE`` counts too.
ENV_OFFLINE = "FER_SYNTH_OFFLINE"
_TRUE = {"1", "true", "yes", "on"}


def resolve_device(name: str = "auto", local_rank: int = 0) -> str:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``mps``, else ``cpu``. A bare ``cuda``
    also picks this process's GPU (``LOCAL_RANK`` under torchrun). A name torch does not know, or a device this
    machine lacks (``cuda`` without a GPU, ``cuda:3`` with two), is an :class:`InvalidOptionError`."""
    import torch  # imported here: the data tools never need torch

    name = str(name).strip().lower()
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return f"cuda:{local_rank % torch.cuda.device_count()}"
        return "mps" if has_mps else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise InvalidOptionError(f"--device {name!r} is not a device; use {DEVICE_HELP}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidOptionError(
                f"--device {name}: no CUDA GPU is usable here (torch.cuda.is_available() is "
                "False); use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if device.index is None:
            return f"cuda:{local_rank % count}"
        if device.index >= count:
            raise InvalidOptionError(
                f"--device {name}: this machine has {count} CUDA GPU(s), cuda:0 to "
                f"cuda:{count - 1}; use one of them, or auto"
            )
    elif device.type == "mps" and not has_mps:
        raise InvalidOptionError(f"--device {name}: MPS (Apple GPU) is not available here; use --device cpu or auto")
    elif device.type != "cpu":
        raise InvalidOptionError(f"--device {name}: this tool runs on cpu, cuda or mps; use {DEVICE_HELP}")
    return str(device)


def offline() -> bool:
    """True when downloads are off: ``FER_SYNTH_OFFLINE`` or Hugging Face's offline flag (variable or constant)."""
    if any(os.environ.get(v, "").lower() in _TRUE for v in (ENV_OFFLINE, "HF_HUB_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)
