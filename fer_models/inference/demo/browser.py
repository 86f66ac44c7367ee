"""Driving the demo in a real browser: the OS's Chromium under Playwright, offline, with a video file standing in
for the webcam. Used by the browser test (tests/fer_models/inference/test_demo_browser.py) and
examples/demo_screenshots.py.

Playwright's own browser download is not used: Chromium comes from the OS (Debian: ``apt-get install chromium``)
and is started with the flags that keep it from reaching the network by itself.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

#: Headless, no sandbox (root in CI), no GPU, and none of Chromium's own background connections.
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
CHROMIUM_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """The OS's Chromium: ``$FER_CHROMIUM``, else the first of :data:`CHROMIUM_NAMES` on the PATH; None if none."""
    given = os.environ.get("FER_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    return next((path for path in map(shutil.which, CHROMIUM_NAMES) if path), None)


def launch_chromium(playwright, executable: str, fake_webcam: str | os.PathLike | None = None):
    """Headless Chromium (``executable``) under ``playwright``; ``fake_webcam``: a .y4m video it shows as the webcam,
    allowed without asking."""
    args = list(CHROMIUM_FLAGS)
    if fake_webcam is not None:
        args += [
            "--use-fake-device-for-media-stream",
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={fake_webcam}",
        ]
    return playwright.chromium.launch(executable_path=executable, args=args)


def write_y4m(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: int = 15) -> Path:
    """RGB uint8 frames (even width and height, all one size) as a YUV4MPEG2 (4:2:0) video: what Chromium plays as
    a fake webcam."""
    path = Path(path)
    with path.open("wb") as f:
        for i, rgb in enumerate(frames):
            if i == 0:
                height, width = rgb.shape[:2]
                f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            f.write(b"FRAME\n" + cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def webcam_scene(n: int, width: int = 640, height: int = 480) -> list[np.ndarray]:
    """``n`` frames of ``width`` x ``height`` with one real face (scikit-image's astronaut, a test extra), shifted a
    few pixels from frame to frame as a person moves in front of a webcam."""
    from skimage import data

    scene = cv2.resize(data.astronaut(), (width, width), interpolation=cv2.INTER_AREA)[:height]
    return [np.roll(scene, (i % 7 - 3, i % 5 - 2), axis=(0, 1)) for i in range(n)]
