"""HDF5 -> tensors, batched augmentation on the tensors' device, and test-time views.

FER2013 is under 100 MB as uint8, so a split is held whole as one uint8 tensor (in GPU memory when training
on a GPU) and every batch is cut, augmented and resized there: no loader processes, no host copies.

Every geometric change (random resized crop, translation, rotation, flip, and the resize to the model's
input size) is one affine map per image, applied by a single ``grid_sample``. The model's input size decides
the *view*: a model smaller than the stored 48x48 faces sees a crop of its own size (VGG's 40x40 ten-crops),
a larger one the whole face upscaled (224 for ImageNet backbones). Gray is repeated to three channels for
models that want them, normalised with ImageNet statistics so local ImageNet weights fit.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fer_synth.core import store
from fer_synth.core.classes import NUM_CLASSES, ClassList
from fer_synth.core.dataset import SYNTHETIC
from fer_synth.core.errors import DatasetError, InvalidOptionError

GRAY_MEAN, GRAY_STD = 0.508, 0.255  # FER2013 train pixels
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TTA_MODES: tuple[str, ...] = ("none", "flip", "ten-crop")
TEN_CROP_FRACTION = 0.875  # window of a ten-crop when the model takes the whole face (224 of 256)


@dataclass
class TensorSplit:
    """One split as tensors on one device: uint8 images [N, H, W], int64 labels [N] into ``classes``, uint8
    source [N], and the soft labels [N, C] (float32) when the file has them (FER+ vote distributions)."""

    name: str
    images: Tensor
    labels: Tensor
    source: Tensor
    classes: ClassList
    soft_labels: Tensor | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_synthetic(self) -> int:
        return int((self.source == SYNTHETIC).sum())

    def counts(self) -> Tensor:
        return torch.bincount(self.labels, minlength=len(self.classes))


def load_split(path: str | os.PathLike, split: str, device: str | torch.device = "cpu") -> TensorSplit:
    """Read ``split`` of a fer_synth HDF5 file (through :mod:`fer_synth.core.store`) onto ``device``."""
    s = store.read_split(path, split, provenance=False)
    device = torch.device(device)
    return TensorSplit(
        split,
        torch.from_numpy(s.images).to(device),
        torch.from_numpy(s.labels).to(device),
        torch.from_numpy(s.source).to(device),
        s.classes,
        None if s.soft_labels is None else torch.from_numpy(s.soft_labels).to(device),
    )


def load_scored_split(
    path: str | os.PathLike, split: str, device: str | torch.device = "cpu", fix: str = "choose another --split"
) -> TensorSplit:
    """:func:`load_split` for scoring (evaluate, ensembles): a split without rows is refused, since metrics or
    ensemble weights of no rows are no result. ``fix`` says what to do instead."""
    loaded = load_split(path, split, device)
    if not len(loaded):
        raise DatasetError(f"{path}: the {split} split is empty (0 rows), nothing to score; {fix}")
    return loaded


def data_identity(path: str | os.PathLike) -> dict:
    """What a checkpoint records about its data file: path, content fingerprint, format and provenance."""
    attrs = store.read_attrs(path)
    return {
        "path": str(Path(path).resolve()),
        "fingerprint": attrs.get("fingerprint"),
        "format_version": attrs.get("format_version"),
        "synthetic_in_eval": bool(attrs.get("synthetic_in_eval")),
        "created": attrs.get("created"),
        "writer": attrs.get("writer"),
    }


@dataclass(frozen=True)
class Augment:
    """Training augmentation; the defaults change nothing.

    ``scale``: area of the crop window relative to the model's view (RandomResizedCrop; above 1 zooms out),
    ``ratio``: its aspect range, ``translate``: shift as a fraction of the face, ``rotate``: degrees,
    ``erasing``: probability of a random erased rectangle, ``noise``: Gaussian noise std on 0..1 pixels,
    ``mixup``/``cutmix``: Beta alpha (0 = off; both on: one of the two per batch).

    Photo-domain augmentation imitates what happens to a photograph's face on its way to 48x48 (``predict``,
    the judge): each is the probability that an image gets it. ``downscale``: sampled down to 40-90% of its side
    and back up (a small face in a large photo); ``blur``: Gaussian blur, sigma 0.3-1.2 px (focus, motion);
    ``jpeg``: JPEG-compressed at quality 30-90; ``gamma``: gamma 0.67-1.5 and contrast 0.7-1.3 (exposure, light).
    """

    scale: tuple[float, float] = (1.0, 1.0)
    ratio: tuple[float, float] = (1.0, 1.0)
    translate: float = 0.0
    rotate: float = 0.0
    hflip: bool = False
    erasing: float = 0.0
    noise: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    downscale: float = 0.0
    blur: float = 0.0
    jpeg: float = 0.0
    gamma: float = 0.0


def view_half_size(input_size: int, image_size: int) -> float:
    """Half-width, in grid_sample's [-1, 1] coordinates, of the window a model of ``input_size`` sees."""
    return min(1.0, input_size / image_size)


