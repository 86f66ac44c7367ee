"""The face stage on a real photograph (skimage's astronaut) and on images that hold no usable face."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from fer_synth.core.env import ENV_OFFLINE
from fer_synth.core.errors import FerError
from fer_synth.faces import blazeface as face_model
from fer_synth.faces.detectors import Detection, Framing, create_detector, list_detectors, merge_overlapping
from fer_synth.faces.stage import REASONS, FaceResult, FaceStage, FaceStageConfig, crop_face, face_frame
from tests.conftest import SHARED


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Tests never reach the network: a missing model is an error, not a download."""
    monkeypatch.setenv("FER_SYNTH_OFFLINE", "1")


MODEL = SHARED / "models" / face_model.FACE_MODEL_NAME
# Eileen Collins' face in skimage.data.astronaut() (512x512), located by hand: x 175-275, y 60-185.
FACE_REGION = (175, 60, 275, 185)


def backend_options(backend: str) -> dict:
    return {"face_model": str(MODEL)} if backend == "mediapipe" else {}


@pytest.fixture(scope="module", params=["haar", "mediapipe"])
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def stage(backend: str, **options) -> FaceStage:
    return FaceStage(FaceStageConfig(backend, **backend_options(backend), **options))


def centre_in_face(box: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    return FACE_REGION[0] <= cx <= FACE_REGION[2] and FACE_REGION[1] <= cy <= FACE_REGION[3] and 70 <= w <= 130


def frames(faces: FaceStage, result: FaceResult) -> list[tuple[int, int, int]]:
    return [face_frame(box, faces.detector.framing, faces.margin) for box in result.boxes]


def same_frame(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: float = 0.1) -> bool:
    return all(abs(u - v) <= tolerance * a[2] for u, v in zip(a, b))


def test_astronaut_one_face_cropped_to_48_gray(backend, astronaut):
    with stage(backend) as faces:
        result = faces(Image.fromarray(astronaut))
        (frame,) = frames(faces, result)
    assert result.kept and result.reason is None and result.backend == backend
    assert len(result.boxes) == 1 and centre_in_face(result.boxes[0])
    (crop,) = result.faces
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    # The crop is that square of the photo in grayscale, area-resized.
    x, y, side = frame
    assert centre_in_face((x, y, side, side))
    reference = cv2.resize(
        cv2.cvtColor(astronaut[y : y + side, x : x + side], cv2.COLOR_RGB2GRAY), (48, 48), interpolation=cv2.INTER_AREA
    )
    assert np.abs(crop.astype(int) - reference).max() <= 1


def test_both_backends_frame_the_face_alike(astronaut):
    found = []
    for name in ("haar", "mediapipe"):
        with stage(name) as faces:
            found += frames(faces, faces(astronaut))
    # Each backend's FER2013 framing puts the same square around the face, to within 10% of its side.
    assert len(found) == 2 and same_frame(*found)


def test_record_is_json_and_has_no_pixels(astronaut):
    with stage("mediapipe") as faces:
        record = faces(astronaut).to_record()
    assert set(record) == {"kept", "reason", "boxes", "scores", "backend"}
    assert json.loads(json.dumps(record)) == record


@pytest.mark.parametrize("size,margin", [(64, 0.0), (48, 0.25)])
def test_size_and_margin_options(astronaut, size, margin):
    with stage("mediapipe", size=size, margin=margin) as faces:
        result = faces(astronaut)
    assert result.faces[0].shape == (size, size)


def test_margin_widens_the_frame():
    framing = Framing(0.0, 0.0, 1.0)
    assert face_frame((100, 100, 50, 50), framing, 0.0) == (100, 100, 50)
    assert face_frame((100, 100, 50, 50), framing, 0.2) == (90, 90, 70)


def test_crop_outside_the_image_repeats_edges():
    rgb = np.full((20, 20, 3), 200, np.uint8)
    crop = crop_face(rgb, (-10, -10, 40), 8)
    assert crop.shape == (8, 8) and (crop == 200).all()


def test_black_image_and_safety_flag_are_nsfw_blank(backend, astronaut):
    with stage(backend) as faces:
        assert faces(np.zeros((512, 512, 3), np.uint8)).reason == "nsfw_blank"
        assert faces(np.full((512, 512, 3), 128, np.uint8)).reason == "nsfw_blank"
        assert faces(np.full((512, 512, 3), (255, 0, 0), np.uint8)).reason == "nsfw_blank"
        flagged = faces(astronaut, nsfw_flag=True)
    assert not flagged.kept and flagged.reason == "nsfw_blank" and flagged.faces == []


def test_noise_and_gradient_are_no_face(backend):
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    gradient = np.repeat(np.repeat(np.linspace(0, 255, 512, dtype=np.uint8)[None, :, None], 512, 0), 3, 2)
    with stage(backend) as faces:
        for image in (noise, gradient):
            result = faces(image)
            assert not result.kept and result.reason == "no_face" and result.boxes == []


def test_tiled_photo_has_two_faces_and_follows_the_policy(backend, astronaut):
    tiled = np.concatenate([astronaut, astronaut], axis=1)
    with stage(backend) as largest, stage(backend, policy="single") as single, stage(backend, policy="all") as every:
        kept_one, rejected, kept_all = largest(tiled), single(tiled), every(tiled)
        left, right = sorted(frames(every, kept_all))
    for result in (kept_one, rejected, kept_all):
        assert len(result.boxes) == 2
        assert sorted(centre_in_face((x - 512 * (x >= 400), y, w, h)) for x, y, w, h in result.boxes) == [1, 1]
    assert kept_one.kept and len(kept_one.faces) == 1
    assert not rejected.kept and rejected.reason == "multiple_faces" and rejected.faces == []
    assert kept_all.kept and len(kept_all.faces) == 2
    assert same_frame(left, (right[0] - 512, *right[1:]))


def test_mediapipe_scans_tall_images_in_windows(astronaut):
    tall = np.concatenate([astronaut, astronaut], axis=0)
    with stage("mediapipe", policy="all") as faces:
        result = faces(tall)
    assert sorted(centre_in_face((x, y - 512 * (y >= 400), w, h)) for x, y, w, h in result.boxes) == [1, 1]
    assert len(result.faces) == 2


def test_tiny_face_is_face_too_small(backend, astronaut):
    # MediaPipe finds the face of a 128 px photo (a ~28 px frame); Haar's smallest face is min_size (50 px by
    # default), so it gets a 240 px photo (a ~52 px frame) and a larger min_face.
    side, options = (128, {}) if backend == "mediapipe" else (240, {"min_face": 64})
    small = cv2.resize(astronaut, (side, side), interpolation=cv2.INTER_AREA)
    with stage(backend, **options) as faces:
        result = faces(small)
    assert result.reason == "face_too_small" and len(result.boxes) >= 1 and result.faces == []


def test_blurred_photo_is_blurry(backend, astronaut):
    with stage(backend) as faces:
        result = faces(cv2.GaussianBlur(astronaut, (0, 0), 4))
    assert result.reason == "blurry" and result.boxes


def test_low_confidence_threshold(astronaut):
    with stage("mediapipe", min_score=0.99) as faces:
        result = faces(astronaut)
    assert result.reason == "low_confidence" and result.scores and max(result.scores) < 0.99


def test_settings_are_json_and_name_everything():
    with stage("haar", min_face=60) as faces:
        settings = json.loads(json.dumps(faces.settings))
    assert settings["backend"] == "haar" and settings["min_face"] == 60
    assert settings["detector"] == {
        "scale_factor": 1.3,
        "min_neighbors": 7,
        "min_size": 50,
        "cascade": "haarcascade_frontalface_default.xml",
    }
    with stage("mediapipe") as faces:
        assert faces.settings["detector"]["face_model_sha256"] == face_model.FACE_MODEL_SHA256
        assert faces.settings["min_score"] == 0.6


def test_unknown_backend_and_policy_list_the_valid_ones():
    assert list_detectors() == ["haar", "mediapipe"]
    with pytest.raises(FerError, match="haar, mediapipe"):
        FaceStage(FaceStageConfig("dlib"))
    with pytest.raises(FerError, match="largest, single, all"):
        FaceStage(FaceStageConfig("haar", policy="biggest"))
    with pytest.raises(FerError, match="uint8"):
        FaceStage(FaceStageConfig("haar"))(np.zeros((8, 8, 3), np.float32))


def test_reasons_are_the_agreed_ones():
    assert REASONS == ("nsfw_blank", "no_face", "multiple_faces", "face_too_small", "low_confidence", "blurry")
    assert FaceResult(False, "no_face", backend="haar").to_record() == {
        "kept": False,
        "reason": "no_face",
        "boxes": [],
        "scores": [],
        "backend": "haar",
    }


def test_merge_keeps_the_best_of_overlapping_boxes():
    merged = merge_overlapping(
        [Detection((0, 0, 10, 10), 0.6), Detection((1, 1, 10, 10), 0.9), Detection((50, 50, 10, 10), 0.7)]
    )
    assert merged == [Detection((1, 1, 10, 10), 0.9), Detection((50, 50, 10, 10), 0.7)]


# --- the MediaPipe model lookup -------------------------------------------------------------------------------


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(face_model.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delenv(face_model.ENV_FACE_MODEL, raising=False)
    monkeypatch.delenv(ENV_OFFLINE, raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "cache"


def test_shared_model_has_the_pinned_checksum():
    assert face_model.sha256_of(MODEL) == face_model.FACE_MODEL_SHA256


def test_lookup_order_path_then_env_then_cache(empty_cache, monkeypatch, tmp_path):
    assert face_model.resolve_face_model(MODEL) == MODEL
    monkeypatch.setenv(face_model.ENV_FACE_MODEL, str(MODEL))
    assert face_model.resolve_face_model() == MODEL
    monkeypatch.delenv(face_model.ENV_FACE_MODEL)
    cached = face_model.cached_model_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(MODEL.read_bytes())
    assert face_model.resolve_face_model(allow_download=False) == cached
    cached.write_bytes(b"not a model")
    with pytest.raises(FerError, match="SHA-256"):
        face_model.resolve_face_model(allow_download=False)


def test_offline_without_a_file_names_the_option(empty_cache, monkeypatch):
    monkeypatch.setenv(ENV_OFFLINE, "1")
    with pytest.raises(FerError, match="--face-model PATH"):
        face_model.resolve_face_model()
    with pytest.raises(FerError, match="--face-model PATH"):
        FaceStage(FaceStageConfig("mediapipe"))
    with pytest.raises(FerError, match="does not exist"):
        face_model.resolve_face_model(empty_cache / "missing.tflite")


def test_download_is_verified_and_lands_in_the_cache(empty_cache, monkeypatch, tmp_path):
    # A file:// URL stands in for the network: the real code path, nothing leaves the machine.
    served = tmp_path / "served.tflite"
    served.write_bytes(MODEL.read_bytes())
    monkeypatch.setattr(face_model, "FACE_MODEL_URL", served.as_uri())
    path = face_model.resolve_face_model()
    assert path == face_model.cached_model_path() and path.read_bytes() == MODEL.read_bytes()


def test_download_with_a_wrong_checksum_leaves_nothing(empty_cache, tmp_path):
    served = tmp_path / "tampered.tflite"
    served.write_bytes(b"tampered")
    dest = empty_cache / "models" / face_model.FACE_MODEL_NAME
    with pytest.raises(FerError, match="SHA-256"):
        face_model.download_face_model(dest, url=served.as_uri(), sha256=face_model.FACE_MODEL_SHA256)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert hashlib.sha256(b"tampered").hexdigest() != face_model.FACE_MODEL_SHA256


def test_failed_download_names_the_option(empty_cache, monkeypatch, tmp_path):
    monkeypatch.setattr(face_model, "FACE_MODEL_URL", (tmp_path / "nowhere.tflite").as_uri())
    with pytest.raises(FerError, match="could not download .*--face-model PATH"):
        face_model.resolve_face_model()


def test_haar_detector_alone(astronaut):
    detector = create_detector("haar")
    try:
        (found,) = detector.detect(astronaut)
    finally:
        detector.close()
    assert centre_in_face(found.box)
