"""The face stage's command-line options, shared by ``fer-synth crop``, ``fer-synth generate`` and
``fer-models predict``: one option per :class:`~fer_synth.faces.stage.FaceStageConfig` field, named as the field and
defaulting to it, so that ``FaceStageConfig(**options)`` is the stage they describe."""

from __future__ import annotations

from collections.abc import Callable

import click

from fer_synth.ui.console import with_options


def face_options(filters: str, policy: str = "largest") -> Callable:
    """The face stage's options, shared by ``crop`` and ``generate`` (and ``fer-models predict``), with the
    ``--filters`` preset ``filters`` and the ``--policy`` ``policy`` by default."""
    from fer_synth.faces import stage as faces
    from fer_synth.faces.detectors import list_detectors

    default = faces.FaceStageConfig()
    options = [
        click.option(
            "--filters",
            type=click.Choice(tuple(faces.FILTERS)),
            default=filters,
            show_default=True,
            help="Filter thresholds: photo (real photographs: keeps every face found) or generated "
            "(strict); --min-face, --min-score and --blur-threshold override single values.",
        ),
        click.option(
            "--backend",
            type=click.Choice(list_detectors()),
            default=default.backend,
            show_default=True,
            help="Face detector.",
        ),
        click.option(
            "--face-model",
            type=click.Path(dir_okay=False),
            default=default.face_model,
            help="MediaPipe BlazeFace .tflite (else $FER_SYNTH_FACE_MODEL, the cache, or one download).",
        ),
        click.option(
            "--policy",
            type=click.Choice(faces.POLICIES),
            default=policy,
            show_default=True,
            help="Faces per image: the largest, reject several (single), or all.",
        ),
        click.option(
            "--crop-size",
            "size",
            type=int,
            default=default.size,
            show_default=True,
            help="Side of the square grayscale face crop (px).",
        ),
        click.option(
            "--margin",
            type=float,
            default=default.margin,
            show_default=True,
            help="Extra fraction of the FER2013 frame on each side.",
        ),
        click.option(
            "--min-face",
            type=int,
            default=default.min_face,
            help=f"Reject faces whose frame is smaller (px): face_too_small [default: photo "
            f"{faces.FILTERS['photo'].min_face}, generated {faces.FILTERS['generated'].min_face}].",
        ),
        click.option(
            "--min-score",
            type=float,
            default=default.min_score,
            help="Reject faces scoring less: low_confidence [default: photo 0 (all MediaPipe reports); "
            "generated: mediapipe 0.6, haar off].",
        ),
        click.option(
            "--blur-threshold",
            type=float,
            default=default.blur_threshold,
            help="Reject crops whose variance of the Laplacian is lower: blurry "
            f"[default: photo {faces.FILTERS['photo'].blur_threshold:g} (off), generated "
            f"{faces.FILTERS['generated'].blur_threshold:g}].",
        ),
        click.option(
            "--blank-std",
            type=float,
            default=default.blank_std,
            show_default=True,
            help="Reject near-constant images (grey-level std below this): nsfw_blank.",
        ),
        click.option(
            "--detect-size",
            type=int,
            default=default.detect_size,
            show_default=True,
            help="Detect on a copy of at most this squared in pixels (0: full size).",
        ),
        click.option("--haar-scale-factor", type=float, default=default.haar_scale_factor, show_default=True),
        click.option("--haar-min-neighbors", type=int, default=default.haar_min_neighbors, show_default=True),
        click.option(
            "--haar-min-size",
            type=int,
            default=default.haar_min_size,
            show_default=True,
            help="Smallest Haar face (px).",
        ),
    ]
    return with_options(options)
