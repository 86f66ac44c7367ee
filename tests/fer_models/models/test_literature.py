"""The literature's FER models: published parameter counts, forward/backward at each model's input size, batch
independence for every registered model, and ImageNet weights from a local .safetensors file (built here)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import timm
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from fer_models.cli import main
from fer_models.losses import build_loss, list_losses
from fer_models.models import create_model, get_spec, list_models
from fer_models.recipes import list_recipes, load_recipe
from fer_synth.core import store
from tests.conftest import make_split

# Published counts; the test allows 2%. RMN's 143M counts the projection shortcuts of its masks twice (its
# code registers each one under two names): with them counted once the network has 137.8M.
PUBLISHED_PARAMS = {"resemotenet": 80.2e6, "patt-lite": 1.1e6}
RMN_PUBLISHED = 143e6


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta_model(name: str) -> torch.nn.Module:
    """Built on the meta device: shapes without memory or initialisation, for counting."""
    with torch.device("meta"):
        return create_model(name)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_parameter_count_matches_the_paper(name):
    assert _n_params(_meta_model(name)) == pytest.approx(PUBLISHED_PARAMS[name], rel=0.02)


def test_rmn_parameter_count_matches_the_paper_counting_its_shared_projections_twice():
    model = _meta_model("rmn")
    projections = sum(
        p.numel()
        for block in model.masks.modules()
        if getattr(block, "downsample", None) is not None
        for p in block.downsample.parameters()
    )
    assert _n_params(model) == pytest.approx(137.8e6, rel=0.002)
    assert _n_params(model) + projections == pytest.approx(RMN_PUBLISHED, rel=0.02)


def test_emonext_tiny_is_convnext_tiny_plus_stn_and_se_and_its_loss_holds_the_attention():
    model = _meta_model("emonext-tiny")
    convnext = sum(
        p.numel()
        for n, p in model.named_parameters()
        if n.split(".")[0] in ("stem", "stages", "head") and not n.startswith("head.fc")
    )
    assert convnext == _n_params(timm.create_model("convnext_tiny", num_classes=0, pretrained=False))
    extra = {part: _n_params(getattr(model, part)) for part in ("stn", "se")}
    assert extra["stn"] == pytest.approx(0.87e6, rel=0.01)  # its FC 10*52*52 -> 32 dominates
    assert extra["se"] == 2 * (192**2 + 384**2 + 768**2) // 16
    assert _n_params(model) == pytest.approx(28.79e6, rel=0.002)
    with torch.device("meta"):
        assert _n_params(build_loss("emonext", model=model)) == 2 * (768 * 768 + 768) + 2 * 768


def test_cbam_members_add_cbam_to_their_backbones():
    for name, arch, n_cbam in (
        ("cbam-resnet50", "resnet50", 4),
        ("cbam-efficientnet-b3", "efficientnet_b3", 1),
        ("multiscale-resnet34", "resnet34", 4),
    ):
        model = _meta_model(name)
        assert len([m for m in model.modules() if type(m).__name__ == "CbamModule"]) == n_cbam
        backbone = _n_params(timm.create_model(arch, num_classes=0, pretrained=False))
        assert backbone < _n_params(model) < backbone * 1.1


@pytest.mark.parametrize("name", [spec.name for spec in list_models()])
def test_forward_backward_and_batch_independence(name):
    """Training step at the model's input size (batch 2), then in eval mode a sample's output must not depend
    on the other samples of its batch."""
    spec = get_spec(name)
    torch.manual_seed(0)
    model = create_model(name, num_classes=7)
    x = torch.randn(4, spec.in_chans, spec.input_size, spec.input_size)

    model.train()
    logits = model(x[:2])
    assert logits.shape == (2, 7)
    logits.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)

    # Random-init running statistics make deep nets explode in eval mode, and then rounding differences between
    # batch sizes grow chaotically; statistics of one real batch keep the comparison meaningful.
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model(x[:2])
    model.eval()
    with torch.no_grad():
        alone = model(x[:1])
        with_strangers = model(torch.cat([x[:1], 5 * x[2:]]))
    torch.testing.assert_close(with_strangers[0], alone[0], rtol=1e-4, atol=1e-4)


def test_patt_lite_attention_would_mix_the_batch_if_it_ran_over_the_batch_axis():
    """The check above can fail: PAtt-Lite's tokens are per-sample; the published pooled-vector attention is
    not (shown with the same layer applied to the [1, B, 32] matrix the Keras model attends over)."""
    model = create_model("patt-lite").eval()
    pooled = 0.1 * torch.randn(3, 32, generator=torch.Generator().manual_seed(0))  # small: spread-out weights
    across_batch = model.attention(pooled[None])[0]
    changed = model.attention(torch.cat([pooled[:1], pooled[1:] * 3])[None])[0]
    assert not torch.allclose(across_batch[0], changed[0])


def test_stn_starts_as_the_identity_warp():
    stn = create_model("emonext-tiny").stn.eval()
    x = torch.rand(2, 3, 224, 224)
    torch.testing.assert_close(stn(x), x, rtol=1e-4, atol=1e-4)


def _warnings(caplog) -> list[str]:
    """The project's warnings logged since the last call: the log records themselves, not stderr, which shows them
    only once a command line (or an earlier test) has set logging up."""
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("fer_")]
    caplog.clear()
    return messages


def test_training_without_imagenet_weights_warns_once(caplog):
    model = create_model("patt-lite")
    model.eval()
    model(torch.randn(1, 3, 224, 224))
    assert _warnings(caplog) == []  # evaluation and building say nothing
    model.train()
    model(torch.randn(2, 3, 224, 224))
    model(torch.randn(2, 3, 224, 224))
    warned = _warnings(caplog)
    assert len(warned) == 1 and "patt-lite: training from random weights" in warned[0]
    create_model("resemotenet").train()(torch.randn(2, 3, 64, 64))  # trained from scratch in its paper
    assert _warnings(caplog) == []


def test_a_loaded_checkpoint_silences_the_warning(caplog):
    source = create_model("patt-lite")
    model = create_model("patt-lite")
    model.load_state_dict(source.state_dict())
    model.train()(torch.randn(2, 3, 224, 224))
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    "name, architecture, first_conv",
    [
        ("patt-lite", "mobilenetv1_100", "conv_stem"),
        ("rmn", "resnet34", "conv1"),
        ("emonext-tiny", "convnext_tiny", "stem.0"),
        ("cbam-efficientnet-b3", "efficientnet_b3", "conv_stem"),
        ("efficientnet-b0", "efficientnet_b0", "conv_stem"),
    ],
)
def test_imagenet_weights_load_from_a_local_safetensors_file(tmp_path, caplog, name, architecture, first_conv):
    torch.manual_seed(1)
    imagenet = timm.create_model(architecture, pretrained=False)  # stands in for the ImageNet checkpoint
    path = tmp_path / f"{architecture}.safetensors"
    save_file(imagenet.state_dict(), str(path))
    model = create_model(name, weights=path)
    own, given = model.state_dict(), imagenet.state_dict()
    deepest = [k for k in own if k in given and k.endswith(("running_var", "norm.weight"))][-1]
    for key in (f"{first_conv}.weight", deepest):
        torch.testing.assert_close(own[key], given[key])
    model.train()(torch.randn(2, 3, 224, 224))
    assert _warnings(caplog) == []  # every backbone tensor was filled: no warning


def test_a_weights_file_of_another_architecture_is_reported(tmp_path, caplog):
    path = tmp_path / "resnet18.safetensors"
    save_file(timm.create_model("resnet18", pretrained=False).state_dict(), str(path))
    create_model("rmn", weights=path)  # resnet18 shares the stem and the first blocks with resnet34
    warned = " ".join(_warnings(caplog))
    assert "rmn: the weights file left" in warned and "resnet34 backbone tensors at random init" in warned


def test_emonext_loss_is_smoothed_cross_entropy_plus_the_attention_regulariser_on_the_pooled_vector():
    """The paper's regulariser reads EmoNeXt's pooled, LayerNorm'd vector: what its head gives before the fc."""
    torch.manual_seed(0)
    model = create_model("emonext-tiny", drop_path_rate=0.0).train()
    loss_fn = build_loss("emonext", model=model)
    targets = torch.tensor([0, 3, 6])
    x = torch.randn(3, 3, 224, 224)
    logits = model(x)
    loss = loss_fn(logits, targets)
    with torch.no_grad():
        stages = model.stem(model.stn(x))
        for stage, se in zip(model.stages, model.se):
            stages = stage.blocks(se(stage.downsample(stages)))
        pooled = model.head(stages, pre_logits=True)
    expected = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.2) + loss_fn.regulariser(pooled)
    torch.testing.assert_close(loss, expected)
    model.eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 3, 224, 224))
    torch.testing.assert_close(
        loss_fn(logits, targets), torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.2)
    )
    assert {"ce", "focal", "emonext"} <= set(list_losses())


@pytest.fixture(scope="module")
def four_faces(tmp_path_factory) -> Path:
    """The smallest file a run accepts: one training batch of 4, 2 validation and 2 test faces."""
    return store.write(
        tmp_path_factory.mktemp("data") / "four.h5",
        {"train": make_split(4, 0), "val": make_split(2, 1), "test": make_split(2, 2)},
    )


@pytest.mark.parametrize("recipe", list_recipes())
def test_every_recipe_trains_one_step_through_the_cli(recipe, four_faces, tmp_path):
    """Each shipped recipe, with its own model, optimiser, schedule, loss and augmentation, for one step."""
    out = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--recipe",
            recipe,
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
        ],
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "best.json").read_text())
    assert meta["model"] == load_recipe(recipe)["model"]
    assert (out / "best.safetensors").exists()
