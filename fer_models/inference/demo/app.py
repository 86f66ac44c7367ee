"""The demo's page (Gradio) and the work behind it.

:class:`Demo` does the work and knows nothing of Gradio: each handler takes what the page sends (a webcam frame,
an uploaded file's path, a checkbox) and returns what the page shows, with a bad input (not an image, an image too
large, a video without faces) turned into a message for the page. An unexpected error is logged with its traceback
on the server and shown as one line: the page never shows a traceback, and the server goes on serving.
:func:`build_app` lays the three tabs out and wires them to a :class:`Demo`.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fer_models.inference.classifier import Classifier
from fer_models.inference.demo.live import FramePath, Rate
from fer_models.inference.media import (
    VIDEO_SUFFIXES,
    FacePrediction,
    MediaSummary,
    is_video,
    open_video,
    predict_media,
    write_rows,
)
from fer_synth.core.errors import FerError
from fer_synth.faces.stage import FaceStage
from fer_synth.ui.plots import class_colours

logger = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000  # a 40-megapixel photo; a larger one is refused with a message (decoding it costs GBs)
SHOWN_SIDE = 1280  # photos are shown at most this wide or high (the faces are found at full size)
VIDEO_EVERY = 5  # videos: every 5th frame by default (6 per second at 30 fps)
TITLE = "fer-models demo"
TIMELINE = ("seconds", "expression", "probability")  # the timeline's columns


class DemoInputError(FerError):
    """An upload the demo cannot use; its message is shown in the page."""


def read_photo(path: str | Path) -> np.ndarray:
    """An uploaded photo as RGB uint8 (turned upright by its EXIF orientation); a file that is no image, or one
    over :data:`MAX_PIXELS`, is a :class:`DemoInputError` naming the problem."""
    name = Path(path).name
    try:
        with Image.open(path) as image:  # reads the header only: the size is known before decoding
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise DemoInputError(
                    f"{name} is too large: {width}x{height} pixels ({width * height / 1e6:.0f} MP); "
                    f"the demo reads photos up to {MAX_PIXELS / 1e6:.0f} MP: make it smaller first"
                )
            return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except FileNotFoundError:
        raise DemoInputError(f"{name}: no such file; upload it again") from None
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise DemoInputError(f"{name} is not an image that can be read (PNG, JPEG, WebP, BMP, TIFF, GIF...)") from None
    except OSError as e:
        raise DemoInputError(f"{name} could not be decoded ({e}); is it a complete image file?") from None


def shown(image: np.ndarray, side: int = SHOWN_SIDE) -> np.ndarray:
    """``image`` shrunk to at most ``side`` pixels wide and high, for the page."""
    height, width = image.shape[:2]
    if max(height, width) <= side:
        return image
    scale = side / max(height, width)
    return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def probabilities(face: FacePrediction | None) -> dict[str, float]:
    """A face's class probabilities, for the page's bars ({} when there is no face)."""
    return dict(face.probabilities) if face else {}


def face_table(faces: list[FacePrediction], classes: tuple[str, ...]) -> list[list]:
    """One row per face: number, box, label, its probability, every class's probability."""
    return [
        [
            i + 1,
            f"{f.x},{f.y},{f.w},{f.h}",
            f.label,
            round(f.score, 3),
            *(round(f.probabilities[c], 3) for c in classes),
        ]
        for i, f in enumerate(faces)
    ]


def _problem(e: Exception) -> str:
    """The line the page shows for an exception: a user error's own message, anything else named as a bug."""
    if isinstance(e, FerError):
        return f"**Cannot use this input.** {e}"
    logger.exception("the demo failed on an input")
    return (
        f"**Something went wrong** ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); the server "
        "log has the details, and the demo goes on working"
    )


