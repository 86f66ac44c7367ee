"""The demo's work without a browser (fer_models.inference.demo): the webcam frame path, the photo and video tabs'
handlers, and bad input turned into a message, never a traceback. The page itself:
tests/fer_models/inference/test_demo_browser.py."""

from __future__ import annotations

import csv
import logging

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

from fer_models.cli import main
from fer_models.inference.classifier import load_classifier
from fer_models.inference.demo import live, offline_gradio
from fer_models.inference.demo.app import MAX_PIXELS, TIMELINE, Demo, read_photo, shown
from fer_models.inference.demo.browser import webcam_scene, write_y4m
from fer_synth.core.errors import FerError
from fer_synth.faces import blazeface
from fer_synth.faces.stage import FaceStage, FaceStageConfig
from tests.conftest import SHARED

FACE_MODEL = SHARED / "models" / blazeface.FACE_MODEL_NAME


def make_stage() -> FaceStage:
    return FaceStage(FaceStageConfig("mediapipe", filters="photo", policy="all", face_model=str(FACE_MODEL)))


@pytest.fixture(scope="module")
def demo():
    d = Demo(load_classifier("builtin", tta="none"), make_stage)
    yield d
    d.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The astronaut (a photo with one face), a text file, a 50-megapixel image, a short video of the astronaut, a
    video of a wall, and a 'video' that is not one."""
    root = tmp_path_factory.mktemp("uploads")
    Image.fromarray(data.astronaut()).save(root / "astronaut.jpg", quality=95)
    (root / "notes.png").write_text("these are notes, not pixels")
    Image.new("1", (10_000, 5_000)).save(root / "huge.png")  # 50 MP, a few kB on disk
    for name, frames in (
        ("clip.avi", [np.roll(data.astronaut(), 3 * i, axis=1) for i in range(12)]),
        ("wall.avi", [np.full((128, 128, 3), 80 + i, np.uint8) for i in range(12)]),
    ):
        height, width = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(root / name), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
    (root / "broken.mp4").write_bytes(b"\x00" * 2048)
    return root


def test_the_frame_path_times_each_stage_and_finds_the_face(demo):
    frame = webcam_scene(1)[0]
    result = demo.webcam_path(frame)
    assert list(result.seconds) == [s for s in live.STAGES if s != "decode"]
    assert len(result.faces) == 1 and result.image.shape == frame.shape and np.any(result.image != frame)
    expected = demo.classifier.predict_proba(make_stage()(frame).faces[0][None])[0]
    np.testing.assert_allclose(list(result.faces[0].probabilities.values()), expected, atol=1e-5)
    explained = demo.webcam_path(frame, explain=True)
    assert live.EXPLAIN in explained.seconds and np.any(explained.image != result.image)


def test_the_webcam_tab_shows_the_frame_the_bars_and_the_frame_rate(demo):
    rate = live.Rate()
    assert demo.webcam(None, False, rate) == (None, {}, "Waiting for the webcam...")
    for frame in webcam_scene(3):
        image, probs, status = demo.webcam(frame, False, rate)
    assert image.shape == (480, 640, 3) and set(probs) == set(demo.classes)
    assert "frames/s" in status and "1 face(s)" in status and "classify" in status
    _, probs, status = demo.webcam(np.zeros((480, 640, 3), np.uint8), False, rate)
    assert probs == {} and "no face in view" in status


def test_a_photo_gives_every_face_a_row_and_its_probabilities(demo, files):
    image, probs, rows, message = demo.photo(str(files / "astronaut.jpg"))
    assert image.shape == (512, 512, 3) and len(rows) == 1
    label = max(probs, key=probs.get)
    assert rows[0][2] == label and f"looks **{label}**" in message
    assert rows[0][4:] == [round(probs[c], 3) for c in demo.classes]
    heat, _, _, message = demo.photo(str(files / "astronaut.jpg"), explain=True)
    assert np.any(heat != image) and "heatmap" in message


@pytest.mark.parametrize(
    "name, says",
    [
        ("notes.png", "notes.png is not an image that can be read"),
        (
            "huge.png",
            (
                f"huge.png is too large: 10000x5000 pixels (50 MP); the demo reads photos up to "
                f"{MAX_PIXELS / 1e6:.0f} MP"
            ),
        ),
    ],
)
def test_a_bad_photo_is_a_message(demo, files, name, says):
    image, probs, rows, message = demo.photo(str(files / name))
    assert image is None and probs == {} and rows == []
    assert message.startswith("**Cannot use this input.**") and says in message


def test_a_photo_without_a_face_says_so(demo, tmp_path):
    Image.fromarray(np.full((300, 400, 3), 120, np.uint8)).save(tmp_path / "wall.png")
    image, probs, rows, message = demo.photo(str(tmp_path / "wall.png"))
    assert image.shape == (300, 400, 3) and probs == {} and rows == []
    assert message == "No face found in wall.png (400x300)."


def test_a_video_gives_a_timeline_and_a_csv_of_every_face(demo, files):
    rows, csv_file, message = demo.video(str(files / "clip.avi"), every=4)
    frames = [0, 4, 8]
    assert [r[TIMELINE[0]] for r in rows] == [f / 10 for f in frames for _ in demo.classes]
    assert {r[TIMELINE[1]] for r in rows} == set(demo.classes)
    with open(csv_file) as f:
        records = list(csv.DictReader(f))
    assert [int(r["frame"]) for r in records] == frames and {r["file"] for r in records} == {"clip.avi"}
    assert "3 face(s) in 3 of 3 frames" in message


@pytest.mark.parametrize(
    "name, says",
    [
        ("wall.avi", "no face found in any of the 3 frames looked at in wall.avi"),
        ("broken.mp4", "broken.mp4: no frame could be read"),
        ("astronaut.jpg", "astronaut.jpg is not a video file"),
    ],
)
def test_a_bad_video_is_a_message(demo, files, name, says):
    rows, csv_file, message = demo.video(str(files / name), every=5)
    assert rows == [] and csv_file is None and message.startswith("**Cannot use this input.**") and says in message


def test_an_unexpected_error_is_one_line_in_the_page_and_a_traceback_in_the_log(demo, files, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("the detector fell over\nsecond line")

    monkeypatch.setattr(demo.upload_path, "stage", type("Broken", (), {"detect": broken})())
    with caplog.at_level(logging.ERROR, logger="fer_models.inference.demo.app"):
        _, _, _, message = demo.photo(str(files / "astronaut.jpg"))
    assert message.startswith("**Something went wrong** (RuntimeError: the detector fell over)")
    assert "Traceback" not in message and "second line" not in message
    assert "Traceback" in caplog.text and "second line" in caplog.text


def test_photos_are_read_upright_and_shown_small(tmp_path):
    image = Image.fromarray(np.zeros((20, 40, 3), np.uint8))
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    image.save(tmp_path / "turned.jpg", exif=exif)
    assert read_photo(tmp_path / "turned.jpg").shape == (40, 20, 3)
    assert shown(np.zeros((3000, 1500, 3), np.uint8)).shape == (1280, 640, 3)
    with pytest.raises(FerError, match="missing.png: no such file"):
        read_photo(tmp_path / "missing.png")
    whole = (tmp_path / "turned.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(FerError, match="cut.jpg could not be decoded .*; is it a complete image file"):
        read_photo(tmp_path / "cut.jpg")


def test_the_frame_rate_counts_recent_frames_and_starts_afresh_after_a_pause(monkeypatch):
    clock = iter([0.0, 0.1, 0.2, 0.3, 5.0, 5.05])
    monkeypatch.setattr(live.time, "perf_counter", lambda: next(clock))
    rate = live.Rate(smoothing=0.5, gap=2.0)
    assert rate.tick() is None
    assert [round(rate.tick(), 6) for _ in range(2)] == [10.0, 10.0]
    assert rate.tick() == pytest.approx(10.0)
    assert rate.tick() is None  # a 4.7 s pause
    assert rate.tick() == pytest.approx(20.0)


def test_the_fake_webcam_video_is_yuv4mpeg(tmp_path):
    path = write_y4m(webcam_scene(2, 64, 48), tmp_path / "cam.y4m")
    raw = path.read_bytes()
    assert raw.startswith(b"YUV4MPEG2 W64 H48 F15:1") and raw.count(b"FRAME\n") == 2
    assert len(raw) == len(raw.split(b"\n")[0]) + 1 + 2 * (6 + 64 * 48 * 3 // 2)


def test_without_gradio_the_demo_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "gradio", None)
    with pytest.raises(FerError, match=r'pip install -e "\.\[demo\]"'):
        offline_gradio()
    result = CliRunner().invoke(main, ["demo", "--face-model", str(FACE_MODEL), "--port", "7999"])
    assert result.exit_code == 2 and "needs Gradio" in result.output
