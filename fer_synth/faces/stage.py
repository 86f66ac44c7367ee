"""The face stage: detect faces, crop them in FER2013's framing to 48x48 grayscale, and reject with a reason.

``FaceStage(FaceStageConfig(backend))(image)`` returns a :class:`FaceResult`; generation and ``fer-synth crop``
call it on every image. The filters run in this order and the first that fires names the rejection:

``nsfw_blank``      the safety checker flagged the image, or it is near-constant (grey-level std < ``blank_std``)
``no_face``         the detector found nothing
``low_confidence``  no face scores ``min_score`` or more
``multiple_faces``  more than one confident face under the ``single`` policy
``face_too_small``  the face's FER2013 frame is under ``min_face`` pixels (it would be upscaled into the crop)
``blurry``          the 48x48 crop's variance of the Laplacian is under ``blur_threshold``

Policies: ``largest`` (default) keeps the largest confident face and ignores the rest; ``single`` rejects
images with several; ``all`` keeps every confident face that passes the size and blur filters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fer_synth.core.errors import FerError
from fer_synth.faces.detectors import (
    HAAR_MIN_NEIGHBORS,
    HAAR_MIN_SIZE,
    HAAR_SCALE_FACTOR,
    Detection,
    Detector,
    create_detector,
)

REASONS = ("nsfw_blank", "no_face", "multiple_faces", "face_too_small", "low_confidence", "blurry")
POLICIES = ("largest", "single", "all")
#: Why an image was skipped before the stage saw it whole: too large to decode or search in the memory left.
TOO_LARGE = "too_large"
DEFAULT_BACKEND = "mediapipe"

# Defaults, each explained in docs/faces.md.
DEFAULT_SIZE = 48  # FER2013's side
DEFAULT_MARGIN = 0.0  # the backends' framings already reproduce FER2013's (measured)
DEFAULT_MIN_FACE = 48  # a frame smaller than the crop would be upscaled
DEFAULT_BLUR_THRESHOLD = 400.0  # ~1st percentile of FER2013 train's own 48x48 faces (median ~2,000)
DEFAULT_BLANK_STD = 3.0  # grey levels; the safety checker's output is exactly 0
DEFAULT_DETECT_SIZE = 320  # the detector sees a copy of at most 320x320 pixels' area (boxes map back)
#: The largest crop side: a face is upscaled from its frame, and a 100,000-pixel side would take 10 GB per face.
MAX_SIZE = 4096


@dataclass(frozen=True)
class Filters:
    """The thresholds that tell a usable face from a failure (``min_score`` None: the backend's default), and
    ``pad``: when the detector finds nothing, it looks again at a copy with a border of repeated edge pixels,
    this fraction of the image's longer side (a face that fills the whole photo is often found only then)."""

    min_face: int
    min_score: float | None
    blur_threshold: float
    pad: float = 0.0


#: Filter thresholds by kind of image (docs/faces.md). ``generated``: strict, for a diffusion model's output, whose
#: failures must not enter a dataset. ``photo``: for real photographs, where every face the detector reports is a
#: face: blur is no reason to drop it (a low-resolution photo is still a face), any score the detector reports
#: (MediaPipe reports nothing under its floor, 0.5), frames down to 24 px, and a second look with a 20% border
#: when the detector finds nothing (tightly framed portraits). Measured on real faces:
#: ``python bench/predict_throughput.py``.
FILTERS: dict[str, Filters] = {
    "generated": Filters(min_face=DEFAULT_MIN_FACE, min_score=None, blur_threshold=DEFAULT_BLUR_THRESHOLD),
    "photo": Filters(min_face=24, min_score=0.0, blur_threshold=0.0, pad=0.2),
}


@dataclass
class FaceResult:
    """What the face stage decided about one image (the interface `generate` relies on; docs/faces.md)."""

    kept: bool
    reason: str | None
    faces: list[np.ndarray] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    backend: str = ""
    kept_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # the box of each face in ``faces``
    kept_scores: list[float] = field(default_factory=list)  # and its detector score

    def to_record(self) -> dict:
        """JSON-ready fields for a manifest record; no pixels."""
        return {
            "kept": self.kept,
            "reason": self.reason,
            "boxes": [list(b) for b in self.boxes],
            "scores": [round(s, 4) for s in self.scores],
            "backend": self.backend,
        }


def to_rgb_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """An RGB uint8 HxWx3 array from a PIL image (any mode) or an RGB/gray uint8 array."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise FerError(f"face stage wants uint8 pixels, got {array.dtype}")
    if array.ndim == 2:
        return np.stack([array] * 3, axis=-1)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return array[:, :, :3]
    raise FerError(f"face stage wants an HxWx3 RGB image, got shape {array.shape}")


def face_frame(box: tuple[int, int, int, int], framing, margin: float) -> tuple[int, int, int]:
    """The square crop (x, y, side) around a detector box: the backend's FER2013 framing plus ``margin``
    of the frame's side on every side."""
    x, y, w, h = box
    size = (w + h) / 2
    side = framing.side * size * (1 + 2 * margin)
    cx = x + (framing.left + framing.side / 2) * size
    cy = y + (framing.top + framing.side / 2) * size
    return int(round(cx - side / 2)), int(round(cy - side / 2)), max(int(round(side)), 1)


def crop_face(rgb: np.ndarray, frame: tuple[int, int, int], size: int) -> np.ndarray:
    """The square ``frame`` of ``rgb`` as a ``size`` x ``size`` grayscale uint8 crop (area interpolation).

    Parts of the frame outside the image repeat the edge pixels, as FER2013's own edge faces do.
    """
    x, y, side = frame
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, width), min(y + side, height)
    gray = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    if (x0, y0, x1, y1) != (x, y, x + side, y + side):
        gray = cv2.copyMakeBorder(gray, y0 - y, y + side - y1, x0 - x, x + side - x1, cv2.BORDER_REPLICATE)
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: low for blurry or featureless crops."""
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


@dataclass(frozen=True)
class FaceStageConfig:
    """Every setting of the face stage; the command lines' face options (``fer_synth.faces.options``) set these
    fields by name.

    ``filters`` is the thresholds' preset (``generated``, strict, or ``photo``; see :data:`FILTERS`); ``min_face``
    (px), ``min_score`` and ``blur_threshold`` given explicitly override the preset's (its ``min_score`` None is the
    backend's default), as ``pad`` overrides its second look's border. ``policy``: largest/single/all; ``size``: the
    crop's side; ``margin``: extra fraction of the frame on each side; ``detect_size``: the detector sees at most
    this squared in pixels (0: full size). The backend's own options: ``face_model`` (mediapipe) and ``haar_*``.
    """

    backend: str = DEFAULT_BACKEND
    filters: str = "generated"
    policy: str = "largest"
    size: int = DEFAULT_SIZE
    margin: float = DEFAULT_MARGIN
    min_face: int | None = None
    min_score: float | None = None
    blur_threshold: float | None = None
    blank_std: float = DEFAULT_BLANK_STD
    detect_size: int = DEFAULT_DETECT_SIZE
    pad: float | None = None
    face_model: str | None = (
        None  # mediapipe: the BlazeFace .tflite (else $FER_SYNTH_FACE_MODEL, the cache, a download)
    )
    haar_scale_factor: float = HAAR_SCALE_FACTOR
    haar_min_neighbors: int = HAAR_MIN_NEIGHBORS
    haar_min_size: int = HAAR_MIN_SIZE

    def detector_options(self) -> dict:
        """The options of this config's backend, as its detector takes them."""
        if self.backend == "haar":
            return {
                "scale_factor": self.haar_scale_factor,
                "min_neighbors": self.haar_min_neighbors,
                "min_size": self.haar_min_size,
            }
        if self.backend == "mediapipe":
            return {"face_model": self.face_model}
        return {}


