"""Models are built for the data file's class list (FER+'s eight), learn from soft labels, and refuse other lists."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_models import checkpoint as ckpt
from fer_models.evaluation.evaluate import evaluate
from fer_models.inference.probabilities import predict_proba
from fer_models.training.loop import train
from fer_synth.core import store
from fer_synth.core.classes import FERPLUS, ClassList
from fer_synth.core.dataset import Split
from fer_synth.core.errors import FerError
from tests.fer_models.helpers import separable_h5, tiny_config


def separable_8(per_class: int, seed: int, soft_shift: int = 0) -> Split:
    """Class k: brightness 20 + 28k. With ``soft_shift``, every row's soft label is all on class k + shift."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(8), per_class)
    rng.shuffle(labels)
    images = (20 + 28 * labels[:, None, None] + rng.normal(0, 3, (len(labels), 48, 48))).clip(0, 255).astype(np.uint8)
    soft = np.eye(8, dtype=np.float32)[(labels + soft_shift) % 8] if soft_shift else None
    return Split(images, labels, soft_labels=soft, classes=FERPLUS)


def test_an_eight_class_file_trains_an_eight_class_model(tmp_path):
    data = store.write(
        tmp_path / "plus.h5", {"train": separable_8(24, 0), "val": separable_8(6, 1), "test": separable_8(6, 2)}
    )
    # Trained to convergence: 4 epochs at lr 0.01 stopped half-way, where float32 on one CPU and bf16 on another
    # (amp auto) landed anywhere from 0.5 to 0.875; these settings reach 0.875-1.0 in both (chance: 0.125).
    train(tiny_config(data, tmp_path / "run", epochs=10, lr=0.02, schedule="one-cycle"))
    meta = ckpt.read_meta(tmp_path / "run")
    assert meta["classes"] == list(FERPLUS) and meta["num_classes"] == 8 and meta["soft_labels"] is False
    report = evaluate(tmp_path / "run", data, "test", "none", out=tmp_path / "run")
    metrics = report["results"]["none"]["all"]
    assert report["classes"] == list(FERPLUS) and list(metrics["per_class"]) == list(FERPLUS)
    assert np.asarray(metrics["confusion"]).shape == (8, 8) and metrics["accuracy"] > 0.5


def test_training_follows_the_soft_labels(tmp_path):
    # Soft labels that disagree with the hard labels (all mass one class over): the model must learn them.
    data = store.write(tmp_path / "soft.h5", {"train": separable_8(24, 0, soft_shift=1), "val": separable_8(6, 1)})
    run = train(tiny_config(data, tmp_path / "run", epochs=6))
    assert ckpt.read_meta(tmp_path / "run")["soft_labels"] is True
    val = store.read_split(data, "val")
    predicted = predict_proba(run.model, torch.from_numpy(val.images), 48, 1).argmax(1)
    assert (predicted == (val.labels + 1) % 8).mean() > 0.8  # the soft labels' class, not the hard label's


def test_a_model_is_evaluated_on_the_classes_it_shares_with_the_data(tmp_path):
    # Seven-class model on FER+ data: contempt rows cannot be scored and are left out, loudly.
    seven = separable_h5(tmp_path / "seven.h5")
    train(tiny_config(seven, tmp_path / "run7", epochs=1))
    plus = store.write(
        tmp_path / "plus.h5", {"train": separable_8(4, 0), "val": separable_8(2, 1), "test": separable_8(3, 2)}
    )
    report = evaluate(tmp_path / "run7", plus, "test", "none")
    assert report["classes"] == list(FERPLUS)[:7] and report["n"] == 21
    assert report["class_mapping"]["unscorable_data_classes"] == ["contempt"]
    assert report["class_mapping"]["rows_left_out"] == 3 and "contempt" in report["class_mapping"]["note"]
    assert sum(map(sum, report["results"]["none"]["all"]["confusion"])) == 21
    # Eight-class model on seven-class data: contempt's probability dropped, the rest renormalised.
    train(tiny_config(plus, tmp_path / "run8", epochs=1))
    report = evaluate(tmp_path / "run8", seven, "test", "none", out=tmp_path / "eval8")
    assert report["class_mapping"]["dropped_model_classes"] == ["contempt"] and report["class_mapping"]["renormalised"]
    probs = np.load(tmp_path / "eval8" / "evaluation-test.npz")["probs"]
    assert probs.shape[1] == 7 and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_a_model_sharing_too_few_classes_with_the_data_is_refused(tmp_path):
    seven = separable_h5(tmp_path / "seven.h5")
    train(tiny_config(seven, tmp_path / "run", epochs=1))
    rng = np.random.default_rng(0)
    other = Split(
        rng.integers(0, 255, (4, 48, 48), dtype=np.uint8),
        np.array([0, 1, 0, 1]),
        classes=ClassList("custom", ["happy", "pain"]),
    )
    data = store.write(tmp_path / "other.h5", {"train": other, "val": other, "test": other})
    with pytest.raises(FerError, match="share 1 class"):
        evaluate(tmp_path / "run", data, "test", "none")
