"""Face detector backends behind a small registry: ``haar`` (OpenCV) and ``mediapipe`` (BlazeFace).

A detector takes an RGB uint8 array and returns :class:`Detection` boxes in that array's pixels. Each backend
also says where FER2013's 48x48 frame sits around its box (:class:`Framing`), because the two detectors draw
different boxes around the same face: Haar's box runs from the brows to the chin, BlazeFace's from the eyes
to below the mouth. The framings were measured by running each detector on FER2013's own faces (upscaled and
framed in a wider border): ``python bench/face_throughput.py --calibrate``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from fer_synth.core.errors import FerError
from fer_synth.core.registry import Registry
from fer_synth.faces.blazeface import resolve_face_model, sha256_of
from fer_synth.ui.log import native_stderr_silenced


class UnknownBackendError(FerError):
    """A face detector name that is not registered."""


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` is x, y, w, h in the detector's input pixels; ``score`` is the backend's confidence."""

    box: tuple[int, int, int, int]
    score: float


@dataclass(frozen=True)
class Framing:
    """FER2013's square frame around a detector box, in units of the box width, from the box's top-left."""

    left: float
    top: float
    side: float


class Detector(Protocol):
    name: str
    framing: Framing
    #: detections scoring under this are not faces to the filters ("low_confidence"); None: no such filter.
    default_min_score: float | None
    #: the model files it read: inputs, which no output may overwrite.
    files: tuple[Path, ...]

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[Detection]:
        """Faces in ``rgb``; ``scale`` is how far the caller shrank the image (size limits scale with it)."""

    @property
    def settings(self) -> dict: ...

    def close(self) -> None: ...


_DETECTORS: Registry[Callable[..., Detector]] = Registry("face detector", UnknownBackendError)
#: Class decorator: make a detector available to :func:`create_detector` under a name.
register_detector = _DETECTORS.register
#: The registered backend names, sorted.
list_detectors = _DETECTORS.names


def create_detector(name: str, **options) -> Detector:
    """Build the detector ``name`` with its options; unknown names list the valid ones."""
    return _DETECTORS.get(name)(**options)


def merge_overlapping(detections: list[Detection], overlap: float = 0.5) -> list[Detection]:
    """Drop any detection that lies mostly (``overlap`` of the smaller box) inside a higher-scoring one."""
    kept: list[Detection] = []
    for det in sorted(detections, key=lambda d: -d.score):
        x, y, w, h = det.box
        if all(_intersection(det.box, k.box) < overlap * min(w * h, k.box[2] * k.box[3]) for k in kept):
            kept.append(det)
    return kept


def _intersection(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> int:
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


#: The seed pipeline's Haar settings: ``scaleFactor=1.3, minNeighbors=7, minSize=(50, 50)``.
HAAR_SCALE_FACTOR = 1.3
HAAR_MIN_NEIGHBORS = 7
HAAR_MIN_SIZE = 50


@register_detector("haar")
class HaarDetector:
    """OpenCV's Viola-Jones frontal-face cascade (``haarcascade_frontalface_default.xml``).

    Defaults are the seed pipeline's: ``scaleFactor=1.3, minNeighbors=7, minSize=(50, 50)``, ``min_size`` in
    the pixels of the image given to the face stage. The score is the cascade's level weight (unbounded; the
    neighbour count is Haar's real gate, so ``low_confidence`` is off by default).
    """

    name = "haar"
    # Measured on 1,134 FER2013 faces: the Haar box already is FER2013's frame (median offset 1%, side 98%).
    framing = Framing(left=-0.01, top=-0.01, side=1.02)
    default_min_score = None

    def __init__(
        self,
        scale_factor: float = HAAR_SCALE_FACTOR,
        min_neighbors: int = HAAR_MIN_NEIGHBORS,
        min_size: int = HAAR_MIN_SIZE,
        cascade: str = "haarcascade_frontalface_default.xml",
    ):
        if not 1.0 < scale_factor < math.inf or min_neighbors < 0 or min_size < 1:  # NaN fails the first test too
            raise FerError("haar needs scale_factor > 1, min_neighbors >= 0 and min_size >= 1")
        path = cascade if "/" in cascade else cv2.data.haarcascades + cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise FerError(
                f"could not load the Haar cascade {path}; install opencv-contrib-python<5 "
                f"(OpenCV 5 wheels ship no cascades)"
            )
        self.scale_factor, self.min_neighbors, self.min_size, self.cascade = (
            scale_factor,
            min_neighbors,
            min_size,
            cascade,
        )
        self.files = (Path(path),)

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[Detection]:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        side = max(int(round(self.min_size * scale)), 1)
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
            outputRejectLevels=True,
        )
        return [Detection(tuple(int(v) for v in box), float(weight)) for box, weight in zip(boxes, np.ravel(weights))]

    @property
    def settings(self) -> dict:
        return {
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
            "min_size": self.min_size,
            "cascade": self.cascade,
        }

    def close(self) -> None:
        self._cascade = None