class FaceStage:
    """Detector + crop policy + filters, callable on one image at a time, as a :class:`FaceStageConfig` says."""

    def __init__(self, config: FaceStageConfig | None = None):
        config = config or FaceStageConfig()
        if config.policy not in POLICIES:
            raise FerError(f"unknown face policy {config.policy!r}; choose one of: {', '.join(POLICIES)}")
        if config.filters not in FILTERS:
            raise FerError(f"unknown face filters {config.filters!r}; choose one of: {', '.join(FILTERS)}")
        preset = FILTERS[config.filters]
        min_face = preset.min_face if config.min_face is None else config.min_face
        min_score = preset.min_score if config.min_score is None else config.min_score
        blur_threshold = preset.blur_threshold if config.blur_threshold is None else config.blur_threshold
        self.pad = preset.pad if config.pad is None else config.pad
        # NaN passes every comparison below (and would be written to run.json, which then never matches itself);
        # infinity overflows the crop arithmetic.
        numbers = {"margin": config.margin, "min_score": min_score, "blur_threshold": blur_threshold}
        numbers |= {"blank_std": config.blank_std, "pad": self.pad}
        odd = [f"{name} {value}" for name, value in numbers.items() if value is not None and not math.isfinite(value)]
        if odd:
            raise FerError(f"face stage needs finite numbers, got {', '.join(odd)}")
        if not 8 <= config.size <= MAX_SIZE or config.margin < 0 or min_face < 0 or config.detect_size < 0:
            raise FerError(
                f"face stage needs size >= 8 (at most {MAX_SIZE}), margin >= 0, min_face >= 0 and detect_size >= 0 "
                f"(got {config.size}, {config.margin}, {min_face}, {config.detect_size})"
            )
        if self.pad < 0:
            raise FerError(f"face stage needs pad >= 0 (got {self.pad})")
        self.detector: Detector = create_detector(config.backend, **config.detector_options())
        self.filters, self.policy, self.size, self.margin, self.min_face = (
            config.filters,
            config.policy,
            config.size,
            config.margin,
            min_face,
        )
        self.min_score = self.detector.default_min_score if min_score is None else min_score
        self.blur_threshold, self.blank_std, self.detect_size = blur_threshold, config.blank_std, config.detect_size

    @property
    def backend(self) -> str:
        return self.detector.name

    @property
    def files(self) -> tuple[Path, ...]:
        """The model files the detector read: inputs of every command that runs the stage."""
        return self.detector.files

    @property
    def settings(self) -> dict:
        """Backend, detector options, thresholds and crop options; JSON-ready."""
        return {
            "backend": self.backend,
            "detector": self.detector.settings,
            "filters": self.filters,
            "policy": self.policy,
            "size": self.size,
            "margin": self.margin,
            "min_face": self.min_face,
            "min_score": self.min_score,
            "blur_threshold": self.blur_threshold,
            "blank_std": self.blank_std,
            "detect_size": self.detect_size,
            "pad": self.pad,
        }

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in full-size pixels, largest first; the detector sees a copy of at most ``detect_size``² pixels."""
        height, width = rgb.shape[:2]
        scale = 1.0
        # Shrink by area, not by the longest side, so a wide image keeps its faces as large as a square one's.
        if self.detect_size and height * width > self.detect_size**2:
            scale = self.detect_size / (height * width) ** 0.5
            small = cv2.resize(
                rgb, (max(round(width * scale), 1), max(round(height * scale), 1)), interpolation=cv2.INTER_AREA
            )
        else:
            small = rgb
        found = self.detector.detect(small, scale)
        border = round(self.pad * max(small.shape[:2]))
        if not found and border:  # a second look, for a face that fills the whole image
            small = cv2.copyMakeBorder(small, border, border, border, border, cv2.BORDER_REPLICATE)
            found = [
                Detection((d.box[0] - border, d.box[1] - border, d.box[2], d.box[3]), d.score)
                for d in self.detector.detect(small, scale)
            ]
        found = [Detection(tuple(int(round(v / scale)) for v in d.box), d.score) for d in found]
        return sorted(found, key=lambda d: -d.box[2] * d.box[3])

    def __call__(self, image: Image.Image | np.ndarray, nsfw_flag: bool = False) -> FaceResult:
        rgb = to_rgb_array(image)
        result = FaceResult(kept=False, reason=None, backend=self.backend)
        if nsfw_flag or self._blank(rgb):
            result.reason = "nsfw_blank"
            return result
        detections = self.detect(rgb)
        result.boxes = [d.box for d in detections]
        result.scores = [d.score for d in detections]
        confident = [d for d in detections if self.min_score is None or d.score >= self.min_score]
        if not detections:
            result.reason = "no_face"
        elif not confident:
            result.reason = "low_confidence"
        elif self.policy == "single" and len(confident) > 1:
            result.reason = "multiple_faces"
        else:
            candidates = confident if self.policy == "all" else confident[:1]
            kept, result.reason = self._crops(rgb, candidates)
            result.faces = [crop for crop, _ in kept]
            result.kept_boxes = [det.box for _, det in kept]
            result.kept_scores = [det.score for _, det in kept]
        result.kept = bool(result.faces)
        return result

    def _crops(
        self, rgb: np.ndarray, detections: list[Detection]
    ) -> tuple[list[tuple[np.ndarray, Detection]], str | None]:
        """(crop, detection) for the faces that pass the size and blur filters, or [] and the reason of the first
        (largest) face."""
        crops, reasons = [], []
        for det in detections:
            frame = face_frame(det.box, self.detector.framing, self.margin)
            if frame[2] < self.min_face:
                reasons.append("face_too_small")
                continue
            crop = crop_face(rgb, frame, self.size)
            # The threshold is calibrated at FER2013's 48x48, whatever the output size.
            at_48 = crop if self.size == 48 else cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA)
            if sharpness(at_48) < self.blur_threshold:
                reasons.append("blurry")
                continue
            crops.append((crop, det))
        return crops, (None if crops else reasons[0])

    def _blank(self, rgb: np.ndarray) -> bool:
        # A strided sample is enough to tell a constant image from a photograph.
        step = max(1, max(rgb.shape[:2]) // 128)
        sample = np.ascontiguousarray(rgb[::step, ::step])
        return float(cv2.cvtColor(sample, cv2.COLOR_RGB2GRAY).std()) < self.blank_std

    def close(self) -> None:
        """Release the detector (MediaPipe holds a native graph)."""
        self.detector.close()

    def __enter__(self) -> FaceStage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
