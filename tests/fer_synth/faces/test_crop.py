"""``fer-synth crop`` through click's CliRunner, on small folders built from skimage's photographs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

from fer_synth.cli import main
from fer_synth.core.manifest import MANIFEST, read_records
from fer_synth.faces import crop as crop_module
from fer_synth.faces.crop import crop_folder
from fer_synth.faces.stage import FaceStage, FaceStageConfig
from tests.conftest import SHARED


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Tests never reach the network: a missing model is an error, not a download."""
    monkeypatch.setenv("FER_SYNTH_OFFLINE", "1")


MODEL = str(SHARED / "models" / "face_detection_short_range.tflite")


def save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA)


@pytest.fixture
def per_class(tmp_path, photo) -> Path:
    """happy: two faces and a corrupt file; sad: one face, one black image, one text file (not an image)."""
    root = tmp_path / "in"
    save(root / "happy" / "a.png", photo)
    save(root / "happy" / "b.jpg", np.ascontiguousarray(photo[:, ::-1]))
    (root / "happy" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    save(root / "Sadness" / "c.png", photo)  # an alias folder name
    save(root / "Sadness" / "black.png", np.zeros((256, 256, 3), np.uint8))
    (root / "Sadness" / "notes.txt").write_text("not an image")
    return root


def run(*args: str):
    return CliRunner().invoke(main, ["crop", *args], catch_exceptions=False)


def records(out: Path) -> dict[str, dict]:
    return {r["input"]: r for r in read_records(out)}


def test_per_class_folder(per_class, tmp_path):
    out, rejects = tmp_path / "out", tmp_path / "rejects"
    result = run(str(per_class), "--out", str(out), "--face-model", MODEL, "--keep-rejects", str(rejects))
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "happy/a.png",
        "happy/b.png",
        "sad/c.png",
    ]
    for png in out.rglob("*.png"):
        face = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert face.shape == (48, 48) and face.dtype == np.uint8
    got = records(out)
    assert set(got) == {"happy/a.png", "happy/b.jpg", "happy/broken.png", "Sadness/c.png", "Sadness/black.png"}
    assert got["happy/broken.png"]["reason"] == "unreadable" and not got["happy/broken.png"]["kept"]
    assert got["Sadness/black.png"]["reason"] == "nsfw_blank"
    assert got["Sadness/c.png"] == {
        **got["Sadness/c.png"],
        "class": "sad",
        "kept": True,
        "reason": None,
        "files": ["sad/c.png"],
        "backend": "mediapipe",
    }
    assert len(got["Sadness/c.png"]["boxes"]) == 1 and got["Sadness/c.png"]["scores"][0] > 0.8
    assert (rejects / "nsfw_blank" / "sad" / "black.png").is_file()
    assert (rejects / "unreadable" / "happy" / "broken.png").is_file()
    # The table: per class and a total, with the reasons that occurred.
    assert "nsfw_blank" in result.output and "unreadable" in result.output and "total" in result.output
    settings = json.loads((out / "run.json").read_text())
    assert settings["backend"] == "mediapipe" and settings["size"] == 48


def test_per_class_output_is_a_pool_the_readers_take(per_class, tmp_path):
    from fer_synth.core.classes import CLASSES
    from fer_synth.data.readers import read_folder

    out = tmp_path / "out"
    assert run(str(per_class), "--out", str(out), "--face-model", MODEL).exit_code == 0
    split = read_folder(out).splits["images"]
    assert split.images.shape == (3, 48, 48)
    assert sorted(CLASSES[i] for i in split.labels) == ["happy", "happy", "sad"]


