"""``fer-synth``: a thin click layer over fer_synth's Python API."""

from __future__ import annotations

from pathlib import Path

import click

from fer_synth import __version__
from fer_synth.console import FriendlyGroup


@click.group(cls=FriendlyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fer-synth")
def main() -> None:
    """Synthetic faces for FER2013: prompts, generation, face crops, balancing and the HDF5 file."""


def face_options(command):
    """The face stage's options, shared by ``crop`` and ``generate``; build the stage with :func:`face_stage_from`."""
    from fer_synth import faces
    from fer_synth.detectors import list_detectors

    options = [
        click.option("--backend", type=click.Choice(list_detectors()), default=faces.DEFAULT_BACKEND,
                     show_default=True, help="Face detector."),
        click.option("--face-model", type=click.Path(dir_okay=False), default=None,
                     help="MediaPipe BlazeFace .tflite (else $FER_SYNTH_FACE_MODEL, the cache, or one download)."),
        click.option("--policy", type=click.Choice(faces.POLICIES), default="largest", show_default=True,
                     help="Faces per image: the largest, reject several (single), or all."),
        click.option("--crop-size", type=int, default=faces.DEFAULT_SIZE, show_default=True,
                     help="Side of the square grayscale face crop (px)."),
        click.option("--margin", type=float, default=faces.DEFAULT_MARGIN, show_default=True,
                     help="Extra fraction of the FER2013 frame on each side."),
        click.option("--min-face", type=int, default=faces.DEFAULT_MIN_FACE, show_default=True,
                     help="Reject faces whose frame is smaller (px): face_too_small."),
        click.option("--min-score", type=float, default=None,
                     help="Reject faces scoring less: low_confidence [default: mediapipe 0.6, haar off]."),
        click.option("--blur-threshold", type=float, default=faces.DEFAULT_BLUR_THRESHOLD, show_default=True,
                     help="Reject crops whose variance of the Laplacian is lower: blurry."),
        click.option("--blank-std", type=float, default=faces.DEFAULT_BLANK_STD, show_default=True,
                     help="Reject near-constant images (grey-level std below this): nsfw_blank."),
        click.option("--detect-size", type=int, default=faces.DEFAULT_DETECT_SIZE, show_default=True,
                     help="Detect on a copy of at most this squared in pixels (0: full size)."),
        click.option("--haar-scale-factor", type=float, default=1.3, show_default=True),
        click.option("--haar-min-neighbors", type=int, default=7, show_default=True),
        click.option("--haar-min-size", type=int, default=50, show_default=True, help="Smallest Haar face (px)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def face_stage_from(options: dict):
    """A FaceStage from the :func:`face_options` values in ``options`` (the backend's own options only)."""
    from fer_synth.faces import FaceStage

    backend = options["backend"]
    if backend == "haar":
        detector = {"scale_factor": options["haar_scale_factor"], "min_neighbors": options["haar_min_neighbors"],
                    "min_size": options["haar_min_size"]}
    else:
        detector = {"face_model": options["face_model"]}
    return FaceStage(backend, policy=options["policy"], size=options["crop_size"], margin=options["margin"],
                     min_face=options["min_face"], min_score=options["min_score"],
                     blur_threshold=options["blur_threshold"], blank_std=options["blank_std"],
                     detect_size=options["detect_size"], **detector)


@main.command()
@click.argument("input_dir", metavar="INPUT", type=click.Path(file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: <class>/*.png faces, manifest.jsonl, crop_settings.json.")
@click.option("--keep-rejects", type=click.Path(file_okay=False), default=None,
              help="Copy rejected images to DIR/<reason>/<class>/ for a look.")
@face_options
def crop(input_dir: str, out_dir: str, keep_rejects: str | None, **options) -> None:
    """Detect, crop and filter the faces in a folder of images (per-class sub-folders or flat).

    Resumable: images already in OUT's manifest are skipped.
    """
    from rich.table import Table

    from fer_synth.console import console
    from fer_synth.crop import crop_folder, find_images, summary_rows

    sources = find_images(Path(input_dir))  # a bad INPUT fails before the detector loads
    with face_stage_from(options) as stage:
        summary = crop_folder(input_dir, out_dir, stage, keep_rejects=keep_rejects, progress=True, sources=sources)
    header, rows = summary_rows(summary)
    table = Table(*header, title=f"faces from {input_dir}")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"{summary.processed} images cropped now, {summary.resumed} from an earlier run; "
                  f"faces in {out_dir}, records in {out_dir}/manifest.jsonl")


if __name__ == "__main__":
    main()
