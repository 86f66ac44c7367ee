"""Grad-CAM (fer_models.inference.explain): the map is where the evidence is, on the face's own pixels; every registered
model has a layer for it and runs through it; ensembles; `predict --explain` writes the overlays."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data
from torch import nn

from fer_models.cli import main
from fer_models.inference.classifier import Classifier, LoadedModel, load_classifier
from fer_models.inference.explain import (
    CamLayer,
    cam_layer,
    grad_cams,
    member_cams,
    overlay,
    paint,
)
from fer_models.models import create_model, get_spec, list_models
from fer_synth.core.errors import FerError
from fer_synth.core.images import save_png
from fer_synth.faces import blazeface
from tests.conftest import SHARED

FACE_MODEL = SHARED / "models" / blazeface.FACE_MODEL_NAME


class Brightness(nn.Module):
    """Logit 0 is the mean of the (ReLU'd) pixels, logit 1 its negative: class 0's Grad-CAM is the image itself
    (its weight is the same everywhere), class 1 has no positive evidence anywhere."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU())
        self.features[0].weight.data.fill_(1.0)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2, bias=False))
        self.head[-1].weight.data = torch.tensor([[1.0], [-1.0]])

    def get_cam_layer(self) -> nn.Module:
        return self.features

    def forward(self, x):
        return self.head(self.features(x))


def _member(model: nn.Module, input_size: int, in_chans: int = 1) -> LoadedModel:
    return LoadedModel(model.eval(), {"input_size": input_size, "in_chans": in_chans, "classes": ["a", "b"]}, "none")


@pytest.mark.parametrize("input_size", [48, 40])
def test_the_map_lies_on_the_evidence_in_the_faces_own_pixels(input_size):
    """A bright square at rows 10-17, columns 20-29 of a dark face: class 0's map is high exactly there. At input 40
    the model sees the face's central 40x40 (as predict does), and the map still lands on the face's pixels."""
    faces = np.zeros((2, 48, 48), np.uint8)
    faces[:, 10:18, 20:30] = 255
    cams = member_cams(_member(Brightness(), input_size), torch.from_numpy(faces), torch.tensor([0, 1])).numpy()
    assert cams.shape == (2, 48, 48)
    square = np.zeros((48, 48), bool)
    square[10:18, 20:30] = True
    inside, outside = cams[0][square], cams[0][~square]
    assert inside.max() == pytest.approx(1.0) and np.median(inside) > 0.9
    assert np.quantile(outside, 0.95) < 0.05  # only the square's bilinear fringe is above zero
    assert np.argmax(cams[0]) in np.flatnonzero(square.ravel())
    assert np.all(cams[1] == 0)  # no positive evidence for class 1


def test_an_ensemble_map_is_the_weighted_mean_of_its_members():
    faces = np.zeros((1, 48, 48), np.uint8)
    faces[0, 5:15, 5:15] = 255
    left, right = Brightness(), Brightness()
    right.features[0].weight.data.fill_(-1.0)  # sees the dark background instead (ReLU of negated pixels)
    members = [_member(left, 48), _member(right, 48)]
    one = [member_cams(m, torch.from_numpy(faces), torch.tensor([0])).numpy() for m in members]
    ensemble = Classifier("toy", members, [3.0, 1.0], "weighted", "ensemble")
    np.testing.assert_allclose(grad_cams(ensemble, faces, [0]), 0.75 * one[0] + 0.25 * one[1], atol=1e-6)
    with pytest.raises(FerError, match="target classes"):
        grad_cams(ensemble, faces, [2])
    with pytest.raises(FerError, match="uint8"):
        grad_cams(ensemble, faces.astype(np.float32), [0])


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")  # builtin's weights onto meta
@pytest.mark.parametrize("name", [s.name for s in list_models()] + ["timm:resnet10t", "timm:vit_tiny_patch16_224"])
def test_every_model_has_a_layer_with_a_spatial_map(name):
    with torch.device("meta"):  # shapes only: costs no memory
        model = create_model(name, num_classes=3)
    layer = cam_layer(model)
    assert isinstance(layer, CamLayer) and any(m is layer.module for m in model.modules())
    assert (layer.grid is not None) == name.startswith(("eva02", "timm:vit"))