def test_flat_folder_with_haar(tmp_path, photo):
    root = tmp_path / "photos"
    save(root / "me.jpg", data.astronaut())
    save(root / "noise.png", np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    out = tmp_path / "out"
    result = run(str(root), "--out", str(out), "--backend", "haar", "--crop-size", "64")
    assert result.exit_code == 0, result.output
    face = cv2.imread(str(out / "unlabelled" / "me.png"), cv2.IMREAD_UNCHANGED)
    assert face.shape == (64, 64)
    got = records(out)
    assert got["noise.png"]["reason"] == "no_face" and got["me.jpg"]["class"] is None


def test_all_faces_policy_and_clashing_names(tmp_path, photo):
    root = tmp_path / "in"
    save(root / "surprise" / "pair.png", np.concatenate([photo, photo], axis=1))
    save(root / "surprise" / "one.png", photo)
    save(root / "surprise" / "one.jpg", photo)
    out = tmp_path / "out"
    assert run(str(root), "--out", str(out), "--face-model", MODEL, "--policy", "all").exit_code == 0
    assert sorted(p.name for p in (out / "surprise").iterdir()) == [
        "one_jpg.png",
        "one_png.png",
        "pair_0.png",
        "pair_1.png",
    ]
    assert records(out)["surprise/pair.png"]["files"] == ["surprise/pair_0.png", "surprise/pair_1.png"]


def test_resume_skips_done_images_without_duplicates(per_class, tmp_path, monkeypatch):
    out = tmp_path / "out"
    with FaceStage(FaceStageConfig("mediapipe", face_model=MODEL)) as stage:
        first = crop_folder(per_class, out, stage)
    assert first.processed == 5 and first.resumed == 0
    # A crash mid-write leaves a torn last line: it is dropped and that image is done again.
    lines = (out / MANIFEST).read_text().splitlines()
    (out / MANIFEST).write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    save(per_class / "happy" / "new.png", cv2.resize(data.astronaut(), (300, 300)))
    seen = []
    real = crop_module.read_rgb
    monkeypatch.setattr(
        crop_module, "read_rgb", lambda path: seen.append(path.relative_to(per_class).as_posix()) or real(path)
    )
    with FaceStage(FaceStageConfig("mediapipe", face_model=MODEL)) as stage:
        second = crop_folder(per_class, out, stage)
    assert sorted(seen) == sorted(["happy/new.png", json.loads(lines[-1])["input"]])
    assert second.resumed == 4 and second.processed == 2
    sources = [r["input"] for r in read_records(out)]
    assert len(sources) == len(set(sources)) == 6
    assert sum(second.images.values()) == 6 and second.faces["happy"] == 3 and second.kept["happy"] == 3


def test_resume_with_other_settings_is_an_error(per_class, tmp_path):
    out = tmp_path / "out"
    assert run(str(per_class), "--out", str(out), "--face-model", MODEL).exit_code == 0
    result = CliRunner().invoke(
        main, ["crop", str(per_class), "--out", str(out), "--face-model", MODEL, "--min-face", "80"]
    )
    assert result.exit_code == 2 and "min_face" in result.output and "--out" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["missing-folder"], "does not exist"),
        (["EMPTY"], "no images in"),
        (["IN", "--backend", "dlib"], "Invalid value for '--backend'"),
        (["IN", "--policy", "biggest"], "Invalid value for '--policy'"),
        (["IN", "--face-model", "nowhere.tflite"], "--face-model"),
        (["IN", "--crop-size", "2"], "size >= 8"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, per_class, args, message):
    (tmp_path / "EMPTY").mkdir()
    args = [str(per_class) if a == "IN" else str(tmp_path / a) if a in ("EMPTY", "missing-folder") else a for a in args]
    result = CliRunner().invoke(main, ["crop", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_sub_folders_that_are_not_classes_are_cropped_as_unlabelled_in_their_layout(tmp_path, photo):
    root = tmp_path / "photos"
    save(root / "2019" / "me.jpg", photo)
    save(root / "mixed" / "deep" / "me.png", photo)  # the same name in another folder: its own output
    save(root / "happy" / "a.png", photo)
    save(root / ".cache" / "hidden.png", photo)
    out = tmp_path / "out"
    result = run(str(root), "--out", str(out), "--face-model", MODEL)
    assert result.exit_code == 0, result.output
    faces = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert faces == ["happy/a.png", "unlabelled/2019/me.png", "unlabelled/mixed/deep/me.png"]
    got = records(out)
    assert got["mixed/deep/me.png"]["class"] is None and got["happy/a.png"]["class"] == "happy"
