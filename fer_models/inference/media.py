"""Expressions of the faces in photos and videos: find every face with ``fer_synth``'s face stage, crop it in
FER2013's framing (48x48 grayscale) and classify it with a :class:`fer_models.inference.classifier.Classifier`.

``predict_media(paths, classifier, stage)`` takes image files, folders (searched recursively) and video files
(every ``every``-th frame) and returns one :class:`FacePrediction` per face, plus what it could not use (files
that do not decode, images and frames without a usable face, by reason). ``--json``/``--csv`` write the rows
flat (file, frame, box, label, score, one column per class) so that ``pandas.read_json``/``read_csv`` read them
as they are; ``annotate`` writes each image (or frame) with its boxes and labels drawn, ``explain`` the same with
each face's Grad-CAM heatmap (:mod:`fer_models.inference.explain`) painted where its crop came from.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fer_models.inference.classifier import Classifier
from fer_synth.core.atomic import write_bytes, write_together
from fer_synth.core.errors import FerError, MissingPathError
from fer_synth.core.folders import FolderWalk, describe_skipped, given_twice
from fer_synth.core.images import IMAGE_SUFFIXES, load_image, printable, save_png
from fer_synth.core.images import TOO_LARGE as IMAGE_TOO_LARGE
from fer_synth.core.outputs import (
    check_output_folder,
    has_file,
    make_dir,
    once_each,
    output_folder,
    refuse_collisions,
    refuse_existing_file,
    refuse_inputs,
    remove_stale_temps,
)
from fer_synth.faces.stage import TOO_LARGE, FaceStage, face_frame
from fer_synth.ui.log import native_stderr_silenced

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
DEFAULT_EVERY = 10  # video frames: every 10th (3 per second at 30 fps)
UNREADABLE = "unreadable"
COMMAND = "fer-models predict"
ANNOTATED_MARK = "annotations.json"  # written first into an --annotate folder: marks it as this command's
EXPLAINED_MARK = "explanations.json"  # the same for an --explain folder
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
    explained: list[str] = field(default_factory=list)

    def skip(self, reason: str, where: str) -> None:
        self.without_face[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(where)


def find_media(paths: list[str | os.PathLike]) -> list[Path]:
    """Image and video files among ``paths``, folders searched recursively (hidden files skipped; linked folders
    followed once), in a stable order; a path that does not exist, or a file of another kind, is an error naming
    it. A folder that cannot be read, a symbolic link loop or a broken link is skipped with a warning."""
    found: list[Path] = []
    walk = FolderWalk()
    for given in map(Path, paths):
        if given.is_dir():
            found += sorted(f for _, files in walk.tree(given) for f in files if _is_media(f))
        elif given.is_file():
            if not _is_media(given):
                raise FerError(
                    f"{printable(str(given))}: not an image or video file (images: "
                    f"{', '.join(IMAGE_SUFFIXES)}; videos: {', '.join(VIDEO_SUFFIXES)})"
                )
            found.append(given)
        else:
            raise MissingPathError(f"{printable(str(given))}: no such file or folder")
    if message := describe_skipped(walk.problems):
        logger.warning(message)
    found, repeated = once_each(found)
    if repeated:
        logger.warning(f"{given_twice(repeated)}: each is predicted once")
    return found


def _is_media(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


@contextmanager
def open_video(path: Path) -> Iterator[cv2.VideoCapture]:
    """An OpenCV capture of ``path``. OpenCV takes only a name, and crashes on one that is not valid UTF-8: such a
    file is opened through a temporary link with a plain name."""
    name, links = str(path), None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        links = tempfile.mkdtemp(prefix="fer-video-")
        name = os.path.join(links, f"video{path.suffix.lower()}")
        os.symlink(os.path.abspath(path), name)
    try:
        with native_stderr_silenced():  # FFmpeg's own lines about a damaged file; the summary names it
            capture = cv2.VideoCapture(name)
        try:
            yield capture
        finally:
            capture.release()
    finally:
        if links is not None:
            shutil.rmtree(links, ignore_errors=True)


def video_frames(path: Path, every: int) -> Iterator[tuple[int, np.ndarray]]:
    """(frame index, RGB frame) for every ``every``-th frame of a video, from frame 0. A video that ends well
    before the frame count its header announces (truncated, damaged) is named in a warning."""
    with open_video(path) as capture:
        announced = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        index = 0
        while True:
            with native_stderr_silenced():
                ok = capture.grab()
            if not ok:
                break
            if index % every == 0:
                ok, bgr = capture.retrieve()
                if not ok:
                    break
                yield index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
        # A header's count is estimated in some containers: a frame or two short is not damage.
        if 0 < index < 0.98 * announced - 1:
            logger.warning(
                f"{printable(str(path))}: the video ends at frame {index} of the {announced} its header "
                "announces (truncated or damaged); the frames before it were used"
            )


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
        rgb, reason = load_image(path)
        if rgb is None:
            summary.skip(TOO_LARGE if reason == IMAGE_TOO_LARGE else UNREADABLE, str(path))
            continue
        summary.images += 1
        yield str(path), None, rgb


def check_outputs(
    paths: list[str | os.PathLike],
    files: dict[str, str | os.PathLike | None] | None = None,
    annotate: str | os.PathLike | None = None,
    overwrite: bool = False,
    inputs: list[str | os.PathLike | None] = (),
    explain: str | os.PathLike | None = None,
) -> None:
    """Refuse, before any work, outputs (``files``: option -> file, the ``annotate`` and ``explain`` folders) that
    exist (unless ``overwrite``), that are one another, or that would write over an input: ``paths`` (the paths
    given and the media files found in them, so that a hard link elsewhere to one of them counts) and the other
    ``inputs`` (the model's files, the face model)."""
    files = dict(files or {})
    inputs = [*paths, *inputs]
    refuse_collisions({**files, "--annotate": annotate, "--explain": explain})
    for option, out in files.items():
        if out is not None:
            refuse_inputs(out, inputs, option)
            refuse_existing_file(out, overwrite, option)
    for option, folder, mark in (("--annotate", annotate, ANNOTATED_MARK), ("--explain", explain, EXPLAINED_MARK)):
        if folder is not None:
            check_output_folder(
                folder, command=COMMAND, is_own=has_file(mark), overwrite=overwrite, inputs=inputs, option=option
            )


def predict_media(
    paths: list[str | os.PathLike],
    classifier: Classifier,
    stage: FaceStage,
    every: int = DEFAULT_EVERY,
    annotate: str | os.PathLike | None = None,
    overwrite: bool = False,
    files: list[Path] | None = None,
    explain: str | os.PathLike | None = None,
) -> MediaSummary:
    """Every face in the images, folders and videos of ``paths``, classified; see the module's docstring.

    ``stage`` finds and crops the faces (use ``policy="all"`` for every face of a group photo, and the ``photo``
    filters for real photographs). ``annotate``: a folder (new, empty, an earlier annotation folder, or any with
    ``overwrite``) for copies of the images and sampled video frames with boxes and labels drawn, named as the
    inputs below their common folder (inputs that would share a name keep their suffix in it: ``x_png.png``,
    ``x_jpg.png``); ``explain``: a folder for the same with each face's Grad-CAM heatmap (for the class
    predicted), named alike. Each is built beside its target and replaces it at the end: an error or a kill leaves
    the old one whole. ``files``: :func:`find_media`'s list of ``paths`` when the caller has made it and checked
    the outputs (:func:`check_outputs`) already, as the command line does before it starts the face detector;
    they are then not done twice.
    """
    if every < 1:
        raise FerError(f"--every must be at least 1, got {every}")
    model_files = [
        p for m in classifier.members for p in (m.meta["_path"], Path(m.meta["_path"]).parent / m.meta["weights"])
    ]
    inputs = [*model_files, *stage.files]
    if files is None:
        files = find_media(paths)
        check_outputs([*paths, *files], annotate=annotate, overwrite=overwrite, inputs=inputs, explain=explain)
    summary = MediaSummary()
    inputs = [*paths, *inputs]
    wanted = {"annotate": (annotate, ANNOTATED_MARK), "explain": (explain, EXPLAINED_MARK)}
    with ExitStack() as claims:
        folders = {
            kind: claims.enter_context(
                output_folder(
                    given,
                    command=COMMAND,
                    is_own=has_file(mark),
                    overwrite=overwrite,
                    whole=True,
                    lock=None,
                    inputs=inputs,
                    option=f"--{kind}",
                )
            )
            for kind, (given, mark) in wanted.items()
            if given is not None
        }
        names = annotation_names(files) if folders else {}
        record = {"command": COMMAND, "inputs": [str(p) for p in paths], "model": classifier.identity}
        for kind, folder in folders.items():
            write_bytes(folder / wanted[kind][1], (json.dumps(record, indent=1) + "\n").encode())
        pending: list[tuple[str, int | None, tuple[int, int, int, int], float]] = []
        crops: list[np.ndarray] = []
        for file, frame, rgb in _items(files, every, summary):
            where = file if frame is None else f"{file}#{frame}"
            try:
                result = stage(rgb)
            except MemoryError:  # one huge image: skipped with the others that gave no face, named in the summary
                summary.skip(TOO_LARGE, where)
                continue
            if not result.kept:
                summary.skip(result.reason or "no_face", where)
            for crop, box, score in zip(result.faces, result.kept_boxes, result.kept_scores):
                pending.append((file, frame, box, score))
                crops.append(crop)
            if folders:
                start, shown = len(summary.predictions), crops
                _classify(pending, crops, classifier, summary)
                pending, crops = [], []
                faces = summary.predictions[start:]
                name = names[Path(file)]
                rel = name.with_suffix(".png") if frame is None else name / f"frame-{frame:06d}.png"
                if "annotate" in folders:
                    _save(folders["annotate"] / rel, draw_faces(rgb, faces))
                    summary.annotated.append(str(Path(annotate) / rel))
                if "explain" in folders:
                    _save(folders["explain"] / rel, draw_explained(rgb, faces, shown, classifier, stage))
                    summary.explained.append(str(Path(explain) / rel))
            elif len(crops) >= _FLUSH_FACES:
                _classify(pending, crops, classifier, summary)
                pending, crops = [], []
        _classify(pending, crops, classifier, summary)
    return summary


def annotation_names(files: list[Path]) -> dict[Path, Path]:
    """Where each input's annotation goes, below the annotation folder and without a suffix: its path below the
    inputs' common folder. Inputs that would collide (``x.png`` and ``x.jpg``, ``clip.mp4`` and ``clip.avi``, a
    video's frame folder and another input's folder) keep their suffix in the name (``x_png``, ``x_jpg``); any
    that still collide are numbered. No annotation replaces another."""
    root = Path(os.path.commonpath([p.resolve().parent for p in files])) if files else Path.cwd()
    plain = {f: f.resolve().relative_to(root).with_suffix("") for f in files}
    counts = Counter(plain.values())
    holding = Counter(parent for name in plain.values() for parent in name.parents)  # folders other inputs' go in
    names: dict[Path, Path] = {}
    for f, name in plain.items():
        if counts[name] > 1 or (is_video(f) and holding[name]):
            name = name.with_name(f"{name.name}_{f.suffix.lstrip('.').lower()}")
        names[f] = name
    taken: Counter = Counter()
    for f, name in names.items():
        taken[name] += 1
        if taken[name] > 1:
            names[f] = name.with_name(f"{name.name}_{taken[name]}")
    return names


def _classify(pending: list, crops: list[np.ndarray], classifier: Classifier, summary: MediaSummary) -> None:
    if not crops:
        return
    probs = classifier.predict_proba(np.stack(crops))
    for (file, frame, box, det_score), p in zip(pending, probs):
        summary.predictions.append(classified(file, frame, box, det_score, p, classifier.classes))


def classified(
    file: str,
    frame: int | None,
    box: tuple[int, int, int, int],
    detector_score: float,
    probs: np.ndarray,
    classes: tuple[str, ...],
) -> FacePrediction:
    """The row of one face: where it is and its class probabilities ``probs`` over ``classes``."""
    x, y, w, h = box
    k = int(probs.argmax())
    return FacePrediction(
        file,
        frame,
        int(x),
        int(y),
        int(w),
        int(h),
        round(float(detector_score), 4),
        classes[k],
        round(float(probs[k]), 6),
        {c: round(float(v), 6) for c, v in zip(classes, probs)},
    )


def _save(path: Path, image: np.ndarray) -> Path:
    make_dir(path.parent)
    save_png(image, path)
    return path


def draw_explained(
    rgb: np.ndarray, faces: list[FacePrediction], crops: list[np.ndarray], classifier: Classifier, stage: FaceStage
) -> np.ndarray:
    """A copy of ``rgb`` with each face's Grad-CAM for its predicted class painted over the frame its crop (in
    ``crops``, as the face stage cut it) came from, then the boxes and labels drawn."""
    from fer_models.inference.explain import grad_cams, paint

    image = np.ascontiguousarray(rgb.copy())
    if faces:
        cams = grad_cams(classifier, np.stack(crops), [classifier.classes.index(face.label) for face in faces])
        for face, cam in zip(faces, cams):
            paint(image, face_frame((face.x, face.y, face.w, face.h), stage.detector.framing, stage.margin), cam)
    return draw_faces(image, faces)


def draw_faces(rgb: np.ndarray, faces: list[FacePrediction]) -> np.ndarray:
    """A copy of ``rgb`` with each face's box and ``label score`` drawn."""
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
    return image


def write_rows(predictions: list[FacePrediction], classes: tuple[str, ...], path: str | os.PathLike, fmt: str) -> Path:
    """The predictions as ``json`` (a list of flat records) or ``csv`` (same columns), written atomically."""
    return write_row_files(predictions, classes, {path: fmt})[0]


def write_row_files(
    predictions: list[FacePrediction], classes: tuple[str, ...], outputs: Mapping[str | os.PathLike, str]
) -> list[Path]:
    """The predictions in each file of ``outputs`` (path -> ``json`` or ``csv``), written together: a kill between
    them leaves what the same command again finishes (:func:`~fer_synth.core.atomic.write_together`)."""
    rows = [p.row() for p in predictions]
    files = {}
    for path, fmt in outputs.items():
        if fmt == "json":
            data = json.dumps(rows, indent=1) + "\n"
        else:
            buffer = io.StringIO()
            columns = [f for f in FacePrediction.__dataclass_fields__ if f != "probabilities"] + list(classes)
            writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            data = buffer.getvalue()
        remove_stale_temps(path)  # what a killed predict of the same file left
        files[path] = printable(data).encode()  # a file name that is not UTF-8: \xNN escapes
    return write_together(files)
