"""What a generation run is asked to do, as plain data (no torch, no diffusers): defaults, the pipeline's
options, and :class:`GenerateConfig`. The command line takes its defaults and choices from here."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fer_synth.core import classes
from fer_synth.core.env import resolve_device
from fer_synth.core.errors import FerError, InvalidOptionError

#: The seed's model: an SD 1.5 fine-tune whose repository ships no VAE on purpose.
DEFAULT_MODEL = "SG161222/Realistic_Vision_V6.0_B1_noVAE"
#: The VAE that Realistic Vision's "noVAE" release is meant to be paired with.
DEFAULT_VAE = "stabilityai/sd-vae-ft-mse"
TINY_RANDOM = "tiny-random"

#: Defaults: DPM-Solver++ 2M at 25 steps reaches the quality of the seed's 40 steps at 5/8 of the cost;
#: guidance 5.5 is the seed's tested value for Realistic Vision. See docs/generation.md.
DEFAULT_SCHEDULER = "dpmpp"
DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 5.5
DEFAULT_SIZE = 512
#: The largest side generated: SD 1.5 works at 512, SDXL at 1024; beyond 2048 is a typo that would allocate until the
#: machine runs out of memory (the faces end at 48x48 anyway).
MAX_SIZE = 2048
DEFAULT_BATCH = 4
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_OUT = "generated"
DEFAULT_CLASS_LIST = classes.FER2013.name
CLASS_LISTS: tuple[str, ...] = tuple(known.name for known in classes.KNOWN_LISTS)

#: Scheduler name -> (diffusers class, options over the model's scheduler config). ``dpmpp`` (DPM-Solver++
#: 2M) is the default: it reaches at 20-25 steps the quality PNDM/DDIM reach at 40-50.
SCHEDULER_SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "dpmpp": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp-karras": (
        "DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
    ),
    "unipc": ("UniPCMultistepScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "lcm": ("LCMScheduler", {}),  # for LCM-LoRA: --steps 4 --guidance 1
    "tcd": ("TCDScheduler", {}),  # for Hyper-SD / TCD LoRAs
}
DTYPE_NAMES: tuple[str, ...] = ("fp32", "fp16", "bf16")
#: Suffixes of single-file checkpoints; the pickle ones are refused (loading them can run code).
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


class ModelLoadError(FerError):
    """The model, VAE, LoRA or tiny decoder named by the user cannot be loaded."""


def is_local(name: str) -> bool:
    """Whether a model name means a local path (rather than a hub id)."""
    return Path(name).exists() or name.startswith((".", "/", "~")) or name.endswith(CHECKPOINT_SUFFIXES)


def _located(name: str | None) -> str | None:
    """A local model file's or folder's resolved absolute path; hub ids, ``tiny-random`` and None as they are."""
    if not name or name == TINY_RANDOM or not is_local(name):
        return name
    return os.path.realpath(Path(name).expanduser())


def resolve_dtype(dtype: str, device: str) -> str:
    """``auto`` -> fp16 on an accelerator (SD 1.5 is trained and shipped for it), fp32 on cpu."""
    if dtype == "auto":
        return "fp32" if device == "cpu" else "fp16"
    if dtype not in DTYPE_NAMES:
        raise InvalidOptionError(f"unknown dtype {dtype!r}; valid: auto, {', '.join(DTYPE_NAMES)}")
    return dtype


def resolved_vae(model: str, vae: str | None) -> str | None:
    """The VAE to load separately, or None to keep the model's own."""
    if vae in (None, "", "model"):
        return None
    if vae == "auto":
        return DEFAULT_VAE if model == DEFAULT_MODEL else None
    return vae