class Demo:
    """What the demo's tabs do, for one classifier; ``make_stage`` builds a face stage (one for the webcam, one for
    uploads: MediaPipe's detector serves one caller at a time)."""

    def __init__(self, classifier: Classifier, make_stage: Callable[[], FaceStage], every: int = VIDEO_EVERY):
        self.classifier = classifier
        self.webcam_path = FramePath(classifier, make_stage())
        self.upload_path = FramePath(classifier, make_stage())
        self.every = every
        self._workdir = tempfile.TemporaryDirectory(prefix="fer-demo-")  # the CSVs offered for download

    @property
    def classes(self) -> tuple[str, ...]:
        return self.classifier.classes

    def close(self) -> None:
        for path in (self.webcam_path, self.upload_path):
            path.stage.close()
        self._workdir.cleanup()

    # --- webcam -------------------------------------------------------------------------------------------------

    def webcam(self, frame: np.ndarray | None, explain: bool, rate: Rate) -> tuple[np.ndarray | None, dict, str]:
        """A webcam frame -> (the frame drawn, the largest face's probabilities, a line with the frame rate);
        ``rate`` counts this viewer's frames."""
        if frame is None:
            return None, {}, "Waiting for the webcam..."
        try:
            result = self.webcam_path(frame, explain=explain)
        except Exception as e:  # the page shows a line; the stream goes on
            return None, {}, _problem(e)
        fps = rate.tick()
        stages = ", ".join(f"{name} {1000 * s:.0f}" for name, s in result.seconds.items())
        faces = f"{len(result.faces)} face(s)" if result.faces else "no face in view"
        status = f"**{fps:.1f} frames/s**" if fps else "**... frames/s**"
        status += f" · {faces} · server ms per frame: {stages}"
        return result.image, probabilities(result.faces[0] if result.faces else None), status

    # --- photo --------------------------------------------------------------------------------------------------

    def photo(self, path: str | None, explain: bool = False) -> tuple[np.ndarray | None, dict, list[list], str]:
        """An uploaded photo -> (the photo drawn, the largest face's probabilities, a row per face, a message)."""
        if not path:
            return None, {}, [], "Upload a photo."
        try:
            rgb = read_photo(path)
            result = self.upload_path(rgb, explain=explain, source=Path(path).name)
        except Exception as e:  # any error becomes a line in the page (_problem)
            return None, {}, [], _problem(e)
        if not result.faces:
            return shown(rgb), {}, [], f"No face found in {Path(path).name} ({rgb.shape[1]}x{rgb.shape[0]})."
        largest = result.faces[0]
        message = (
            f"{len(result.faces)} face(s) in {Path(path).name}; the largest looks **{largest.label}** "
            f"({100 * largest.score:.0f}%)" + (" · heatmap: where the model looks for that class" if explain else "")
        )
        return shown(result.image), probabilities(largest), face_table(result.faces, self.classes), message

    # --- video --------------------------------------------------------------------------------------------------

    def video(self, path: str | None, every: int | None = None) -> tuple[list[dict], str | None, str]:
        """An uploaded video -> (the :func:`timeline` rows, a CSV with every face, a message)."""
        if not path:
            return [], None, "Upload a video."
        name = Path(path).name
        every = int(every or self.every)
        try:
            if not is_video(Path(path)):
                raise DemoInputError(f"{name} is not a video file the demo reads ({', '.join(VIDEO_SUFFIXES)})")
            with self.upload_path.lock:
                summary = predict_media([path], self.classifier, self.upload_path.stage, every)
            if not summary.frames:
                raise DemoInputError(f"{name}: no frame could be read; is it a complete video file?")
            if not summary.predictions:
                raise DemoInputError(
                    f"no face found in any of the {summary.frames} frames looked at in {name} (every {every}th frame)"
                )
            out = Path(self._workdir.name) / uuid.uuid4().hex / f"{Path(name).stem}-faces.csv"
            out.parent.mkdir(parents=True)
            # The rows name the file as uploaded, not as the server stored it.
            write_rows([dataclasses.replace(p, file=name) for p in summary.predictions], self.classes, out, "csv")
        except Exception as e:  # any error becomes a line in the page (_problem)
            return [], None, _problem(e)
        return timeline(summary, _fps(path)), str(out), _video_message(summary, name, every)


def _fps(path: str | Path) -> float:
    with open_video(Path(path)) as capture:
        fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if fps and np.isfinite(fps) and fps > 0 else 30.0


def timeline(summary: MediaSummary, fps: float) -> list[dict]:
    """Per sampled frame with a face, one row per class: the frame's time (seconds), the class (expression) and its
    probability on the frame's largest face."""
    largest: dict[int, FacePrediction] = {}
    for face in summary.predictions:
        if face.frame not in largest or face.w * face.h > largest[face.frame].w * largest[face.frame].h:
            largest[face.frame] = face
    return [
        dict(zip(TIMELINE, (round(frame / fps, 3), c, p)))
        for frame, face in sorted(largest.items())
        for c, p in face.probabilities.items()
    ]