def _architectures() -> list[str]:
    """One model per architecture: the bigger EmoNeXt sizes are the same class as emonext-tiny (checked below)."""
    return [spec.name for spec in list_models() if not spec.name.startswith("emonext-") or spec.name == "emonext-tiny"]


@pytest.mark.parametrize("name", _architectures())
def test_grad_cam_runs_on_every_registered_model(name):
    spec = get_spec(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    faces = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8))
    cams = member_cams(_member(model, spec.input_size, spec.in_chans), faces, torch.tensor([0, 4]))
    assert cams.shape == (2, 48, 48) and torch.isfinite(cams).all()
    assert cams.min() >= 0 and cams.max() <= 1 + 1e-6
    assert all(p.grad is None for p in model.parameters())  # explaining trains nothing


def test_the_bigger_emonext_sizes_share_emonext_tinys_layer():
    with torch.device("meta"):
        kinds = {type(create_model(spec.name)) for spec in list_models() if spec.name.startswith("emonext-")}
    assert len(kinds) == 1


def test_overlay_and_paint_stay_inside_the_face_frame():
    image = np.full((100, 120, 3), 128, np.uint8)
    cam = np.zeros((48, 48), np.float32)
    cam[:24] = 1.0
    painted = image.copy()
    paint(painted, (90, -10, 40), cam)  # partly outside the image: clipped
    changed = np.any(painted != image, axis=2)
    assert changed[:30, 90:].any() and not changed[:, :90].any() and not changed[30:].any()
    assert overlay(np.zeros((10, 10), np.uint8), cam).shape == (10, 10, 3)


def test_predict_explain_writes_the_heatmaps_beside_the_annotations(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_SYNTH_OFFLINE", "1")
    photo = tmp_path / "in" / "astronaut.png"
    save_png(data.astronaut(), photo)
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "predict",
            str(photo),
            "--face-model",
            str(FACE_MODEL),
            "--annotate",
            str(tmp_path / "boxes"),
            "--explain",
            str(tmp_path / "heat"),
        ],
    )
    assert result.exit_code == 0, result.output
    boxes = np.asarray(Image.open(tmp_path / "boxes" / "astronaut.png"))
    heat = np.asarray(Image.open(tmp_path / "heat" / "astronaut.png"))
    differs = np.any(boxes != heat, axis=2)
    ys, xs = np.nonzero(differs)
    assert 150 < xs.mean() < 300 and 50 < ys.mean() < 220  # the heatmap sits on the face, nothing else changed
    assert differs.sum() < 0.1 * differs.size
    assert json.loads((tmp_path / "heat" / "explanations.json").read_text())["command"] == "fer-models predict"
    same = runner.invoke(
        main,
        [
            "predict",
            str(photo),
            "--face-model",
            str(FACE_MODEL),
            "--annotate",
            str(tmp_path / "both"),
            "--explain",
            str(tmp_path / "both"),
        ],
    )
    assert same.exit_code == 2 and "same place" in same.output


def test_the_builtin_model_looks_at_the_face_not_the_border():
    """The shipped model's map for the astronaut's face: its centre of mass lies in the crop's middle, where the
    face is (a sanity check of the whole path with real weights)."""
    from fer_synth.faces.stage import FaceStage, FaceStageConfig

    with FaceStage(FaceStageConfig("mediapipe", filters="photo", face_model=str(FACE_MODEL))) as stage:
        crop = stage(data.astronaut()).faces[0]
    cam = grad_cams(load_classifier("builtin"), crop[None])[0]
    ys, xs = np.mgrid[:48, :48]
    centre = (float((cam * ys).sum() / cam.sum()), float((cam * xs).sum() / cam.sum()))
    assert 12 < centre[0] < 36 and 12 < centre[1] < 36