@dataclass
class PipelineOptions:
    """Everything that decides which pipeline is built (and so which pixels come out)."""

    model: str = DEFAULT_MODEL
    vae: str = "auto"  # "auto": DEFAULT_VAE for DEFAULT_MODEL, else the model's own; "model": its own
    scheduler: str = DEFAULT_SCHEDULER
    dtype: str = "auto"  # auto: fp16 on cuda/mps, fp32 on cpu
    device: str = "auto"  # auto: cuda, mps, cpu
    safety_checker: bool = True  # keep the model's checker when it ships one
    tiny_vae: str | None = None  # e.g. "madebyollin/taesd" (SD 1.5) or a local folder
    lora: Sequence[str] = field(default_factory=tuple)
    compile: bool = False
    config: str | None = None  # a diffusers folder whose configs a single-file checkpoint uses offline

    def check(self) -> None:
        """Fail fast, before anything loads, on unknown names and local paths that do not exist."""
        if self.scheduler not in SCHEDULER_SPECS:
            raise InvalidOptionError(f"unknown scheduler {self.scheduler!r}; valid: {', '.join(SCHEDULER_SPECS)}")
        if self.dtype != "auto":
            resolve_dtype(self.dtype, "cpu")
        for kind, name in (
            ("model", self.model),
            ("vae", self.vae),
            ("tiny VAE", self.tiny_vae),
            ("config", self.config),
            *(("LoRA", path) for path in self.lora),
        ):
            if (
                name
                and name not in ("auto", "model", TINY_RANDOM)
                and is_local(str(name))
                and not Path(name).expanduser().exists()
            ):
                raise ModelLoadError(f"{kind} {name!r}: no such file or folder")
        resolve_device(self.device)  # an unknown device, or one this machine lacks, fails here

    def local_files(self) -> list[Path]:
        """The local files and folders the pipeline loads: inputs, which no output may overwrite."""
        names = (self.model, self.vae, self.tiny_vae, self.config, *self.lora)
        return [
            Path(n).expanduser() for n in names if n and n not in ("auto", "model", TINY_RANDOM) and is_local(str(n))
        ]

    def settings(self) -> dict:
        """The JSON-ready options that change the images (device and compile do not). Local files are named by
        their resolved absolute path, as ``crop`` names its input: ``tiny-sd``, ``./tiny-sd/`` and a link to it
        are one model (the same command resumes under any spelling), and ``tiny-sd`` typed in another folder is
        another model (refused, not mixed into the run)."""
        d = asdict(self)
        d["model"] = _located(self.model)
        d["vae"] = _located(resolved_vae(self.model, self.vae))
        d["tiny_vae"] = _located(self.tiny_vae)
        d["dtype"] = resolve_dtype(self.dtype, resolve_device(self.device))
        d["lora"] = [_located(str(p)) for p in self.lora]
        d.pop("device")
        d.pop("compile")
        d.pop("config")
        return d


@dataclass
class GenerateConfig:
    """One generation run (the CLI's options, as a notebook would pass them)."""

    emotions: Sequence[str]  # names or aliases in ``class_list``; "all" = every class of it
    n: int
    seed: int = 0
    out: Path = Path(DEFAULT_OUT)
    steps: int = DEFAULT_STEPS
    guidance: float = DEFAULT_GUIDANCE
    height: int = DEFAULT_SIZE
    width: int = DEFAULT_SIZE
    batch_size: int = DEFAULT_BATCH
    prompts: str | Path | None = None  # a prompt file; None = the default one
    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    keep_raw: bool = False  # with a face stage: also keep the full-size images under OUT/raw/<class>/
    max_attempts: int = DEFAULT_MAX_ATTEMPTS  # with a face stage: attempts per wanted face
    class_list: str = DEFAULT_CLASS_LIST  # the known class list (fer2013, ferplus) the emotions belong to

    def resolved(self) -> GenerateConfig:
        """A validated copy with canonical class names and ``out`` as a Path; raises before anything loads."""
        emotions = tuple(classes.known_list(self.class_list).resolve_many(self.emotions))
        self.pipeline.check()
        for name, value, low in (
            ("n", self.n, 1),
            ("steps", self.steps, 1),
            ("batch-size", self.batch_size, 1),
            ("max-attempts", self.max_attempts, 1),
            ("seed", self.seed, 0),
        ):
            if value < low:
                raise InvalidOptionError(f"--{name} must be at least {low} (got {value})")
        if self.guidance < 0:
            raise InvalidOptionError(f"--guidance must be >= 0 (got {self.guidance})")
        if (
            self.height % 8
            or self.width % 8
            or not 8 <= min(self.height, self.width) <= max(self.height, self.width) <= MAX_SIZE
        ):
            raise InvalidOptionError(
                f"image size must be a multiple of 8 from 8 to {MAX_SIZE} (got {self.width}x{self.height})"
            )
        return dataclasses.replace(self, emotions=emotions, out=Path(self.out))
