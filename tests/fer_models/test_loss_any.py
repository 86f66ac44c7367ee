"""EmoNeXt's loss and focal loss with any model: the feature tap, the regulariser, its training and checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from fer_models import checkpoint as ckpt
from fer_models.cli import main
from fer_models.features import FeatureTap, find_classifier
from fer_models.losses import BatchAttentionVariance, build_loss
from fer_models.models import create_model, list_models
from fer_models.training.loop import train
from fer_synth.core import store
from fer_synth.core.errors import FerError
from tests.conftest import make_split
from tests.fer_models.helpers import tiny_config


@pytest.fixture(scope="module")
def four_faces(tmp_path_factory) -> Path:
    """One training batch of 4, 2 validation and 2 test faces."""
    return store.write(
        tmp_path_factory.mktemp("data") / "four.h5",
        {"train": make_split(4, 0), "val": make_split(2, 1), "test": make_split(2, 2)},
    )


@pytest.mark.parametrize("name", [spec.name for spec in list_models()] + ["timm:resnet10t", "timm:dpn68"])
def test_every_model_has_a_classifier_that_gives_its_logits(name):
    with torch.device("meta"):  # shapes only: building every registered model costs no memory
        model = create_model(name, num_classes=5)
    classifier = find_classifier(model)
    assert getattr(classifier, "out_features", getattr(classifier, "out_channels", None)) == 5


def _regulariser(loss_fn, logits, targets) -> torch.Tensor:
    return loss_fn(logits, targets) - F.cross_entropy(logits, targets, label_smoothing=0.2)


def test_the_regulariser_is_the_attention_variance_of_the_pooled_features_and_follows_them():
    torch.manual_seed(0)
    model = create_model("small-cnn", dropout=0.0).train()
    loss_fn = build_loss("emonext", model=model)
    assert isinstance(loss_fn.regulariser, BatchAttentionVariance) and loss_fn.tap.dim == 128
    targets = torch.tensor([0, 3, 6, 1])
    x = torch.randn(4, 1, 48, 48)

    reg = _regulariser(loss_fn, model(x), targets)
    with torch.no_grad():
        pooled = model.head[:-1](model.features(x))  # pooling, flatten, dropout: what the linear layer sees
    torch.testing.assert_close(reg, loss_fn.regulariser(pooled))
    other = _regulariser(loss_fn, model(torch.randn(4, 1, 48, 48) * 3), targets)
    assert reg > 0 and other > 0 and not torch.isclose(reg, other)

    reg.backward()  # the regulariser alone trains both its attention and the model's features
    assert loss_fn.regulariser.query.weight.grad.abs().sum() > 0
    assert model.features[0].weight.grad.abs().sum() > 0

    with pytest.raises(RuntimeError, match="no training-mode forward"):
        loss_fn(torch.zeros(4, 7), targets)  # a second loss call without a new forward
    model.eval()
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(loss_fn(logits, targets), F.cross_entropy(logits, targets, label_smoothing=0.2))


class ConvHeadNet(nn.Sequential):
    """A 1x1-conv classifier named by timm's get_classifier() convention (as timm's DPN has)."""

    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 7, 1), nn.Flatten())

    def get_classifier(self) -> nn.Module:
        return self[2]


def test_a_1x1_conv_classifier_is_tapped_after_pooling_and_a_model_without_one_is_refused():
    model = ConvHeadNet()
    tap = FeatureTap(model)
    x = torch.randn(2, 3, 8, 8)
    model(x)
    assert tap.dim == 8
    torch.testing.assert_close(tap.pop(), model[1](model[0](x)).flatten(1))
    with pytest.raises(FerError, match="no linear or 1x1-conv classifier"):
        FeatureTap(nn.Sequential(nn.Conv2d(3, 7, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()))


@pytest.mark.parametrize(
    "model, loss, extra",
    [
        ("small-cnn", "emonext", []),
        ("vgg", "emonext", []),
        ("timm:resnet10t", "emonext", ["--input-size", "32"]),
        ("timm:resnet10t", "focal", ["--input-size", "32"]),
        ("vgg", "focal", []),
    ],
)
def test_one_training_step_through_the_cli_with_any_model(model, loss, extra, four_faces, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--model",
            model,
            "--loss",
            loss,
            "--data",
            str(four_faces),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--device",
            "cpu",
            "--no-progress",
            "--threads",
            "1",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    state, _ = ckpt.load_state(out / "last-state.safetensors")
    if loss == "emonext":
        dim = {"small-cnn": 128, "vgg": 4096, "timm:resnet10t": 512}[model]
        assert state["loss"]["regulariser.query.weight"].shape == (dim, dim)
        assert "loss emonext" in " ".join(result.output.split())  # the loss's parameters are announced
    else:
        assert state["loss"] == {}
    assert torch.isfinite(torch.tensor(ckpt.read_meta(out / "last.json")["history"][0]["train_loss"]))


def test_the_loss_parameters_train_with_the_model_and_come_back_with_the_run(tiny_h5, tmp_path):
    frozen = train(tiny_config(tiny_h5, tmp_path / "frozen", loss="emonext", epochs=1, lr=0.0))
    trained = train(tiny_config(tiny_h5, tmp_path / "trained", loss="emonext", epochs=1))
    before, after = frozen.loss.state_dict(), trained.loss.state_dict()
    assert before.keys() == after.keys() and "regulariser.key.weight" in after
    assert not torch.equal(before["regulariser.key.weight"], after["regulariser.key.weight"])
    saved = ckpt.load_state(tmp_path / "trained" / "last-state.safetensors")[0]["loss"]
    for key, value in after.items():
        assert torch.equal(saved[key], value), key
