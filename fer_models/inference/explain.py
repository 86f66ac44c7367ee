"""Where a model looks: Grad-CAM heatmaps of any classifier over the 48x48 faces it classifies.

Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", arXiv:1610.02391) weighs each channel of a late feature map by the mean gradient of a class's
logit and keeps the positive part of the sum. Captum's ``LayerGradCam`` computes it; this module picks the layer,
feeds the face as the model sees it (its centred view, no TTA) and maps the map back onto the 48x48 face.

The layer is a per-model contract (:func:`cam_layer`): a model's ``get_cam_layer()`` (every native model has one:
its last feature map that still has spatial extent), else timm's ``feature_info`` (its last stage). A ViT's last
stage gives tokens, which are laid out as their patch grid first. An ensemble's map is the weighted mean of its
members' (each scaled to 0..1), for the class the ensemble predicts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fer_models.data import render, view_half_size, view_thetas
from fer_models.inference.classifier import FACE_SIZE, Classifier, LoadedModel
from fer_synth.core.errors import FerError

logger = logging.getLogger(__name__)

HEAT_ALPHA = 0.45  # the heatmap's share of a pixel where it is painted


@dataclass(frozen=True)
class CamLayer:
    """The layer Grad-CAM reads: ``module``'s output [B, C, H, W], or, with ``grid`` (rows, columns), its tokens
    [B, prefix + rows * columns, C] (a ViT's: ``prefix_tokens`` class/register tokens first)."""

    module: nn.Module
    grid: tuple[int, int] | None = None
    prefix_tokens: int = 0


def cam_layer(model: nn.Module) -> CamLayer:
    """The layer whose activations explain ``model``'s prediction (see the module docstring)."""
    if hasattr(model, "get_cam_layer"):
        return CamLayer(model.get_cam_layer())
    info = getattr(model, "feature_info", None)
    if info:
        module = model.get_submodule(info[-1]["module"])
        grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
        if grid is not None:
            return CamLayer(module, tuple(grid), int(getattr(model, "num_prefix_tokens", 0)))
        return CamLayer(module)
    raise FerError(
        f"{type(model).__name__}: no layer for Grad-CAM; give the model a get_cam_layer() method returning "
        "the module whose output is its last spatial feature map [B, C, H, W]"
    )


class _TokenGrid(nn.Module):
    """The identity on patch tokens laid out as their grid: the layer Grad-CAM reads on a ViT."""

    def forward(self, x: Tensor) -> Tensor:
        return x


@contextmanager
def _readable(target: CamLayer) -> Iterator[nn.Module]:
    """The module for Captum to hook: ``target.module``, or for tokens a grid view spliced in after it."""
    if target.grid is None:
        yield target.module
        return
    grid_view = _TokenGrid()

    def through_grid(module: nn.Module, args: tuple, tokens: Tensor) -> Tensor:
        prefix = target.prefix_tokens
        batch, _, channels = tokens.shape
        patches = grid_view(tokens[:, prefix:].transpose(1, 2).reshape(batch, channels, *target.grid))
        return torch.cat([tokens[:, :prefix], patches.flatten(2).transpose(1, 2)], 1)

    handle = target.module.register_forward_hook(through_grid)
    try:
        yield grid_view
    finally:
        handle.remove()


def member_cams(member: LoadedModel, faces: Tensor, targets: Tensor) -> Tensor:
    """Grad-CAM of one model for ``targets`` [N] over uint8 faces [N, 48, 48]: float [N, 48, 48], each face's
    map scaled to 0..1 (all zero where the class has no positive evidence)."""
    from captum.attr import LayerGradCam

    model, size, in_chans = member.model, member.meta["input_size"], member.meta["in_chans"]
    device = next(model.parameters()).device
    faces, targets = faces.to(device), targets.to(device)
    theta = view_thetas(len(faces), "none", size, faces.shape[-1], device)[0]
    was_training = model.training
    model.eval()
    try:
        with _readable(cam_layer(model)) as layer, torch.enable_grad():
            cam = LayerGradCam(model, layer).attribute(
                render(faces, theta, size, in_chans), target=targets, relu_attributions=True
            )
    finally:
        model.train(was_training)
    cam = F.interpolate(cam.detach().float(), size=(size, size), mode="bilinear", align_corners=False)
    # The model saw the face's centred window (half-size h in grid coordinates): sample that window's map at
    # each face pixel, zero outside it.
    half = view_half_size(size, faces.shape[-1])
    zoom = torch.zeros(len(faces), 2, 3, device=device)
    zoom[:, 0, 0] = zoom[:, 1, 1] = 1 / half
    grid = F.affine_grid(zoom, [len(faces), 1, FACE_SIZE, FACE_SIZE], align_corners=False)
    cam = F.grid_sample(cam, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
    return (cam / peak).cpu()


def grad_cams(
    classifier: Classifier,
    faces: np.ndarray | Tensor,
    targets: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Where ``classifier`` looks on each uint8 face [N, 48, 48] to see class ``targets[i]`` (default: the class it
    predicts): float32 [N, 48, 48] in 0..1. An ensemble's map is its members' weighted mean."""
    if isinstance(faces, np.ndarray):
        faces = torch.from_numpy(np.ascontiguousarray(faces))
    if faces.ndim != 3 or tuple(faces.shape[1:]) != (FACE_SIZE, FACE_SIZE) or faces.dtype != torch.uint8:
        raise FerError(f"faces must be uint8 [N, {FACE_SIZE}, {FACE_SIZE}], got {faces.dtype} {tuple(faces.shape)}")
    if targets is None:
        targets = classifier.predict_proba(faces).argmax(1)
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    if len(targets) != len(faces):
        raise FerError(f"{len(faces)} faces but {len(targets)} target classes")
    if len(targets) and not 0 <= int(targets.min()) <= int(targets.max()) < len(classifier.classes):
        raise FerError(f"target classes must be in 0..{len(classifier.classes) - 1}")
    out = torch.zeros(len(faces), FACE_SIZE, FACE_SIZE)
    total = float(sum(classifier.weights))
    for start in range(0, len(faces), batch_size):
        chunk = slice(start, start + batch_size)
        for member, weight in zip(classifier.members, classifier.weights):
            out[chunk] += weight / total * member_cams(member, faces[chunk], targets[chunk])
    return out.numpy()


def heat_colours(cam: np.ndarray) -> np.ndarray:
    """A 0..1 map as RGB uint8 in the JET colour map (blue: nothing, red: where the model looks most)."""
    scaled = np.clip(cam * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(rgb: np.ndarray, cam: np.ndarray, alpha: float = HEAT_ALPHA) -> np.ndarray:
    """``rgb`` (uint8 HxWx3, or gray HxW) with the 0..1 map ``cam`` (any size) painted over it."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    height, width = rgb.shape[:2]
    heat = heat_colours(cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR))
    return cv2.addWeighted(rgb, 1 - alpha, heat, alpha, 0)


def paint(image: np.ndarray, frame: tuple[int, int, int], cam: np.ndarray, alpha: float = HEAT_ALPHA) -> None:
    """Paint the map of a face crop over ``image`` (RGB uint8, changed in place) where the crop came from: the square
    ``frame`` (x, y, side) of :func:`fer_synth.faces.stage.face_frame`, clipped to the image."""
    x, y, side = frame
    height, width = image.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, width), min(y + side, height)
    if x1 <= x0 or y1 <= y0:
        return
    full = cv2.resize(cam.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)
    part = full[y0 - y : y1 - y, x0 - x : x1 - x]
    image[y0:y1, x0:x1] = cv2.addWeighted(image[y0:y1, x0:x1], 1 - alpha, heat_colours(part), alpha, 0)


def class_mean_cams(
    classifier: Classifier, faces: np.ndarray, labels: np.ndarray, predicted: np.ndarray, per_class: int
) -> dict[int, tuple[np.ndarray, np.ndarray, int]]:
    """Per class k: (mean face, mean Grad-CAM for k, n) over the first ``per_class`` faces of class k (row order)
    that were predicted correctly; classes with none are left out."""
    means = {}
    for k in range(len(classifier.classes)):
        rows = np.flatnonzero((labels == k) & (predicted == k))[:per_class]
        if len(rows):
            cams = grad_cams(classifier, faces[rows], np.full(len(rows), k))
            means[k] = (faces[rows].mean(0).astype(np.uint8), cams.mean(0), len(rows))
    return means
