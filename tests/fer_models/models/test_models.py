"""The models of the training issue: VGGNet's size, the small CNN, timm:<name>, local weights files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from fer_models.models import UnknownModelError, create_model, get_spec, list_models
from fer_synth.core.errors import FerError


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_vgg_matches_the_paper():
    with torch.device("meta"):
        model = create_model("vgg")
    assert abs(_params(model) - 29.9e6) / 29.9e6 < 0.01
    spec = get_spec("khaireddin-vgg")
    assert (spec.name, spec.input_size, spec.in_chans, spec.recipe) == ("vgg", 40, 1, "khaireddin-vgg")


@pytest.mark.parametrize("name", ["small-cnn", "vgg"])
def test_forward_backward_at_input_size(name):
    model = create_model(name)
    spec = model.spec
    x = torch.randn(2, spec.in_chans, spec.input_size, spec.input_size)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert {s.name for s in list_models()} >= {"small-cnn", "vgg"}


def test_timm_models_build_offline_with_local_weights(tmp_path):
    model = create_model("timm:resnet18", num_classes=7)
    assert model.spec.in_chans == 3 and model.spec.input_size == 224
    assert model(torch.randn(2, 3, 48, 48)).shape == (2, 7)
    # "ImageNet" weights: a 1000-class head is skipped, everything else is loaded.
    donor = create_model("timm:resnet18", num_classes=1000)
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, tmp_path / "imagenet.safetensors")
    loaded = create_model("timm:resnet18", num_classes=7, weights=tmp_path / "imagenet.safetensors")
    assert torch.equal(loaded.conv1.weight, donor.conv1.weight)
    assert loaded.fc.weight.shape == (7, 512)
    with pytest.raises(UnknownModelError, match="timm architecture"):
        create_model("timm:no_such_net")
    save_file({"unrelated": torch.zeros(3)}, tmp_path / "wrong.safetensors")
    with pytest.raises(FerError, match="matches"):
        create_model("small-cnn", weights=tmp_path / "wrong.safetensors")
    (tmp_path / "w.pth").write_bytes(b"")
    with pytest.raises(FerError, match="safetensors"):
        create_model("small-cnn", weights=tmp_path / "w.pth")
