"""`fer-models demo` in a real browser: the app started here on 127.0.0.1, the OS's Chromium driven by Playwright.
A photo upload shows the label and the probabilities; a video upload gives the CSV; the webcam (a video file standing
in for one) streams boxes, bars and the frame rate; bad input shows a message, never a traceback, and the app goes on
serving. Nothing the page loads comes from anywhere but 127.0.0.1. Skipped, with the reason, without Chromium."""

from __future__ import annotations

import csv
import socket

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from fer_models.inference.classifier import load_classifier
from fer_models.inference.demo.browser import (
    find_chromium,
    launch_chromium,
    webcam_scene,
    write_y4m,
)
from fer_synth.faces import blazeface
from fer_synth.faces.stage import FaceStage, FaceStageConfig
from tests.conftest import SHARED

CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium installed (Debian: apt-get install chromium; or set "
        "FER_CHROMIUM to its path); the browser test needs one",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio"),  # Gradio's own use of pandas
    pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install -e '.[dev]')")
pytest.importorskip("gradio", reason="Gradio is not installed (pip install -e '.[demo]')")

FACE_MODEL = SHARED / "models" / blazeface.FACE_MODEL_NAME
WAIT_MS = 60_000  # the machine may be busy: generous, and only ever reached when something is broken


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    root = tmp_path_factory.mktemp("uploads")
    Image.fromarray(data.astronaut()).save(root / "astronaut.jpg", quality=95)
    (root / "notes.png").write_text("not pixels")
    Image.new("1", (10_000, 5_000)).save(root / "huge.png")
    for name, frames in (
        ("clip.avi", [np.roll(data.astronaut(), 4 * i, axis=1) for i in range(10)]),
        ("wall.avi", [np.full((128, 128, 3), 90 + i, np.uint8) for i in range(10)]),
    ):
        height, width = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(root / name), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        writer.release()
    write_y4m(webcam_scene(20), root / "webcam.y4m")
    return root


@pytest.fixture(scope="module")
def server(monkeypatch_module):
    from fer_models.inference.demo import serve

    monkeypatch_module.setenv("FER_SYNTH_OFFLINE", "1")
    app, url = serve(
        "builtin",
        lambda: FaceStage(FaceStageConfig("mediapipe", filters="photo", policy="all", face_model=str(FACE_MODEL))),
        port=_free_port(),
    )
    yield url
    app.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as m:
        yield m


@pytest.fixture(scope="module")
def browser(uploads):
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright, CHROMIUM, fake_webcam=uploads / "webcam.y4m")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A fresh page on the demo; after the test, nothing it asked for went beyond 127.0.0.1."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, permissions=["camera"], accept_downloads=True
    )
    page = context.new_page()
    outside: list[str] = []
    page.on(
        "request", lambda r: None if r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else outside.append(r.url)
    )
    page.goto(server)
    yield page
    context.close()
    assert outside == [], f"the page reached beyond this machine: {outside}"


def _upload(page, tab: str, element: str, path) -> None:
    page.get_by_role("tab", name=tab).click()
    page.locator(f"#{element} input[type=file]").set_input_files(str(path))


def _status(page, element: str, text: str) -> str:
    page.locator(f"#{element}").get_by_text(text).wait_for(timeout=WAIT_MS)
    return page.locator(f"#{element}").inner_text()


def test_a_photo_shows_the_label_and_the_probabilities(page, uploads):
    expected = load_classifier("builtin", tta="none").classes
    _upload(page, "Photo", "photo-input", uploads / "astronaut.jpg")
    status = _status(page, "photo-status", "face(s) in astronaut.jpg")
    label = status.split("looks ")[1].split(" ")[0]
    assert label in expected
    bars = page.locator("#photo-probabilities").inner_text()
    assert all(name in bars for name in expected) and "%" in bars
    table = page.locator("#photo-table").inner_text()
    assert label in table and "176,82" in table  # the face's box, as predict finds it
    page.locator("#photo-explain").get_by_text("Show where the model looks").click()
    _status(page, "photo-status", "heatmap")


def test_a_video_gives_a_timeline_and_a_csv_to_download(page, uploads):
    _upload(page, "Video", "video-input", uploads / "clip.avi")
    assert "2 face(s) in 2 of 2 frames" in _status(page, "video-status", "The CSV holds every face")
    with page.expect_download() as download:
        page.locator("#video-csv a").first.click()
    assert download.value.suggested_filename == "clip-faces.csv"
    with open(download.value.path()) as f:
        rows = list(csv.DictReader(f))
    assert [r["frame"] for r in rows] == ["0", "5"] and {r["file"] for r in rows} == {"clip.avi"}
    # the plot is drawn after the status line appears: wait for it, as for the rest of the page
    page.locator("#video-timeline canvas, #video-timeline svg").first.wait_for(timeout=WAIT_MS)


def test_the_webcam_streams_boxes_bars_and_the_frame_rate(page):
    page.get_by_text("Click to Access Webcam").click()
    page.get_by_role("button", name="capture photo").click()  # Gradio's label for its start-streaming button
    # The stream's first frames may reach the server before the fake camera's picture does ("no face in view"):
    # wait for a frame with the face, as a person waits for the camera to start.
    status = _status(page, "webcam-status", "1 face(s)")
    assert "frames/s ·" in status and "classify" in status
    assert page.locator("#webcam-probabilities").inner_text().count("%") >= 2


@pytest.mark.parametrize(
    "tab, element, name, says",
    [
        ("Photo", "photo", "notes.png", "notes.png is not an image that can be read"),
        ("Photo", "photo", "huge.png", "huge.png is too large: 10000x5000 pixels"),
        ("Video", "video", "wall.avi", "no face found in any of the 2 frames looked at in wall.avi"),
    ],
)
def test_bad_input_is_a_message_in_the_page_and_the_app_goes_on(page, uploads, tab, element, name, says):
    _upload(page, tab, f"{element}-input", uploads / name)
    status = _status(page, f"{element}-status", "Cannot use this input")
    assert says in status
    text = page.locator("body").inner_text()
    assert "Traceback" not in text and 'File "' not in text
    page.locator(f"#{element}-input").get_by_role("button", name="Clear").click()
    _upload(page, "Photo", "photo-input", uploads / "astronaut.jpg")  # the server still serves
    _status(page, "photo-status", "face(s) in astronaut.jpg")
