"""Screenshots of `fer-models demo`'s three tabs, taken in the OS's headless Chromium driven by Playwright.

    python examples/demo_screenshots.py [--out demo-screenshots] [--model builtin] [--face-model PATH]

It starts the demo on a free port of 127.0.0.1 and then, in the page: the webcam tab with a video of the astronaut
standing in for a webcam (boxes, bars, the frame rate the page shows, Grad-CAM on), the photo tab with
examples/photos/astronaut.jpg (Grad-CAM on) and the video tab with a short clip made from it (the timeline and the
CSV). Writes webcam.png, photo.png and video.png to --out and prints the webcam's status line. Needs the test
extras (``pip install -e ".[dev]"``: Gradio, Playwright, scikit-image) and Debian's ``chromium``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fer_models.inference.demo import serve  # noqa: E402
from fer_models.inference.demo.browser import (  # noqa: E402
    find_chromium,
    launch_chromium,
    webcam_scene,
    write_y4m,
)
from fer_synth.faces.stage import FaceStage, FaceStageConfig  # noqa: E402

PHOTO = HERE / "photos" / "astronaut.jpg"
FACE_MODEL = HERE.parent.parent / "shared" / "models" / "face_detection_short_range.tflite"
WAIT_MS = 120_000


def clip(path: Path, frames: int = 40) -> Path:
    """A 4-second clip of the example photo drifting sideways (MJPG in AVI: OpenCV writes it everywhere)."""
    rgb = np.asarray(Image.open(PHOTO).convert("RGB"))
    height, width = rgb.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    for i in range(frames):
        writer.write(cv2.cvtColor(np.roll(rgb, 2 * i, axis=1), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo-screenshots"))
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--face-model", default=os.environ.get("FER_SYNTH_FACE_MODEL", str(FACE_MODEL)))
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no Chromium: install Debian's (apt-get install -y chromium) or set FER_CHROMIUM to one")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app, url = serve(
        args.model,
        lambda: FaceStage(FaceStageConfig("mediapipe", filters="photo", policy="all", face_model=args.face_model)),
        port=port,
    )
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        webcam = write_y4m(webcam_scene(30), Path(tmp) / "webcam.y4m")
        browser = launch_chromium(playwright, chromium, fake_webcam=webcam)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)

        page.get_by_text("Click to Access Webcam").click()
        page.get_by_role("button", name="capture photo").click()  # starts the stream
        page.locator("#webcam-explain").get_by_text("Show where the model looks").click()
        page.locator("#webcam-status").get_by_text("explain").wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(5000)  # the frame rate settles
        status = page.locator("#webcam-status").inner_text()
        page.screenshot(path=str(args.out / "webcam.png"), full_page=True)
        page.get_by_role("button", name="capture photo").click()  # the same button stops it

        page.get_by_role("tab", name="Photo").click()
        page.locator("#photo-explain").get_by_text("Show where the model looks").click()
        page.locator("#photo-input input[type=file]").set_input_files(str(PHOTO))
        page.locator("#photo-status").get_by_text("heatmap").wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(args.out / "photo.png"), full_page=True)

        page.get_by_role("tab", name="Video").click()
        page.locator("#video-input input[type=file]").set_input_files(str(clip(Path(tmp) / "drift.avi")))
        page.locator("#video-status").get_by_text("The CSV holds every face").wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1000)  # the plot draws
        page.screenshot(path=str(args.out / "video.png"), full_page=True)
        browser.close()
    app.close()
    print(f"webcam tab: {status}")
    print(f"wrote {', '.join(str(args.out / n) for n in ('webcam.png', 'photo.png', 'video.png'))}")


if __name__ == "__main__":
    main()
