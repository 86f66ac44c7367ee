"""ONNX export: ONNX Runtime's probabilities match PyTorch's (max abs difference < 1e-4), any batch size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_models.inference.classifier import load_classifier
from fer_models.inference.export import export
from fer_synth.core.errors import FerError
from tests.fer_models.inference.test_classifier import faces, save_tiny

ort = pytest.importorskip("onnxruntime")  # the dev extra installs it; see pyproject's `onnx` extra


def run_onnx(path, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"faces": batch})[0]


def test_builtin_exports_with_its_tta_and_matches_pytorch(tmp_path):
    out = export("builtin", tmp_path / "builtin.onnx")
    reference = load_classifier("builtin")
    for n in (1, 7):  # the batch dimension is dynamic
        batch = faces(n, seed=n)
        assert np.abs(run_onnx(out, batch) - reference.predict_proba(batch)).max() < 1e-4
    import onnx

    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["classes"])[3] == "happy"
    assert json.loads(props["source"]) == reference.identity


def test_an_ensemble_exports_as_one_graph(tmp_path):
    from fer_models import checkpoint as ckpt
    from fer_models.evaluation.ensemble import Ensemble, save_ensemble

    save_tiny(tmp_path / "a" / "best", 0, tta="ten-crop", input_size=40)
    save_tiny(tmp_path / "b" / "best", 1, tta="flip")
    members = [ckpt.resolve_checkpoint(tmp_path / m) for m in ("a", "b")]
    save_ensemble(tmp_path / "ab.json", Ensemble(members, [0.4, 0.6], "weighted"))
    out = export(tmp_path / "ab.json", tmp_path / "ab.onnx")
    batch = faces(5)
    assert np.abs(run_onnx(out, batch) - load_classifier(tmp_path / "ab.json").predict_proba(batch)).max() < 1e-4
    with pytest.raises(FerError, match="exists"):
        export(tmp_path / "ab.json", out)
