"""The training loop: learning, determinism, resume, checkpoints, schedules, time budget, recipes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from fer_models import checkpoint as ckpt
from fer_models.data import load_split
from fer_models.inference.probabilities import predict_proba
from fer_models.training import loop as train_mod
from fer_models.training.config import make_config
from fer_models.training.loop import train
from fer_models.training.optim import lr_factor
from fer_synth.core.errors import FerError
from tests.fer_models.helpers import separable_h5, tiny_config


@pytest.fixture
def toy_h5(tmp_path):
    return separable_h5(tmp_path / "toy.h5")


def test_a_few_steps_lower_the_loss(tiny_h5, tmp_path):
    result = train(tiny_config(tiny_h5, tmp_path / "run", epochs=4, lr=0.02, schedule="constant"))
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < losses[0]


def test_separable_toy_classes_are_learned(toy_h5, tmp_path):
    result = train(
        tiny_config(
            toy_h5,
            tmp_path / "run",
            epochs=10,
            lr=0.02,
            schedule="one-cycle",
            augment={"hflip": True, "translate": 0.05},
        )
    )
    model, meta = ckpt.load_model(tmp_path / "run")
    test = load_split(toy_h5, "test")
    accuracy = (predict_proba(model, test.images, 48, 1).argmax(1) == test.labels.numpy()).mean()
    assert accuracy > 0.9, result.history
    assert meta["best_epoch"] == result.best_epoch


def test_same_seed_same_weights(tiny_h5, tmp_path):
    a = train(tiny_config(tiny_h5, tmp_path / "a", augment={"rotate": 10, "erasing": 0.5, "mixup": 0.2}))
    b = train(tiny_config(tiny_h5, tmp_path / "b", augment={"rotate": 10, "erasing": 0.5, "mixup": 0.2}))
    c = train(tiny_config(tiny_h5, tmp_path / "c", seed=1, augment={"rotate": 10, "erasing": 0.5, "mixup": 0.2}))
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert not all(torch.equal(v, c.model.state_dict()[k]) for k, v in a.model.state_dict().items())


@pytest.mark.parametrize("schedule, loss", [("plateau", "ce"), ("cosine-warmup", "ce"), ("cosine-warmup", "emonext")])
def test_resume_ends_where_an_uninterrupted_run_would(tiny_h5, tmp_path, monkeypatch, schedule, loss):
    """Also with a loss that learns parameters of its own (EmoNeXt's attention, here on the small CNN)."""
    settings = dict(
        epochs=3, ema=0.9, schedule=schedule, optimizer="sgd", augment={"hflip": True, "erasing": 0.5}, loss=loss
    )
    whole = train(tiny_config(tiny_h5, tmp_path / "whole", **settings))

    real_write = train_mod.write_history

    def crash_after_two_epochs(out, history):
        real_write(out, history)
        if len(history) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "write_history", crash_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(tiny_h5, tmp_path / "cut", **settings))
    monkeypatch.setattr(train_mod, "write_history", real_write)
    resumed = train(tiny_config(tiny_h5, tmp_path / "cut", **settings), resume=True)

    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for name in ("last.safetensors", "last-state.safetensors"):  # weights; optimizer, EMA and loss state
        a, b = load_file(tmp_path / "whole" / name), load_file(tmp_path / "cut" / name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
    for key, value in whole.loss.state_dict().items():
        assert torch.equal(value, resumed.loss.state_dict()[key]), key
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())[-1]["epoch"] == 3
    assert whole.best_epoch == resumed.best_epoch


def test_resume_refuses_other_settings(tiny_h5, tmp_path):
    train(tiny_config(tiny_h5, tmp_path / "run", epochs=1))
    with pytest.raises(FerError, match="lr"):
        train(tiny_config(tiny_h5, tmp_path / "run", epochs=2, lr=0.5), resume=True)
    with pytest.raises(FerError, match="nothing to resume"):
        train(tiny_config(tiny_h5, tmp_path / "fresh"), resume=True)


def test_checkpoint_round_trip(tiny_h5, tmp_path):
    result = train(tiny_config(tiny_h5, tmp_path / "run", epochs=1))
    model, meta = ckpt.load_model(tmp_path / "run" / "last.safetensors")
    x = torch.randn(3, 1, 48, 48)
    result.model.eval()
    assert torch.equal(model(x), result.model(x))
    assert meta["model"] == "small-cnn" and meta["classes"][0] == "angry"
    assert meta["data"]["fingerprint"] and meta["config"]["seed"] == 0
    assert set(meta["metrics"]["val"]) >= {"accuracy", "balanced_accuracy", "macro_f1"}
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert {
        "best.json",
        "best.safetensors",
        "last-state.safetensors",
        "metrics.csv",
        "metrics.json",
        "curves.png",
        "config.json",
    } <= files
    assert not any(name.endswith(".tmp") for name in files)


