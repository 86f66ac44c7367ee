"""The webcam's frame path: one RGB frame -> faces detected, cropped, classified and drawn, each stage timed.

It is ``predict``'s path (:mod:`fer_models.inference.media`) cut down for a live feed: every face the detector
reports at the stage's ``min_score`` and ``min_face`` (no blur filter: a moving face is still a face), the classifier as
loaded (the demo loads it without TTA, in bf16 where the CPU has it natively), boxes and labels drawn by
:func:`fer_models.inference.media.draw_faces`. ``bench/webcam_speed.py`` measures it stage by stage.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from fer_models.inference.classifier import Classifier
from fer_models.inference.media import FacePrediction, classified, draw_explained, draw_faces
from fer_synth.faces.stage import FaceStage, crop_face, face_frame, to_rgb_array

STAGES: tuple[str, ...] = ("decode", "detect", "crop", "classify", "draw")
EXPLAIN = "explain"  # the Grad-CAM stage, when asked for


@dataclass
class Frame:
    """One processed frame: the drawn image, its faces (largest first) and the seconds each stage took."""

    image: np.ndarray
    faces: list[FacePrediction]
    seconds: dict[str, float] = field(default_factory=dict)


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes (what a browser streams from a webcam) -> RGB uint8, as Gradio decodes them (Pillow)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


class FramePath:
    """``path(rgb)`` -> :class:`Frame`; callable from several threads: ``lock`` guards the face stage (MediaPipe's
    detector serves one caller at a time), and whoever else uses ``stage`` holds it too."""

    def __init__(self, classifier: Classifier, stage: FaceStage):
        self.classifier, self.stage = classifier, stage
        self.lock = threading.Lock()

    def __call__(self, rgb: np.ndarray, explain: bool = False, source: str = "webcam") -> Frame:
        seconds: dict[str, float] = {}
        clock = time.perf_counter()

        def lap(name: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            seconds[name] = now - clock
            clock = now

        rgb = to_rgb_array(rgb)
        with self.lock:
            detections = self.stage.detect(rgb)
        lap("detect")
        crops, kept = [], []
        for det in detections:
            if self.stage.min_score is not None and det.score < self.stage.min_score:
                continue
            frame = face_frame(det.box, self.stage.detector.framing, self.stage.margin)
            if frame[2] >= self.stage.min_face:
                crops.append(crop_face(rgb, frame, self.stage.size))
                kept.append(det)
        lap("crop")
        faces = []
        if crops:
            probs = self.classifier.predict_proba(np.stack(crops))
            faces = [
                classified(source, None, det.box, det.score, p, self.classifier.classes) for det, p in zip(kept, probs)
            ]
        lap("classify")
        if explain:
            image = draw_explained(rgb, faces, crops, self.classifier, self.stage)
            lap(EXPLAIN)
        else:
            image = draw_faces(rgb, faces)
            lap("draw")
        return Frame(image, faces, seconds)


class Rate:
    """Frames per second over the recent frames (an exponential moving average of the interval between calls)."""

    def __init__(self, smoothing: float = 0.2, gap: float = 2.0):
        self.smoothing, self.gap = smoothing, gap
        self._last: float | None = None
        self._interval: float | None = None

    def tick(self) -> float | None:
        """Count a frame; the rate, or None until two frames came less than ``gap`` seconds apart."""
        now = time.perf_counter()
        if self._last is not None:
            interval = now - self._last
            if interval > self.gap:  # a pause (the stream stopped): start afresh
                self._interval = None
            elif self._interval is None:
                self._interval = interval
            else:
                self._interval += self.smoothing * (interval - self._interval)
        self._last = now
        return 1 / self._interval if self._interval else None