@register_detector("mediapipe")
class MediaPipeDetector:
    """MediaPipe's BlazeFace short-range detector (Bazarevsky et al. 2019, "BlazeFace: Sub-millisecond
    Neural Face Detection on Mobile GPUs", arXiv:1907.05047) through the Tasks ``FaceDetector``.

    The model sees a 128x128 letterboxed copy, so a wide image shrinks its faces; images wider or taller than
    ``1.25:1`` are scanned in overlapping square windows and the windows' faces merged.
    ``floor`` is the score under which MediaPipe reports nothing (its own default, 0.5).
    """

    name = "mediapipe"
    # Measured on 1,447 FER2013 faces: BlazeFace's box starts 8.5% of its width right of FER2013's frame and
    # 17.7% below it, and is 85.4% of the frame's side.
    framing = Framing(left=-0.085, top=-0.177, side=1.171)
    default_min_score = 0.6

    def __init__(self, face_model: str | None = None, floor: float = 0.5, max_aspect: float = 1.25):
        from mediapipe.tasks.python import BaseOptions, vision

        self.face_model = resolve_face_model(face_model)
        self.files = (self.face_model,)
        self.face_model_sha256 = sha256_of(self.face_model)
        self.floor, self.max_aspect = floor, max_aspect
        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_buffer=self.face_model.read_bytes()), min_detection_confidence=floor
        )
        self._first_call = True
        try:
            with native_stderr_silenced():  # LiteRT's start-up lines; shown with -v
                self._detector = vision.FaceDetector.create_from_options(options)
        except (RuntimeError, ValueError) as e:
            raise FerError(
                f"MediaPipe could not load the face model {self.face_model} ({e}); pass "
                f"--face-model PATH to a BlazeFace .tflite file"
            ) from None

    def detect(self, rgb: np.ndarray, scale: float = 1.0) -> list[Detection]:
        height, width = rgb.shape[:2]
        side = min(height, width)
        if max(height, width) <= self.max_aspect * side:
            return self._detect_window(rgb, 0, 0)
        # Square windows overlapping by half, the last one flush with the far edge.
        long = max(height, width)
        starts = sorted({*range(0, long - side, side // 2), long - side})
        found: list[Detection] = []
        for start in starts:
            x0, y0 = (start, 0) if width > height else (0, start)
            found += self._detect_window(rgb[y0 : y0 + side, x0 : x0 + side], x0, y0)
        return merge_overlapping(found)

    def _detect_window(self, rgb: np.ndarray, x0: int, y0: int) -> list[Detection]:
        import mediapipe as mp

        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        if self._first_call:  # the first inference prints a few more native lines
            self._first_call = False
            with native_stderr_silenced():
                result = self._detector.detect(image)
        else:
            result = self._detector.detect(image)
        return [
            Detection(
                (
                    d.bounding_box.origin_x + x0,
                    d.bounding_box.origin_y + y0,
                    d.bounding_box.width,
                    d.bounding_box.height,
                ),
                float(d.categories[0].score),
            )
            for d in result.detections
        ]

    @property
    def settings(self) -> dict:
        return {"face_model_sha256": self.face_model_sha256, "floor": self.floor, "max_aspect": self.max_aspect}

    def close(self) -> None:
        if self._detector is not None:
            with native_stderr_silenced():
                self._detector.close()
            self._detector = None
