"""`compare`'s arms: ensembles named by arm or balance method (and by an ensemble recipe), equal training images
per arm, and the leaderboard order; the training itself is tested in test_judge.py."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fer_models.evaluation.compare import leaderboard, plan_arms, run_configs
from fer_synth.core import store
from fer_synth.core.errors import FerError
from tests.fer_models.helpers import separable_split


def _file(path, method: str | None, train_rows: int = 24):
    splits = {
        "train": separable_split(train_rows // 7 + 1, 0).take(np.arange(train_rows)),
        "val": separable_split(6, 1),
        "test": separable_split(6, 2),
    }
    return store.write(path, splits, {"method": method} if method else {})


@pytest.fixture
def files(tmp_path):
    return [
        _file(tmp_path / "real.h5", None, 70),
        _file(tmp_path / "r.h5", "ros", 140),
        _file(tmp_path / "s.h5", "smote", 140),
        _file(tmp_path / "t.h5", "smote-tomek", 120),
    ]


def test_ensembles_by_arm_name_or_balance_method(files):
    arms = plan_arms(files, ["loss=focal"], [["ros", "s"], ["real+loss=focal", "smote-tomek"]])
    assert [a.name for a in arms] == [
        "real",
        "r",
        "s",
        "t",
        "real+loss=focal",
        "ensemble(ros+s)",
        "ensemble(real+loss=focal+smote-tomek)",
    ]
    assert arms[5].members == ("r", "s") and arms[6].members == ("real+loss=focal", "t")
    with pytest.raises(FerError, match="adasyn is none of"):
        plan_arms(files, ensembles=[["ros", "adasyn"]])
    with pytest.raises(FerError, match="at least two"):
        plan_arms(files, ensembles=[["ros"]])


def test_an_ensemble_recipe_adds_its_ensemble_when_its_files_are_there(files, tmp_path, caplog):
    recipe = tmp_path / "three.yaml"
    recipe.write_text("model: small-cnn\nensemble: [ros, smote, smote-tomek]\n")
    assert plan_arms(files, recipe=str(recipe))[-1].members == ("r", "s", "t")
    with caplog.at_level(logging.WARNING):
        arms = plan_arms(files[:2], recipe=str(recipe))
    assert not any(a.members for a in arms) and "smote-tomek" in caplog.text
    assert plan_arms(files, recipe="oversampled-vgg-ensemble")[-1].name == "ensemble(ros+smote+smote-tomek)"


def test_train_images_gives_every_arm_about_the_same_steps(files, tmp_path):
    arms = plan_arms(files, ["class_weighting=balanced"], [["ros", "smote"]])
    configs = run_configs(arms, tmp_path / "cmp", seeds=2, train_images=280, model="small-cnn")
    epochs = {(c.data, c.class_weighting, c.seed): c.epochs for c in configs}
    assert len(configs) == 2 * 5  # the ensemble trains nothing of its own
    assert epochs[str(files[0]), "none", 0] == 4 and epochs[str(files[1]), "none", 1] == 2  # 280/70, 280/140
    assert epochs[str(files[3]), "none", 0] == 2 and epochs[str(files[0]), "balanced", 0] == 4  # round(280/120)
    assert {c.epochs for c in run_configs(arms, tmp_path / "cmp", seeds=1, epochs=3, model="small-cnn")} == {3}


def test_leaderboard_ranks_by_balanced_accuracy():
    arms = {name: {"balanced_accuracy": {"mean": m}} for name, m in (("a", 0.4), ("b", 0.5), ("c", 0.45))}
    assert leaderboard({"arms": arms}) == ["b", "c", "a"]


def test_a_run_ended_by_its_time_budget_is_not_trained_again(tmp_path):
    """compare run again (or after the runs were trained beforehand) must not continue a run its budget ended:
    that would give it a second budget."""
    import json

    from fer_models.evaluation.compare import compare
    from tests.fer_models.helpers import separable_h5

    data = separable_h5(tmp_path / "toy.h5")
    settings = dict(
        model="small-cnn",
        model_options={"widths": [8, 16]},
        epochs=50,
        batch_size=4,
        lr=0.01,
        augment={},
        tta="none",
        time_budget=0.05,
        device="cpu",
        seeds=1,
        resamples=100,
    )
    first = compare([data], tmp_path / "cmp", **settings)
    run = tmp_path / "cmp" / "toy" / "seed-0"
    history = json.loads((run / "last.json").read_text())["history"]
    assert history[-1]["partial_epoch"] and len(history) < 50
    again = compare([data], tmp_path / "cmp", **settings)
    assert json.loads((run / "last.json").read_text())["history"] == history
    assert again["arms"]["toy"]["per_seed"] == first["arms"]["toy"]["per_seed"]
