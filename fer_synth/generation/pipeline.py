"""Building a diffusers text-to-image pipeline from what a user types.

``--model`` may be a Hugging Face hub id, a local diffusers folder, a single ``.safetensors``
checkpoint, or ``tiny-random`` (a few-kilobyte random pipeline built in memory for offline smoke runs
and tests: it makes noise). Around the model: an optional separate VAE, a scheduler from
:data:`SCHEDULERS`, LoRA files, a tiny VAE decoder (TAESD, ``AutoencoderTiny``), ``torch.compile``,
the device and dtype. Every option is a keyword; nothing here downloads unless the hub is online and
the user named a hub id.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fer_synth.core.errors import FerError

#: The seed's model: an SD 1.5 fine-tune whose repository ships no VAE on purpose.
DEFAULT_MODEL = "SG161222/Realistic_Vision_V6.0_B1_noVAE"
#: The VAE that Realistic Vision's "noVAE" release is meant to be paired with.
DEFAULT_VAE = "stabilityai/sd-vae-ft-mse"
TINY_RANDOM = "tiny-random"
TINY_CONTEXT = 512  # the tiny text encoder's context, in characters


class ModelLoadError(FerError):
    """The model, VAE, LoRA or tiny decoder named by the user cannot be loaded."""


def _dpmpp(config: dict, karras: bool = False):
    from diffusers import DPMSolverMultistepScheduler

    return DPMSolverMultistepScheduler.from_config(
        config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=karras
    )


def _simple(class_name: str, **overrides: Any) -> Callable[[dict], Any]:
    def make(config: dict):
        import diffusers

        return getattr(diffusers, class_name).from_config(config, **overrides)

    return make


#: Scheduler name -> factory from the model's scheduler config. ``dpmpp`` (DPM-Solver++ 2M) is the
#: default: it reaches at 20-25 steps the quality PNDM/DDIM reach at 40-50.
SCHEDULERS: dict[str, Callable[[dict], Any]] = {
    "dpmpp": _dpmpp,
    "dpmpp-karras": lambda config: _dpmpp(config, karras=True),
    "unipc": _simple("UniPCMultistepScheduler"),
    "euler": _simple("EulerDiscreteScheduler"),
    "euler-a": _simple("EulerAncestralDiscreteScheduler"),
    "ddim": _simple("DDIMScheduler"),
    "pndm": _simple("PNDMScheduler", skip_prk_steps=True),
    "lcm": _simple("LCMScheduler"),  # for LCM-LoRA: --steps 4 --guidance 1
    "tcd": _simple("TCDScheduler"),  # for Hyper-SD / TCD LoRAs
}

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class PipelineOptions:
    """Everything that decides which pipeline is built (and so which pixels come out)."""

    model: str = DEFAULT_MODEL
    vae: str = "auto"  # "auto": DEFAULT_VAE for DEFAULT_MODEL, else the model's own; "model": its own
    scheduler: str = "dpmpp"
    dtype: str = "auto"  # auto: fp16 on cuda/mps, fp32 on cpu
    device: str = "auto"  # auto: cuda, mps, cpu
    safety_checker: bool = True  # keep the model's checker when it ships one
    tiny_vae: str | None = None  # e.g. "madebyollin/taesd" (SD 1.5) or a local folder
    lora: Sequence[str] = field(default_factory=tuple)
    compile: bool = False
    config: str | None = None  # a diffusers folder whose configs a single-file checkpoint uses offline

    def check(self) -> None:
        """Fail fast, before anything loads, on local paths that do not exist."""
        for kind, name in (("model", self.model), ("vae", self.vae), ("tiny VAE", self.tiny_vae),
                           ("config", self.config), *(("LoRA", path) for path in self.lora)):
            if name and name not in ("auto", "model", TINY_RANDOM) and _is_local(str(name)) \
                    and not Path(name).expanduser().exists():
                raise ModelLoadError(f"{kind} {name!r}: no such file or folder")

    def settings(self) -> dict:
        """The JSON-ready options that change the images (device and compile do not)."""
        d = asdict(self)
        d["vae"] = resolved_vae(self.model, self.vae)
        d["dtype"] = resolve_dtype(self.dtype, resolve_device(self.device))
        d["lora"] = [str(p) for p in self.lora]
        d.pop("device")
        d.pop("compile")
        d.pop("config")
        return d


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``mps``, else ``cpu``."""
    if device != "auto":
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` -> fp16 on an accelerator (SD 1.5 is trained and shipped for it), fp32 on cpu."""
    if dtype == "auto":
        return "fp32" if device == "cpu" else "fp16"
    if dtype not in DTYPES:
        raise FerError(f"unknown dtype {dtype!r}; valid: auto, {', '.join(DTYPES)}")
    return dtype


def resolved_vae(model: str, vae: str | None) -> str | None:
    """The VAE to load separately, or None to keep the model's own."""
    if vae in (None, "", "model"):
        return None
    if vae == "auto":
        return DEFAULT_VAE if model == DEFAULT_MODEL else None
    return vae


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def _is_local(name: str) -> bool:
    return Path(name).exists() or name.startswith((".", "/", "~")) or name.endswith(
        (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
    )


def _load(kind: str, name: str, loader: Callable[..., Any], **kwargs: Any) -> Any:
    """Call a diffusers ``from_pretrained``-style loader, turning load failures into one clear line."""
    local = Path(name).expanduser()
    if _is_local(name) and not local.exists():
        raise ModelLoadError(f"{kind} {name!r}: no such file or folder")
    offline = _offline()
    if not local.exists():
        kwargs["local_files_only"] = kwargs.get("local_files_only", False) or offline
    try:
        return loader(str(local) if local.exists() else name, **kwargs)
    except Exception as e:  # noqa: BLE001 - a user's damaged file raises many types; each becomes one line
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


def build_pipeline(options: PipelineOptions, log: Callable[[str], None] = lambda _: None):
    """Build a ready-to-call text-to-image pipeline from ``options``."""
    device = resolve_device(options.device)
    dtype = DTYPES[resolve_dtype(options.dtype, device)]
    if options.scheduler not in SCHEDULERS:
        raise FerError(f"unknown scheduler {options.scheduler!r}; valid: {', '.join(SCHEDULERS)}")

    if options.model == TINY_RANDOM:
        log("tiny-random: a random pipeline built in memory; it makes noise, for smoke runs and tests")
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
    pipe.scheduler = SCHEDULERS[options.scheduler](pipe.scheduler.config)
    for i, lora in enumerate(options.lora):
        if not Path(lora).expanduser().exists() and _is_local(lora):
            raise ModelLoadError(f"LoRA {lora!r}: no such file")
        try:
            pipe.load_lora_weights(str(Path(lora).expanduser()), adapter_name=f"lora{i}")
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"LoRA {lora!r} cannot be loaded: {str(e).splitlines()[0]}") from e
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


# --- the tiny random pipeline -------------------------------------------------------------------

def _tiny_tokenizer():
    """A CLIP tokenizer from a hand-written vocabulary: one token per printable ASCII character."""
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    # One token per character, so real prompts need a long context to avoid truncation.
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TINY_CONTEXT)


def tiny_random_pipeline(seed: int = 0, safety_checker: bool = False):
    """A StableDiffusionPipeline with the SD 1.5 layout at a toy size and random weights.

    Its weights come from ``seed``, so two builds give identical pixels. With ``safety_checker`` it
    carries a tiny random :class:`StableDiffusionSafetyChecker` (tests set its thresholds).
    """
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    tokenizer = _tiny_tokenizer()
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(16, 32),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=4,
            norm_num_groups=8,
        )
        vae = AutoencoderKL(  # four blocks: the 8x down-sampling of SD's VAE, so TAESD fits it
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 8, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            latent_channels=4,
            norm_num_groups=8,
            layers_per_block=1,
            sample_size=64,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=TINY_CONTEXT,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        checker = feature_extractor = None
        if safety_checker:
            from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker

            checker = StableDiffusionSafetyChecker(
                CLIPConfig(
                    text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                 "num_attention_heads": 2, "vocab_size": 100,
                                 "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
                    vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                    projection_dim=16,
                )
            )
            feature_extractor = CLIPImageProcessor(crop_size=32, size={"shortest_edge": 32})
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
        skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading",
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=checker,
        feature_extractor=feature_extractor,
        requires_safety_checker=False,
    )