def _video_message(summary: MediaSummary, name: str, every: int) -> str:
    with_face = len({p.frame for p in summary.predictions})
    labels = [p.label for p in summary.predictions]
    common = max(set(labels), key=labels.count)
    return (
        f"{len(summary.predictions)} face(s) in {with_face} of {summary.frames} frames looked at in {name} "
        f"(every {every}th); most often **{common}**. The CSV holds every face."
    )


def build_app(demo: Demo, model_name: str):
    """The page: three tabs (webcam, photo, video) wired to ``demo``; returns the ``gradio.Blocks``."""
    import gradio as gr
    import pandas as pd

    classes = list(demo.classes)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(
            f"## Facial expressions, live\nModel **{model_name}**: {', '.join(classes)}. Everything runs on "
            "this computer; nothing is sent anywhere."
        )
        with gr.Tabs():
            with gr.Tab("Webcam", id="webcam"):
                with gr.Row():
                    with gr.Column():
                        camera = gr.Image(
                            sources=["webcam"], streaming=True, type="numpy", label="Webcam", elem_id="webcam-input"
                        )
                        webcam_explain = gr.Checkbox(
                            label="Show where the model looks (Grad-CAM)", value=False, elem_id="webcam-explain"
                        )
                    with gr.Column():
                        webcam_out = gr.Image(
                            label="Faces", format="jpeg", buttons=["fullscreen"], elem_id="webcam-output"
                        )
                        webcam_status = gr.Markdown("Start the webcam.", elem_id="webcam-status")
                        webcam_probs = gr.Label(
                            label="Largest face", num_top_classes=len(classes), elem_id="webcam-probabilities"
                        )
                rate = gr.State(Rate)  # one per viewer

                def stream(frame: np.ndarray | None, explain: bool, viewer_rate: Rate):
                    return *demo.webcam(frame, explain, viewer_rate), viewer_rate

                camera.stream(
                    stream,
                    [camera, webcam_explain, rate],
                    [webcam_out, webcam_probs, webcam_status, rate],
                    stream_every=0.04,
                    concurrency_limit=4,
                    show_progress="hidden",
                )
            with gr.Tab("Photo", id="photo"):
                with gr.Row():
                    with gr.Column():
                        photo_in = gr.File(label="Photo", type="filepath", elem_id="photo-input")
                        photo_explain = gr.Checkbox(
                            label="Show where the model looks (Grad-CAM)", value=False, elem_id="photo-explain"
                        )
                    with gr.Column():
                        photo_out = gr.Image(
                            label="Faces", format="png", buttons=["download", "fullscreen"], elem_id="photo-output"
                        )
                        photo_status = gr.Markdown("Upload a photo.", elem_id="photo-status")
                        photo_probs = gr.Label(
                            label="Largest face", num_top_classes=len(classes), elem_id="photo-probabilities"
                        )
                photo_table = gr.Dataframe(
                    headers=["face", "box x,y,w,h", "label", "score", *classes],
                    label="Every face",
                    interactive=False,
                    elem_id="photo-table",
                )
                photo_outputs = [photo_out, photo_probs, photo_table, photo_status]
                photo_in.change(demo.photo, [photo_in, photo_explain], photo_outputs)
                photo_explain.change(demo.photo, [photo_in, photo_explain], photo_outputs)
            with gr.Tab("Video", id="video"):
                with gr.Row():
                    with gr.Column():
                        video_in = gr.File(label="Video", type="filepath", elem_id="video-input")
                        every = gr.Slider(1, 30, value=demo.every, step=1, label="Look at every Nth frame")
                    with gr.Column():
                        video_status = gr.Markdown("Upload a short video.", elem_id="video-status")
                        video_csv = gr.File(label="Every face (CSV)", elem_id="video-csv")
                seconds, expression, probability = TIMELINE
                video_plot = gr.LinePlot(
                    None,
                    x=seconds,
                    y=probability,
                    color=expression,
                    y_lim=[0, 1],
                    color_map=dict(zip(classes, class_colours(classes))),
                    label="Expressions over time (largest face)",
                    elem_id="video-timeline",
                )

                def analyse(path: str | None, step: int):
                    rows, csv_file, message = demo.video(path, step)
                    return pd.DataFrame(rows, columns=list(TIMELINE)), csv_file, message

                video_in.change(analyse, [video_in, every], [video_plot, video_csv, video_status])
    return app