def _theta(half_w: Tensor, half_h: Tensor, cx: Tensor, cy: Tensor, angle: Tensor, flip: Tensor) -> Tensor:
    """Affine maps [B, 2, 3] from output to input coordinates: rotate(angle) . scale(flip*half_w, half_h)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    sx = half_w * torch.where(flip, -1.0, 1.0)
    return torch.stack(
        [torch.stack([cos * sx, -sin * half_h, cx], -1), torch.stack([sin * sx, cos * half_h, cy], -1)], -2
    )


def render(images: Tensor, theta: Tensor, input_size: int, in_chans: int) -> Tensor:
    """uint8 [B, H, W] -> normalised float [B, in_chans, input_size, input_size] through affine maps."""
    return normalise(sample(images, theta, input_size), in_chans)


def sample(images: Tensor, theta: Tensor, input_size: int) -> Tensor:
    """uint8 [B, H, W] -> 0..1 gray [B, 1, input_size, input_size] through affine maps (one grid_sample)."""
    x = images[:, None].float().div_(255)
    grid = F.affine_grid(theta.to(x.dtype), [len(x), 1, input_size, input_size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def normalise(x: Tensor, in_chans: int) -> Tensor:
    """0..1 gray [B, 1, S, S] -> the model's channels and statistics."""
    if in_chans == 1:
        return (x - GRAY_MEAN) / GRAY_STD
    mean = x.new_tensor(IMAGENET_MEAN[:in_chans]).view(1, -1, 1, 1)
    std = x.new_tensor(IMAGENET_STD[:in_chans]).view(1, -1, 1, 1)
    return (x.expand(-1, in_chans, -1, -1) - mean) / std


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def augment_batch(images: Tensor, aug: Augment, input_size: int, in_chans: int, g: torch.Generator) -> Tensor:
    """A randomly augmented, model-ready batch from uint8 faces [B, H, W], all on ``images``' device."""
    n, device = len(images), images.device
    base = view_half_size(input_size, images.shape[-1])
    area = _uniform(n, *aug.scale, g, device)
    log_ratio = _uniform(n, math.log(aug.ratio[0]), math.log(aug.ratio[1]), g, device)
    half_w = base * torch.sqrt(area * torch.exp(log_ratio))
    half_h = base * torch.sqrt(area / torch.exp(log_ratio))
    # The window may move anywhere inside the face, plus the translation.
    room_x, room_y = (1 - half_w).clamp(min=0), (1 - half_h).clamp(min=0)
    cx = (torch.rand(n, generator=g, device=device) * 2 - 1) * room_x
    cy = (torch.rand(n, generator=g, device=device) * 2 - 1) * room_y
    cx = cx + _uniform(n, -2 * aug.translate, 2 * aug.translate, g, device)
    cy = cy + _uniform(n, -2 * aug.translate, 2 * aug.translate, g, device)
    angle = _uniform(n, -aug.rotate, aug.rotate, g, device) * (math.pi / 180)
    flip = (torch.rand(n, generator=g, device=device) < 0.5) & aug.hflip
    x = sample(images, _theta(half_w, half_h, cx, cy, angle, flip), input_size)
    x = photo_degrade(x, aug, g)
    x = normalise(x, in_chans)
    if aug.noise:
        x = x + torch.randn(x.shape, generator=g, device=device) * (aug.noise / _std(in_chans))
    if aug.erasing:
        x = _erase(x, aug.erasing, g)
    return x


