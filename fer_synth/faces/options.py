"""The face stage's command-line options, shared by ``fer-synth crop``, ``fer-synth generate`` and
``fer-models predict``, and the :class:`~fer_synth.faces.stage.FaceStage` they describe."""

from __future__ import annotations

from collections.abc import Callable

import click

from fer_synth.ui.console import with_options


def face_options(filters: str, policy: str = "largest") -> Callable:
    """The face stage's options, shared by ``crop`` and ``generate`` (and ``fer-models predict``), with the
    ``--filters`` preset ``filters`` and the ``--policy`` ``policy`` by default; build the stage with
    :func:`face_stage_from`."""
    from fer_synth.faces import stage as faces
    from fer_synth.faces.detectors import list_detectors

    options = [
        click.option("--filters", type=click.Choice(tuple(faces.FILTERS)), default=filters, show_default=True,
                     help="Filter thresholds: photo (real photographs: keeps every face found) or generated "
                          "(strict); --min-face, --min-score and --blur-threshold override single values."),
        click.option("--backend", type=click.Choice(list_detectors()), default=faces.DEFAULT_BACKEND,
                     show_default=True, help="Face detector."),
        click.option("--face-model", type=click.Path(dir_okay=False), default=None,
                     help="MediaPipe BlazeFace .tflite (else $FER_SYNTH_FACE_MODEL, the cache, or one download)."),
        click.option("--policy", type=click.Choice(faces.POLICIES), default=policy, show_default=True,
                     help="Faces per image: the largest, reject several (single), or all."),
        click.option("--crop-size", type=int, default=faces.DEFAULT_SIZE, show_default=True,
                     help="Side of the square grayscale face crop (px)."),
        click.option("--margin", type=float, default=faces.DEFAULT_MARGIN, show_default=True,
                     help="Extra fraction of the FER2013 frame on each side."),
        click.option("--min-face", type=int, default=None,
                     help=f"Reject faces whose frame is smaller (px): face_too_small [default: photo "
                          f"{faces.FILTERS['photo'].min_face}, generated {faces.FILTERS['generated'].min_face}]."),
        click.option("--min-score", type=float, default=None,
                     help="Reject faces scoring less: low_confidence [default: photo 0 (all MediaPipe reports); "
                          "generated: mediapipe 0.6, haar off]."),
        click.option("--blur-threshold", type=float, default=None,
                     help="Reject crops whose variance of the Laplacian is lower: blurry "
                          f"[default: photo {faces.FILTERS['photo'].blur_threshold:g} (off), generated "
                          f"{faces.FILTERS['generated'].blur_threshold:g}]."),
        click.option("--blank-std", type=float, default=faces.DEFAULT_BLANK_STD, show_default=True,
                     help="Reject near-constant images (grey-level std below this): nsfw_blank."),
        click.option("--detect-size", type=int, default=faces.DEFAULT_DETECT_SIZE, show_default=True,
                     help="Detect on a copy of at most this squared in pixels (0: full size)."),
        click.option("--haar-scale-factor", type=float, default=1.3, show_default=True),
        click.option("--haar-min-neighbors", type=int, default=7, show_default=True),
        click.option("--haar-min-size", type=int, default=50, show_default=True, help="Smallest Haar face (px)."),
    ]
    return with_options(options)


def face_stage_from(options: dict):
    """A FaceStage from the :func:`face_options` values in ``options`` (the backend's own options only)."""
    from fer_synth.faces.stage import FaceStage

    backend = options["backend"]
    if backend == "haar":
        detector = {"scale_factor": options["haar_scale_factor"], "min_neighbors": options["haar_min_neighbors"],
                    "min_size": options["haar_min_size"]}
    else:
        detector = {"face_model": options["face_model"]}
    return FaceStage(backend, filters=options["filters"], policy=options["policy"], size=options["crop_size"],
                     margin=options["margin"],
                     min_face=options["min_face"], min_score=options["min_score"],
                     blur_threshold=options["blur_threshold"], blank_std=options["blank_std"],
                     detect_size=options["detect_size"], **detector)
