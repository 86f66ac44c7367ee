"""load_classifier: any model spec -> class probabilities for 48x48 uint8 faces; the built-in model."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from fer_models import checkpoint as ckpt
from fer_models.evaluation.ensemble import Ensemble, combine, save_ensemble
from fer_models.inference.classifier import load_classifier
from fer_models.inference.probabilities import predict_proba
from fer_models.models import create_model, get_spec
from fer_models.models.builtin import BUILTIN, SHIPPED, shipped_json, shipped_meta, shipped_weights
from fer_synth.core.classes import CLASSES, FERPLUS
from fer_synth.core.errors import FerError
from tests.conftest import SHARED

FER2013_CSV = SHARED / "data" / "fer2013" / "fer2013.csv.gz"


def save_tiny(stem, seed: int, tta: str = "flip", input_size: int = 48):
    torch.manual_seed(seed)
    model = create_model("small-cnn", widths=[4, 8])
    ckpt.save_checkpoint(
        stem,
        model,
        {
            "model": "small-cnn",
            "model_options": {"widths": [4, 8]},
            "input_size": input_size,
            "in_chans": 1,
            "classes": list(CLASSES),
            "tta": tta,
        },
    )
    return model


def faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_a_checkpoint_gives_its_models_probabilities_with_its_tta(tmp_path):
    model = save_tiny(tmp_path / "best", 0, tta="ten-crop", input_size=40)
    classifier = load_classifier(tmp_path)  # a run folder -> best.json
    probs = classifier.predict_proba(faces(5))
    assert probs.shape == (5, 7) and probs.dtype == np.float32
    assert np.allclose(probs.sum(1), 1, atol=1e-5)
    expected = predict_proba(model.eval(), torch.from_numpy(faces(5)), 40, 1, "ten-crop")
    assert np.allclose(probs, expected, atol=1e-6)
    assert classifier.classes == CLASSES and classifier.members[0].tta == "ten-crop"
    assert np.allclose(
        load_classifier(tmp_path, tta="none").predict_proba(faces(5)),
        predict_proba(model, torch.from_numpy(faces(5)), 40, 1, "none"),
        atol=1e-6,
    )
    assert load_classifier(tmp_path).predict_proba(faces(0)).shape == (0, 7)


def test_identity_fingerprints_the_weights(tmp_path):
    save_tiny(tmp_path / "a" / "best", 0)
    save_tiny(tmp_path / "b" / "best", 1)
    a, b = load_classifier(tmp_path / "a").identity, load_classifier(tmp_path / "b").identity
    assert a["model"] == str(tmp_path / "a") and len(a["fingerprint"]) == 16 and a["fingerprint"] != b["fingerprint"]
    assert load_classifier(tmp_path / "a" / "best.safetensors").identity["fingerprint"] == a["fingerprint"]
    assert load_classifier(tmp_path / "a", tta="none").identity["fingerprint"] != a["fingerprint"]  # TTA counts


def test_an_ensemble_combines_its_members(tmp_path):
    save_tiny(tmp_path / "a" / "best", 0)
    save_tiny(tmp_path / "b" / "best", 1, tta="none")
    members = [ckpt.resolve_checkpoint(tmp_path / m) for m in ("a", "b")]
    save_ensemble(tmp_path / "ab.json", Ensemble(members, [0.25, 0.75], "weighted"))
    classifier = load_classifier(tmp_path / "ab.json")
    each = [load_classifier(tmp_path / m).predict_proba(faces(6)) for m in ("a", "b")]
    assert np.allclose(classifier.predict_proba(faces(6)), combine(each, [0.25, 0.75], "weighted"), atol=1e-6)
    assert [m.tta for m in classifier.members] == ["flip", "none"]  # each member's own
    assert classifier.identity["fingerprint"] not in {
        load_classifier(tmp_path / m).identity["fingerprint"] for m in ("a", "b")
    }


def test_faces_of_another_shape_or_type_are_refused(tmp_path):
    save_tiny(tmp_path / "best", 0)
    classifier = load_classifier(tmp_path)
    with pytest.raises(FerError, match="uint8"):
        classifier.predict_proba(faces(2).astype(np.float32))
    with pytest.raises(FerError, match=r"\[N, 48, 48\]"):
        classifier.predict_proba(np.zeros((2, 64, 64), np.uint8))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_are_small_calibrated_and_load_everywhere(name):
    assert shipped_weights(name).stat().st_size <= 5_000_000
    assert ckpt.resolve_checkpoint(name) == shipped_json(name)
    meta = shipped_meta(name)
    assert meta["format"] == ckpt.CHECKPOINT_FORMAT
    assert meta["classes"] == list(FERPLUS if name == BUILTIN else CLASSES)
    assert meta["calibration"]["fit_on"] == "val" and meta["calibration"]["temperature"][meta["tta"]] > 0
    assert get_spec(name).input_size == meta["input_size"] and get_spec(name).in_chans == meta["in_chans"]
    model = create_model(name)  # the architecture with the shipped weights loaded, its own classes
    loaded, _ = ckpt.load_model(name)
    assert model.get_classifier().out_features == len(meta["classes"])
    for (key, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), key
    # Another class count (fine-tuning on another class list): the shipped features with a new classifier.
    other = create_model(name, num_classes=5)
    assert other.get_classifier().out_features == 5
    for key, tensor in other.state_dict().items():
        if tensor.shape == model.state_dict()[key].shape:
            assert torch.equal(tensor, model.state_dict()[key]), key


def test_builtin_is_deterministic_and_maps_onto_seven_classes():
    classifier = load_classifier("builtin")
    batch = faces(16, seed=3)
    first = classifier.predict_proba(batch)
    assert first.shape == (16, 8) and np.allclose(first.sum(1), 1, atol=1e-5)
    assert np.array_equal(first, classifier.predict_proba(batch))
    # A face's probabilities do not depend on the other faces of its batch.
    assert np.allclose(classifier.predict_proba(batch[:3]), first[:3], atol=1e-6)
    assert classifier.identity["model"] == "builtin" and classifier.kind == "shipped"
    seven = classifier.predict_proba(batch, classes=CLASSES)
    assert np.allclose(seven, first[:, :7] / first[:, :7].sum(1, keepdims=True), atol=1e-6)
    with pytest.raises(FerError, match="does not predict"):
        load_classifier("builtin-fer2013").predict_proba(batch, classes=FERPLUS)


def _public_test_faces(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` PublicTest rows of the real FER2013 (streamed: the file is not read whole)."""
    images, labels = [], []
    with gzip.open(FER2013_CSV, "rb") as f:
        for line in f:
            if line.rstrip().endswith(b",PublicTest"):
                label, pixels, _ = line.decode().split(",")
                images.append(np.array(pixels.split(), np.uint8).reshape(48, 48))
                labels.append(int(label))
                if len(images) == n:
                    break
    return np.stack(images), np.array(labels)


@pytest.mark.skipif(not FER2013_CSV.exists(), reason="the real FER2013 is not beside this checkout")
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_recognise_real_faces(name):
    images, labels = _public_test_faces(300)
    accuracy = (load_classifier(name).predict_proba(images, classes=CLASSES).argmax(1) == labels).mean()
    assert accuracy > 0.5  # chance is 1/7 (25% for always "happy"); the model card reports the full figure