DOWNSCALE_RANGE = (0.4, 0.9)  # side kept by ``downscale``
BLUR_SIGMA = (0.3, 1.2)  # pixels of the rendered view
JPEG_QUALITY = (30, 90)
GAMMA_RANGE, CONTRAST_RANGE = (2 / 3, 1.5), (0.7, 1.3)


def photo_degrade(x: Tensor, aug: Augment, g: torch.Generator) -> Tensor:
    """The photo-domain augmentations of ``aug`` on 0..1 gray views [B, 1, S, S], in the order a photograph
    meets them: resolution, focus, compression, then exposure."""
    if aug.downscale:
        x = _downscale(x, aug.downscale, g)
    if aug.blur:
        x = _blur(x, aug.blur, g)
    if aug.jpeg:
        x = _jpeg(x, aug.jpeg, g)
    if aug.gamma:
        x = _gamma_contrast(x, aug.gamma, g)
    return x


def _chosen(n: int, p: float, g: torch.Generator, device) -> Tensor:
    return torch.rand(n, generator=g, device=device) < p


def _downscale(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """Area-downsample the chosen views to one random side per batch (resizes do not batch over sizes) and
    upsample back bilinearly, as a small face in a photograph is."""
    on = _chosen(len(x), p, g, x.device)
    if not on.any():
        return x
    size = x.shape[-1]
    low = max(2, round(size * float(_uniform(1, *DOWNSCALE_RANGE, g, x.device))))
    small = F.interpolate(x[on], size=(low, low), mode="area")
    x = x.clone()
    x[on] = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
    return x


def _blur(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """Gaussian blur with a sigma per image: one grouped separable convolution for the batch."""
    n, device = len(x), x.device
    sigma = _uniform(n, *BLUR_SIGMA, g, device)
    on = _chosen(n, p, g, device)
    radius = math.ceil(3 * BLUR_SIGMA[1])
    offsets = torch.arange(-radius, radius + 1, device=device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma.to(x.dtype).view(-1, 1)) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)
    identity = (offsets == 0).to(x.dtype).expand(n, -1)
    kernel = torch.where(on.view(-1, 1), kernel, identity)
    h, w = x.shape[-2:]
    y = F.pad(x.reshape(1, n, h, w), (radius, radius, radius, radius), mode="replicate")
    y = F.conv2d(y, kernel.view(n, 1, 1, -1), groups=n)
    y = F.conv2d(y, kernel.view(n, 1, -1, 1), groups=n)
    return y.view(n, 1, h, w)


def _jpeg(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """JPEG round trip of the chosen views at one random quality per batch (libjpeg through OpenCV, on the CPU)."""
    import cv2

    on = _chosen(len(x), p, g, x.device)
    if not on.any():
        return x
    quality = int(torch.randint(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, (1,), generator=g, device=g.device))
    chosen = x[on, 0].mul(255).round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()
    decoded = [
        cv2.imdecode(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)
        for face in chosen
    ]
    x = x.clone()
    x[on] = torch.from_numpy(np.stack(decoded))[:, None].to(x.device, x.dtype).div_(255)
    return x


def _gamma_contrast(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """A gamma and a contrast change about the image mean, per image, for the chosen views."""
    n, device = len(x), x.device
    on = _chosen(n, p, g, device).view(-1, 1, 1, 1)
    gamma = torch.exp(_uniform(n, math.log(GAMMA_RANGE[0]), math.log(GAMMA_RANGE[1]), g, device)).view(-1, 1, 1, 1)
    contrast = _uniform(n, *CONTRAST_RANGE, g, device).view(-1, 1, 1, 1)
    y = x.clamp(min=0).pow(gamma)
    mean = y.mean((-2, -1), keepdim=True)
    y = ((y - mean) * contrast + mean).clamp_(0, 1)
    return torch.where(on, y, x)


def _std(in_chans: int) -> float:
    return GRAY_STD if in_chans == 1 else sum(IMAGENET_STD) / 3


def _erase(x: Tensor, p: float, g: torch.Generator) -> Tensor:
    """Random erasing (Zhong et al. 2017): a rectangle of 2-33% of the area, aspect 0.3-3.3, set to the mean."""
    n, _, h, w = x.shape
    device = x.device
    area = _uniform(n, 0.02, 0.33, g, device) * h * w
    ratio = torch.exp(_uniform(n, math.log(0.3), math.log(3.3), g, device))
    eh = torch.sqrt(area * ratio).clamp(max=h)
    ew = torch.sqrt(area / ratio).clamp(max=w)
    top = torch.rand(n, generator=g, device=device) * (h - eh)
    left = torch.rand(n, generator=g, device=device) * (w - ew)
    on = torch.rand(n, generator=g, device=device) < p
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    box = (
        (rows >= top.view(-1, 1, 1))
        & (rows < (top + eh).view(-1, 1, 1))
        & (cols >= left.view(-1, 1, 1))
        & (cols < (left + ew).view(-1, 1, 1))
        & on.view(-1, 1, 1)
    )
    return x.masked_fill(box[:, None], 0.0)


def mix_batch(
    x: Tensor, targets: Tensor, aug: Augment, g: torch.Generator, num_classes: int = NUM_CLASSES
) -> tuple[Tensor, Tensor]:
    """Mixup or CutMix on a model-ready batch of class indices [B] (of ``num_classes`` classes) or soft targets
    [B, C]; returns images and soft targets."""
    targets = F.one_hot(targets, num_classes).to(x.dtype) if targets.ndim == 1 else targets.to(x.dtype)
    alphas = [a for a in (aug.mixup, aug.cutmix) if a]
    if not alphas:
        return x, targets
    # numpy draws the Beta variate, seeded from the torch generator so the run stays reproducible.
    rng = np.random.default_rng(int(torch.randint(2**62, (1,), generator=g, device=g.device)))
    use_cutmix = bool(aug.cutmix) and (not aug.mixup or rng.random() < 0.5)
    lam = float(rng.beta(aug.cutmix, aug.cutmix) if use_cutmix else rng.beta(aug.mixup, aug.mixup))
    perm = torch.randperm(len(x), generator=g, device=g.device).to(x.device)
    if use_cutmix:
        h, w = x.shape[-2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        x = x.clone()
        x[..., top : top + ch, left : left + cw] = x[perm][..., top : top + ch, left : left + cw]
        lam = 1 - ch * cw / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * targets + (1 - lam) * targets[perm]


def check_tta(tta: str) -> None:
    """Raise a one-line error for a TTA mode that is not one of :data:`TTA_MODES`."""
    if tta not in TTA_MODES:
        raise InvalidOptionError(f"unknown TTA {tta!r}; choose one of {', '.join(TTA_MODES)}")


def view_thetas(n: int, tta: str, input_size: int, image_size: int, device) -> list[Tensor]:
    """The deterministic test views: ``none`` (the model's centred view), ``flip`` (+ its mirror) or
    ``ten-crop`` (four corners and the centre, each also mirrored)."""
    check_tta(tta)
    base = view_half_size(input_size, image_size)
    ones = torch.ones(n, device=device)
    centres = [(0.0, 0.0)]
    if tta == "ten-crop":
        half = base if base < 1 else TEN_CROP_FRACTION
        off = 1 - half
        base = half
        centres += [(-off, -off), (off, -off), (-off, off), (off, off)]
    flips = (False, True) if tta in ("flip", "ten-crop") else (False,)
    return [
        _theta(base * ones, base * ones, cx * ones, cy * ones, 0 * ones, torch.full((n,), f, device=device))
        for cx, cy in centres
        for f in flips
    ]


def epoch_order(labels: Tensor, g: torch.Generator, balanced: bool = False) -> Tensor:
    """Row order for one epoch: a permutation, or for ``balanced`` as many draws with replacement,
    each class equally likely (the class-balanced sampler)."""
    n = len(labels)
    if not balanced:
        return torch.randperm(n, generator=g, device=g.device).to(labels.device)
    counts = torch.bincount(labels).clamp(min=1).to(torch.float64)
    weights = (1.0 / counts)[labels].to(g.device)
    return torch.multinomial(weights, n, replacement=True, generator=g).to(labels.device)


def batches(order: Tensor, batch_size: int, rank: int = 0, world_size: int = 1, drop_last: bool = True) -> list[Tensor]:
    """Cut an epoch's order into this rank's batches; every rank gets the same number of batches."""
    per_rank = len(order) // world_size
    mine = order[rank * per_rank : (rank + 1) * per_rank]
    stop = len(mine) - len(mine) % batch_size if drop_last and len(mine) >= batch_size else len(mine)
    return [mine[i : i + batch_size] for i in range(0, stop, batch_size)]
