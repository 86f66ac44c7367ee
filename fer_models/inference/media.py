"""Expressions of the faces in photos and videos: find every face with ``fer_synth``'s face stage, crop it in
FER2013's framing (48x48 grayscale) and classify it with a :class:`fer_models.inference.classifier.Classifier`.

``predict_media(paths, classifier, stage)`` takes image files, folders (searched recursively) and video files
(every ``every``-th frame) and returns one :class:`FacePrediction` per face, plus what it could not use (files
that do not decode, images and frames without a usable face, by reason). ``--json``/``--csv`` write the rows
flat (file, frame, box, label, score, one column per class) so that ``pandas.read_json``/``read_csv`` read them
as they are; ``annotate`` writes each image (or frame) with its boxes and labels drawn.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_models.inference.classifier import Classifier
from fer_synth.core.atomic import write_bytes
from fer_synth.core.errors import FerError, MissingPathError
from fer_synth.core.images import IMAGE_SUFFIXES, read_rgb, save_png
from fer_synth.core.outputs import has_file, make_dir, prepare_output_folder, refuse_existing_file, refuse_inputs
from fer_synth.faces.stage import FaceStage

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
DEFAULT_EVERY = 10  # video frames: every 10th (3 per second at 30 fps)
UNREADABLE = "unreadable"
COMMAND = "fer-models predict"
ANNOTATED_MARK = "annotations.json"  # written first into an --annotate folder: marks it as this command's
_FLUSH_FACES = 256  # faces classified per batch


@dataclass
class FacePrediction:
    """One face: where it is (file, video frame or None for a still image, box x, y, w, h in the image's pixels,
    detector score), and what the classifier says (label, its probability, every class's probability)."""

    file: str
    frame: int | None
    x: int
    y: int
    w: int
    h: int
    detector_score: float
    label: str
    score: float
    probabilities: dict[str, float]

    def row(self) -> dict:
        """Flat: one column per class, named by the class."""
        row = asdict(self)
        row.update(row.pop("probabilities"))
        return row


@dataclass
class MediaSummary:
    """What ``predict_media`` saw: images and frames read, faces found, and what gave no face, by reason."""

    predictions: list[FacePrediction] = field(default_factory=list)
    images: int = 0
    videos: int = 0
    frames: int = 0
    without_face: Counter = field(default_factory=Counter)  # reason -> images/frames
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> the first few files
    annotated: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        self.without_face[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(where)


def find_media(paths: list[str | os.PathLike]) -> list[Path]:
    """Image and video files among ``paths``, folders searched recursively (hidden files skipped), in a stable
    order; a path that does not exist, or a file of another kind, is an error naming it."""
    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found += sorted(
                p
                for p in given.rglob("*")
                if p.is_file() and _is_media(p) and not any(part.startswith(".") for part in p.relative_to(given).parts)
            )
        elif given.is_file():
            if not _is_media(given):
                raise FerError(
                    f"{given}: not an image or video file (images: {', '.join(IMAGE_SUFFIXES)}; videos: "
                    f"{', '.join(VIDEO_SUFFIXES)})"
                )
            found.append(given)
        else:
            raise MissingPathError(f"{given}: no such file or folder")
    return found


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def video_frames(path: Path, every: int) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, RGB frame) for every ``every``-th frame of a video, from frame 0."""
    capture = cv2.VideoCapture(str(path))
    try:
        index = 0
        while True:
            if index % every:
                if not capture.grab():
                    return
            else:
                ok, bgr = capture.read()
                if not ok:
                    return
                yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


def _items(files: list[Path], every: int, summary: MediaSummary) -> Iterator[tuple[str, int | None, np.ndarray]]:
    """(file, frame or None, RGB pixels) for each image and each sampled video frame."""
    for path in files:
        if is_video(path):
            frames = 0
            for index, rgb in video_frames(path, every):
                frames += 1
                yield str(path), index, rgb
            if frames:
                summary.videos += 1
                summary.frames += frames
            else:
                summary.skip(UNREADABLE, str(path))
            continue
        rgb = read_rgb(path)
        if rgb is None:
            summary.skip(UNREADABLE, str(path))
            continue
        summary.images += 1
        yield str(path), None, rgb


def check_outputs(
    paths: list[str | os.PathLike],
    files: list[str | os.PathLike | None] = (),
    annotate: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> None:
    """Refuse, before any work, outputs that exist (unless ``overwrite``) or that would write over an input."""
    for out in (f for f in files if f is not None):
        refuse_inputs(out, paths)
        refuse_existing_file(out, overwrite, "name")
    if annotate is not None:
        prepare_output_folder(
            annotate, command=COMMAND, is_own=has_file(ANNOTATED_MARK), overwrite=overwrite, inputs=paths
        )


def predict_media(
    paths: list[str | os.PathLike],
    classifier: Classifier,
    stage: FaceStage,
    every: int = DEFAULT_EVERY,
    annotate: str | os.PathLike | None = None,
    overwrite: bool = False,
    files: list[Path] | None = None,
) -> MediaSummary:
    """Every face in the images, folders and videos of ``paths``, classified; see the module's docstring.

    ``stage`` finds and crops the faces (use ``policy="all"`` for every face of a group photo, and the ``photo``
    filters for real photographs). ``annotate``: a folder (new, empty, an earlier annotation folder, or any with
    ``overwrite``) for copies of the images and sampled video frames with boxes and labels drawn, named as
    the inputs below their common folder. ``files``: :func:`find_media`'s list of ``paths`` when the caller has
    made it and checked the outputs (:func:`check_outputs`) already, as the command line does before it starts
    the face detector; they are then not done twice.
    """
    if every < 1:
        raise FerError(f"--every must be at least 1, got {every}")
    if files is None:
        files = find_media(paths)
        check_outputs(paths, annotate=annotate, overwrite=overwrite)
    summary = MediaSummary()
    pending: list[tuple[str, int | None, tuple[int, int, int, int], float]] = []
    crops: list[np.ndarray] = []
    if annotate is not None:
        annotate = Path(annotate)
        root = Path(os.path.commonpath([p.resolve().parent for p in files])) if files else Path.cwd()
        write_bytes(
            annotate / ANNOTATED_MARK,
            (
                json.dumps(
                    {"command": COMMAND, "inputs": [str(p) for p in paths], "model": classifier.identity}, indent=1
                )
                + "\n"
            ).encode(),
        )
    for file, frame, rgb in _items(files, every, summary):
        result = stage(rgb)
        where = file if frame is None else f"{file}#{frame}"
        if not result.kept:
            summary.skip(result.reason or "no_face", where)
        for crop, box, score in zip(result.faces, result.kept_boxes, result.kept_scores):
            pending.append((file, frame, box, score))
            crops.append(crop)
        if annotate is not None:
            start = len(summary.predictions)
            _classify(pending, crops, classifier, summary)
            pending, crops = [], []
            path = _annotated_path(annotate, root, file, frame)
            summary.annotated.append(str(_annotate(path, rgb, summary.predictions[start:])))
        elif len(crops) >= _FLUSH_FACES:
            _classify(pending, crops, classifier, summary)
            pending, crops = [], []
    _classify(pending, crops, classifier, summary)
    return summary


def _classify(pending: list, crops: list[np.ndarray], classifier: Classifier, summary: MediaSummary) -> None:
    if not crops:
        return
    probs = classifier.predict_proba(np.stack(crops))
    for (file, frame, (x, y, w, h), det_score), p in zip(pending, probs):
        k = int(p.argmax())
        summary.predictions.append(
            FacePrediction(
                file,
                frame,
                int(x),
                int(y),
                int(w),
                int(h),
                round(float(det_score), 4),
                classifier.classes[k],
                round(float(p[k]), 6),
                {c: round(float(v), 6) for c, v in zip(classifier.classes, p)},
            )
        )


def _annotated_path(folder: Path, root: Path, file: str, frame: int | None) -> Path:
    """``folder`` + the input's path below ``root``; a video frame as ``<name>/frame-NNNNNN.png``."""
    rel = Path(file).resolve().relative_to(root)
    if frame is None:
        return folder / rel.with_suffix(".png")
    return folder / rel.with_suffix("") / f"frame-{frame:06d}.png"


def _annotate(path: Path, rgb: np.ndarray, faces: list[FacePrediction]) -> Path:
    """The image with each face's box and ``label score`` drawn, saved as PNG at ``path``."""
    image = np.ascontiguousarray(rgb.copy())
    thickness = max(1, round(max(image.shape[:2]) / 300))
    for face in faces:
        cv2.rectangle(image, (face.x, face.y), (face.x + face.w, face.y + face.h), (255, 64, 64), thickness)
        text = f"{face.label} {face.score:.2f}"
        scale = max(0.4, face.w / 200)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(face.y - th - base - 2, 0)
        cv2.rectangle(image, (face.x, top), (face.x + tw + 2, top + th + base + 2), (255, 64, 64), -1)
        cv2.putText(
            image,
            text,
            (face.x + 1, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
    make_dir(path.parent)
    save_png(image, path)
    return path


def write_rows(predictions: list[FacePrediction], classes: tuple[str, ...], path: str | os.PathLike, fmt: str) -> Path:
    """The predictions as ``json`` (a list of flat records) or ``csv`` (same columns), written atomically."""
    rows = [p.row() for p in predictions]
    if fmt == "json":
        data = json.dumps(rows, indent=1) + "\n"
    else:
        buffer = io.StringIO()
        columns = [f for f in FacePrediction.__dataclass_fields__ if f != "probabilities"] + list(classes)
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        data = buffer.getvalue()
    write_bytes(path, data.encode())
    return Path(path)