def test_time_budget_stops_cleanly(tiny_h5, tmp_path):
    result = train(tiny_config(tiny_h5, tmp_path / "run", epochs=50, time_budget=0.0))
    assert result.stopped_by == "time-budget" and len(result.history) == 1
    assert result.history[0]["partial_epoch"]
    assert (tmp_path / "run" / "best.safetensors").exists()
    # The same command again: the budget is spent, so the run is complete and nothing more is trained.
    again = train(tiny_config(tiny_h5, tmp_path / "run", epochs=50, time_budget=0.0))
    assert again.stopped_by == "time-budget" and len(again.history) == 1


def test_a_continued_run_gets_what_is_left_of_its_budget(tiny_h5, tmp_path):
    # Two epochs within the budget, then a larger budget: the continued run trains what the increase allows.
    first = train(tiny_config(tiny_h5, tmp_path / "run", epochs=2, time_budget=1e6))
    used = sum(h["seconds"] for h in first.history)
    assert first.stopped_by == "epochs"
    more = train(tiny_config(tiny_h5, tmp_path / "run", epochs=50, time_budget=used + 1e-3))
    assert more.stopped_by == "time-budget" and len(more.history) == 3 and more.history[-1]["partial_epoch"]
    assert sum(h["seconds"] for h in more.history) >= used + 1e-3


def test_early_stop_is_remembered(tiny_h5, tmp_path):
    settings = dict(epochs=30, lr=0.0, schedule="constant", early_stop=2)
    train(tiny_config(tiny_h5, tmp_path / "run", **settings))
    again = train(tiny_config(tiny_h5, tmp_path / "run", **settings))
    assert again.stopped_by == "early-stop" and len(again.history) == 3


def test_early_stopping(tiny_h5, tmp_path):
    result = train(tiny_config(tiny_h5, tmp_path / "run", epochs=30, lr=0.0, schedule="constant", early_stop=2))
    assert result.stopped_by == "early-stop" and len(result.history) == 3


def test_cyclic_schedule_saves_a_snapshot_per_cycle(tiny_h5, tmp_path):
    train(tiny_config(tiny_h5, tmp_path / "run", epochs=4, schedule="cyclic-snapshots", cycle_epochs=2))
    assert sorted(p.name for p in (tmp_path / "run").glob("snapshot-*.json")) == [
        "snapshot-01.json",
        "snapshot-02.json",
    ]


def test_schedules_shape():
    cosine = {"epochs": 10, "warmup_epochs": 1, "min_lr_ratio": 0.0}
    assert lr_factor("cosine-warmup", 0, 10, **cosine) == pytest.approx(0.1)
    assert lr_factor("cosine-warmup", 10, 10, **cosine) == pytest.approx(1.0)
    assert lr_factor("cosine-warmup", 100, 10, **cosine) == pytest.approx(0.0, abs=1e-9)
    restarts = {"restart_epochs": 2, "restart_mult": 2, "min_lr_ratio": 0.0}
    assert lr_factor("warm-restarts", 20, 10, **restarts) == pytest.approx(1.0)  # restart after 2 epochs
    assert lr_factor("warm-restarts", 40, 10, **restarts) == pytest.approx(0.5)  # halfway through the 4-epoch period
    assert lr_factor("one-cycle", 0, 10, epochs=10) == pytest.approx(1 / 25)
    assert lr_factor("one-cycle", 30, 10, epochs=10) == pytest.approx(1.0)


def test_the_config_gives_the_schedule_its_settings():
    config = make_config(data="x.h5", schedule="warm-restarts", restart_epochs=2, restart_mult=2)
    settings = config.scheduler_kwargs()
    assert settings.pop("schedule") == "warm-restarts"
    assert lr_factor("warm-restarts", 40, 10, **settings) == pytest.approx(0.5)


def test_recipe_values_and_overrides():
    config = make_config("khaireddin-vgg", data="x.h5", lr=0.05, augment_overrides={"rotate": 5})
    assert (config.model, config.optimizer, config.schedule, config.tta) == ("vgg", "sgd", "plateau", "ten-crop")
    assert config.lr == 0.05 and config.augment["rotate"] == 5 and config.augment["erasing"] == 0.5
    assert config.out == "runs/vgg"
    for name in ("khaireddin-vgg", "cpu-fast"):
        make_config(name, data="x.h5")  # every shipped recipe validates
    with pytest.raises(FerError, match="unknown recipe"):
        make_config("no-such-recipe")
    with pytest.raises(FerError, match="unknown augmentation"):
        make_config(augment={"sharpen": 1})


def test_class_balanced_sampler_and_weighted_focal_train(tiny_h5, tmp_path):
    result = train(
        tiny_config(
            tiny_h5,
            tmp_path / "run",
            epochs=1,
            balanced_sampler=True,
            loss="focal",
            class_weighting="balanced",
            label_smoothing=0.1,
            clip_grad=1.0,
            optimizer="radam",
        )
    )
    assert result.history[0]["train_loss"] > 0


def test_a_timm_model_trains_at_a_chosen_input_size(tiny_h5, tmp_path):
    result = train(
        tiny_config(
            tiny_h5, tmp_path / "run", model="timm:resnet10t", model_options={}, input_size=32, epochs=1, batch_size=32
        )
    )
    model, meta = ckpt.load_model(tmp_path / "run")
    assert (meta["input_size"], meta["in_chans"]) == (32, 3) and result.history[0]["train_images"] == 64
