"""Building a diffusers text-to-image pipeline from what a user types.

``--model`` may be a Hugging Face hub id, a local diffusers folder, a single ``.safetensors``
checkpoint, or ``tiny-random`` (a few-kilobyte random pipeline built in memory for offline smoke runs
and tests: it makes noise). Around the model: an optional separate VAE, a scheduler from
:data:`SCHEDULERS`, LoRA files, a tiny VAE decoder (TAESD, ``AutoencoderTiny``), ``torch.compile``,
the device and dtype. Every option is a keyword; nothing here downloads unless the hub is online and
the user named a hub id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from fer_synth.core.env import offline as hub_offline
from fer_synth.core.env import resolve_device
from fer_synth.generation.config import (
    DEFAULT_MODEL,
    DEFAULT_VAE,
    SCHEDULER_SPECS,
    TINY_RANDOM,
    ModelLoadError,
    PipelineOptions,
    is_local,
    resolve_dtype,
    resolved_vae,
)
from fer_synth.generation.tiny import tiny_random_pipeline

logger = logging.getLogger(__name__)


def create_scheduler(name: str, config: dict) -> Any:
    """The scheduler ``name`` (see :data:`SCHEDULER_SPECS`) built from a model's scheduler config."""
    import diffusers

    class_name, options = SCHEDULER_SPECS[name]
    return getattr(diffusers, class_name).from_config(config, **options)


#: Scheduler name -> factory from the model's scheduler config.
SCHEDULERS: dict[str, Callable[[dict], Any]] = {name: partial(create_scheduler, name) for name in SCHEDULER_SPECS}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_VAE",
    "DTYPES",
    "SCHEDULERS",
    "ModelLoadError",
    "PipelineOptions",
    "build_pipeline",
    "create_scheduler",
    "resolved_vae",
]


def _load(kind: str, name: str, loader: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a diffusers ``from_pretrained``-style loader, turning load failures into one clear line."""
    local = Path(name).expanduser()
    if is_local(name) and not local.exists():
        raise ModelLoadError(f"{kind} {name!r}: no such file or folder")
    offline = hub_offline()
    if not local.exists():
        kwargs["local_files_only"] = kwargs.get("local_files_only", False) or offline
    try:
        return loader(str(local) if local.exists() else name, **kwargs)
    except Exception as e:
        if local.exists():
            raise ModelLoadError(f"{kind} {name!r} cannot be loaded: {str(e).splitlines()[0]}") from e
        if not isinstance(e, (OSError, ValueError)):
            raise
        where = "the hub is offline (HF_HUB_OFFLINE=1)" if offline else "the hub could not be reached"
        raise ModelLoadError(
            f"{kind} {name!r} is not in the local Hugging Face cache and {where}; download it once "
            f"online, or pass a local diffusers folder (--model path/to/folder) or a single "
            f"checkpoint file (--model path/to/model.safetensors)"
        ) from e


def _load_base(model: str, dtype: torch.dtype, safety_checker: bool, config: str | None):
    from diffusers import AutoPipelineForText2Image, StableDiffusionPipeline

    extra: dict[str, Any] = {} if safety_checker else {"safety_checker": None, "requires_safety_checker": False}
    path = Path(model).expanduser()
    if model.endswith((".ckpt", ".pt", ".pth", ".bin")):
        raise ModelLoadError(
            f"{model!r} is a pickle checkpoint, which can run arbitrary code when loaded; convert it to "
            f".safetensors (or a diffusers folder) and pass that instead"
        )
    if model.endswith(".safetensors"):
        if config is not None:
            extra.update(config=str(Path(config).expanduser()), local_files_only=True)
        try:
            return _load("checkpoint", model, StableDiffusionPipeline.from_single_file, torch_dtype=dtype, **extra)
        except ModelLoadError as e:
            if config is not None or not path.exists():
                raise
            raise ModelLoadError(
                f"{e}. A single-file checkpoint needs its architecture's configs: online they come from "
                f"the hub; offline pass --config path/to/diffusers-folder of the same architecture"
            ) from e
    if path.is_dir() and not (path / "model_index.json").exists():
        raise ModelLoadError(
            f"{model!r} is a folder without model_index.json, so not a diffusers pipeline folder; "
            f"pass a diffusers folder (save_pretrained) or a single .safetensors checkpoint"
        )
    return _load("model", model, AutoPipelineForText2Image.from_pretrained, torch_dtype=dtype, **extra)


def build_pipeline(options: PipelineOptions, local_rank: int = 0):
    """Build a ready-to-call text-to-image pipeline from ``options`` (on this process's GPU under torchrun)."""
    options.check()
    device = resolve_device(options.device, local_rank)
    dtype = DTYPES[resolve_dtype(options.dtype, device)]

    if options.model == TINY_RANDOM:
        logger.warning("tiny-random: a random pipeline built in memory; it makes noise, for smoke runs and tests")
        pipe = tiny_random_pipeline(safety_checker=False)
    else:
        pipe = _load_base(options.model, dtype, options.safety_checker, options.config)
    vae = resolved_vae(options.model, options.vae)
    if vae is not None:
        from diffusers import AutoencoderKL

        pipe.vae = _load("VAE", vae, AutoencoderKL.from_pretrained, torch_dtype=dtype)
    if options.tiny_vae:
        from diffusers import AutoencoderTiny

        pipe.vae = _load("tiny VAE", options.tiny_vae, AutoencoderTiny.from_pretrained, torch_dtype=dtype)
    pipe.scheduler = create_scheduler(options.scheduler, pipe.scheduler.config)
    for i, lora in enumerate(options.lora):
        local = Path(lora).expanduser()
        if not local.exists() and is_local(lora):
            raise ModelLoadError(f"LoRA {lora!r}: no such file")
        try:
            pipe.load_lora_weights(str(local), adapter_name=f"lora{i}")
        except (OSError, ValueError, RuntimeError) as e:
            # A local file that does not fit this model (another architecture's LoRA: tensors of other shapes make
            # PyTorch raise RuntimeError) is the user's input, not a bug: one line, like any model file (_load).
            if isinstance(e, RuntimeError) and not local.exists():
                raise
            lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
            detail = next((line for line in lines if line.startswith("size mismatch")), lines[0])
            raise ModelLoadError(
                f"LoRA {lora!r} cannot be loaded into this model: {detail.rstrip(':.')}; pass a LoRA made for "
                "this model's architecture"
            ) from e
    if options.lora:
        # Folding the LoRA into the weights removes its per-step cost.
        pipe.fuse_lora()
        pipe.unload_lora_weights()
    if options.model == TINY_RANDOM and dtype != torch.float32:
        pipe = pipe.to(dtype=dtype)  # loaded models got their dtype at load time
    pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    if options.compile:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.unet = torch.compile(pipe.unet, fullgraph=True)
    return pipe
