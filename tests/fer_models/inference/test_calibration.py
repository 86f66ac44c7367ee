"""Temperature scaling: the fit recovers a known temperature, ECE measures miscalibration, and a trained run stores
its temperatures, which every prediction then applies without changing a label."""

from __future__ import annotations

import numpy as np
import torch

from fer_models import checkpoint as ckpt
from fer_models.evaluation.metrics import expected_calibration_error
from fer_models.inference.calibration import fit_temperature, tta_probs
from fer_models.inference.classifier import load_classifier
from fer_models.inference.probabilities import predict_proba
from fer_models.training.loop import train
from fer_synth.core import store
from tests.fer_models.helpers import separable_h5, tiny_config


def sampled(n: int, temperature: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [1, n, 7] that are ``temperature`` times too sharp, and labels drawn from the true probabilities."""
    g = torch.Generator().manual_seed(seed)
    true_logits = torch.randn(n, 7, generator=g) * 2
    labels = torch.multinomial(true_logits.softmax(-1), 1, generator=g)[:, 0]
    return (true_logits * temperature)[None], labels


def test_the_fit_recovers_a_known_temperature():
    for t in (0.5, 1.0, 3.0):
        logits, labels = sampled(20_000, t)
        assert abs(fit_temperature(logits, labels) / t - 1) < 0.08


def test_ece_sees_over_confidence_and_temperature_removes_it():
    logits, labels = sampled(20_000, 3.0)
    before = expected_calibration_error(tta_probs(logits).numpy(), labels.numpy())
    after = expected_calibration_error(tta_probs(logits, fit_temperature(logits, labels)).numpy(), labels.numpy())
    assert before > 0.15 and after < 0.03
    perfect = np.eye(7)[labels.numpy()]
    assert expected_calibration_error(perfect, labels.numpy()) == 0.0


def test_a_trained_run_is_calibrated_on_val_and_predictions_apply_it(tmp_path):
    data = separable_h5(tmp_path / "toy.h5")
    train(tiny_config(data, tmp_path / "run", epochs=2))
    calibration = ckpt.read_meta(tmp_path / "run")["calibration"]
    assert calibration["fit_on"] == "val" and set(calibration["temperature"]) == {"none", "flip", "ten-crop"}
    for tta in ("none", "flip", "ten-crop"):
        assert calibration["nll"][tta]["after"] <= calibration["nll"][tta]["before"] + 1e-9
    # The classifier's probabilities are the calibrated ones; the labels are the uncalibrated model's.
    model, meta = ckpt.load_model(tmp_path / "run")
    faces = torch.from_numpy(store.read_split(data, "test").images)
    raw = predict_proba(model, faces, meta["input_size"], meta["in_chans"], "flip")
    scaled = load_classifier(tmp_path / "run", tta="flip").predict_proba(faces)
    t = calibration["temperature"]["flip"]
    expected = predict_proba(model, faces, meta["input_size"], meta["in_chans"], "flip", temperature=t)
    assert np.allclose(scaled, expected, atol=1e-6) and (scaled.argmax(1) == raw.argmax(1)).all()
    assert abs(t - 1) > 1e-3  # a real fit, not the identity
    # Training the finished run again leaves its calibration as it is.
    train(tiny_config(data, tmp_path / "run", epochs=2))
    assert ckpt.read_meta(tmp_path / "run")["calibration"] == calibration
