"""`fer-models predict`: faces in images, folders and videos -> rows (table, JSON, CSV) and annotated images;
the face stage's photo filters keep real faces that the strict generated-image filters reject."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data

from fer_models.cli import main
from fer_models.inference.classifier import load_classifier
from fer_models.inference.media import find_media, predict_media, write_rows
from fer_synth.core.errors import FerError
from fer_synth.core.images import save_png
from fer_synth.faces import blazeface
from fer_synth.faces.stage import FaceStage, FaceStageConfig
from tests.conftest import SHARED

MODEL = SHARED / "models" / blazeface.FACE_MODEL_NAME
FACE_REGION = (175, 60, 275, 185)  # the astronaut's face, x0, y0, x1, y1 (see tests/fer_synth/faces/test_stage.py)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    monkeypatch.setenv("FER_SYNTH_OFFLINE", "1")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder with the astronaut (one real face) in a sub-folder, a faceless image, a broken file, and a short
    video of the astronaut (12 frames)."""
    root = tmp_path_factory.mktemp("photos")
    astronaut = data.astronaut()
    save_png(astronaut, root / "people" / "astronaut.png")
    save_png(
        np.full((200, 200, 3), 90, np.uint8) + np.arange(200, dtype=np.uint8)[:, None, None] // 4, root / "wall.png"
    )
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    writer = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for _ in range(12):
        writer.write(cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    writer.release()
    return root


@pytest.fixture(scope="module")
def stage():
    with FaceStage(FaceStageConfig("mediapipe", filters="photo", policy="all", face_model=str(MODEL))) as s:
        yield s


def test_predict_finds_the_faces_in_images_folders_and_videos(photos, stage, tmp_path):
    classifier = load_classifier("builtin")
    summary = predict_media([photos], classifier, stage, every=5, annotate=tmp_path / "annotated")
    assert summary.images == 2 and summary.videos == 1 and summary.frames == 3  # frames 0, 5, 10
    still = [p for p in summary.predictions if p.frame is None]
    assert len(still) == 1 and still[0].file.endswith("astronaut.png")
    face = still[0]
    assert (
        FACE_REGION[0] <= face.x + face.w / 2 <= FACE_REGION[2]
        and FACE_REGION[1] <= face.y + face.h / 2 <= FACE_REGION[3]
    )
    assert face.label in classifier.classes and abs(sum(face.probabilities.values()) - 1) < 1e-4
    assert face.score == max(face.probabilities.values())
    assert [p.frame for p in summary.predictions if p.frame is not None] == [0, 5, 10]
    assert summary.without_face == {"no_face": 1, "unreadable": 1}
    assert (tmp_path / "annotated" / "people" / "astronaut.png").exists()
    assert (tmp_path / "annotated" / "clip" / "frame-000005.png").exists()
    # The same faces as the model gives on the stage's crops.
    crop = stage(data.astronaut()).faces[0]
    assert np.allclose(list(face.probabilities.values()), classifier.predict_proba(crop[None])[0], atol=1e-5)


def test_rows_are_flat_json_and_csv(photos, stage, tmp_path):
    classifier = load_classifier("builtin")
    summary = predict_media([photos / "people"], classifier, stage)
    write_rows(summary.predictions, classifier.classes, tmp_path / "faces.json", "json")
    write_rows(summary.predictions, classifier.classes, tmp_path / "faces.csv", "csv")
    records = json.loads((tmp_path / "faces.json").read_text())
    with open(tmp_path / "faces.csv") as f:
        rows = list(csv.DictReader(f))
    columns = ["file", "frame", "x", "y", "w", "h", "detector_score", "label", "score", *classifier.classes]
    assert list(records[0]) == columns and list(rows[0]) == columns
    assert float(rows[0]["happy"]) == pytest.approx(records[0]["happy"]) and rows[0]["frame"] == ""


def test_the_photo_filters_keep_real_faces_the_strict_ones_drop():
    # A real face from a low-resolution photo: the astronaut's face shrunk to 40 px and blown up again.
    face = data.astronaut()[40:220, 140:320]
    blurry = cv2.resize(
        cv2.resize(face, (40, 40), interpolation=cv2.INTER_AREA), (240, 240), interpolation=cv2.INTER_CUBIC
    )
    with (
        FaceStage(FaceStageConfig("mediapipe", face_model=str(MODEL))) as strict,
        FaceStage(FaceStageConfig("mediapipe", filters="photo", face_model=str(MODEL))) as lenient,
    ):
        assert strict(blurry).reason == "blurry"
        assert lenient(blurry).kept
        assert lenient.settings["filters"] == "photo" and lenient.blur_threshold == 0
    with pytest.raises(FerError, match="photo"):
        FaceStage(FaceStageConfig("haar", filters="lenient"))


def test_cli_predict_writes_json_and_csv_and_refuses_to_replace_them(photos, tmp_path):
    out = tmp_path / "faces.csv"
    args = [
        "predict",
        str(photos / "people"),
        "--face-model",
        str(MODEL),
        "--csv",
        str(out),
        "--json",
        str(tmp_path / "faces.json"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "astronaut.png" in result.output and out.exists()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "exists" in again.output and "--overwrite" in again.output
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0
    exact = list(csv.DictReader(out.open()))
    assert CliRunner().invoke(main, [*args, "--overwrite", "--amp", "auto"]).exit_code == 0  # bf16 where the CPU has it
    fast = list(csv.DictReader(out.open()))
    assert [r["label"] for r in fast] == [r["label"] for r in exact] and exact
    assert max(abs(float(a["score"]) - float(b["score"])) for a, b in zip(exact, fast)) < 0.05


def test_missing_and_foreign_paths_are_one_line_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(FerError, match="no such file"):
        find_media([tmp_path / "absent.jpg"])
    with pytest.raises(FerError, match="not an image or video"):
        find_media([tmp_path / "notes.txt"])
