"""``fer-synth crop``: run the face stage over a folder of images and write FER-ready 48x48 faces.

The input is per-class (sub-folders named after classes or their aliases, e.g. raw generations), flat (images
directly in the folder: a user's own photos), or any other tree of folders (``photos/2019/``, ``photos/mixed/``):
images outside class folders are unlabelled and keep their relative layout. Output::

    OUT/<class>/<name>.png     kept faces; several faces: <name>_<k>.png
    OUT/unlabelled/[<sub-folders>/]<name>.png   faces of images outside class folders, in the input's layout
    OUT/manifest.jsonl         one record per input image: input, class, files, kept, reason, boxes, ...
    OUT/run.json               the input folder and the face stage's settings; resuming with others is an error

The manifest is :mod:`fer_synth.core.manifest`'s, as in ``generate``: every image is recorded once, so an interrupted
run resumes where it stopped without duplicates; faces are written (atomically) before their record, and an
image without a complete record is simply done again.
Unreadable files are recorded with reason ``unreadable`` and counted, never fatal.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from fer_synth.core.classes import VOCABULARY, UnknownClassError
from fer_synth.core.errors import FerError
from fer_synth.core.images import IMAGE_SUFFIXES, is_image_file, read_rgb, save_png
from fer_synth.core.manifest import MANIFEST, ManifestWriter, check_settings, read_records
from fer_synth.core.outputs import has_settings_of, output_lock, prepare_output_folder, refuse_inputs
from fer_synth.faces.stage import FaceStage
from fer_synth.ui.console import progress_bar

logger = logging.getLogger(__name__)

#: What a crop records in its run.json, so that a later run recognises the folder as its own.
COMMAND = "crop"
UNLABELLED = "unlabelled"
UNREADABLE = "unreadable"


@dataclass
class CropSummary:
    """Counts over every record in the manifest (this run's and earlier runs')."""

    images: Counter = field(default_factory=Counter)  # class -> images recorded
    kept: Counter = field(default_factory=Counter)  # class -> images with at least one face kept
    faces: Counter = field(default_factory=Counter)  # class -> face crops written
    rejected: Counter = field(default_factory=Counter)  # (class, reason) -> images
    resumed: int = 0  # records found from an earlier run
    processed: int = 0  # images handled by this run

    def add(self, record: dict) -> None:
        label = record["class"] or UNLABELLED
        self.images[label] += 1
        if record["kept"]:
            self.kept[label] += 1
            self.faces[label] += len(record["files"])
        else:
            self.rejected[label, record["reason"]] += 1


@dataclass(frozen=True)
class Source:
    """One input image: its path relative to the input folder, its class (None if unlabelled), its output stem
    and the folder its faces go to (relative to the output)."""

    relpath: str
    label: str | None
    stem: str
    folder: str


def find_images(input_dir: Path) -> list[Source]:
    """Images in ``input_dir``: in class-named sub-folders (labelled), and directly inside it or in any other
    sub-folder at any depth (unlabelled, output in the same relative layout under ``unlabelled/``); stable order."""
    if not input_dir.is_dir():
        raise FerError(f"input folder {input_dir} does not exist or is not a folder; give a folder of images")
    groups: list[tuple[str | None, str, list[Path]]] = [(None, UNLABELLED, _images_in(input_dir))]
    for sub in _subfolders(input_dir):
        try:
            label = VOCABULARY.resolve(sub.name)
        except UnknownClassError:
            for folder in [sub, *_tree(sub)]:
                groups.append((None, f"{UNLABELLED}/{folder.relative_to(input_dir).as_posix()}", _images_in(folder)))
            continue
        groups.append((label, label, _images_in(sub)))
    sources = []
    for label, out_folder, paths in groups:
        stems = Counter(p.stem for p in paths)
        for p in paths:
            # Two files with one stem (a.jpg, a.png) keep distinct outputs.
            stem = p.stem if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}"
            sources.append(Source(p.relative_to(input_dir).as_posix(), label, stem, out_folder))
    if not sources:
        raise FerError(f"no images in {input_dir} or its sub-folders (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return sources


def _subfolders(folder: Path) -> list[Path]:
    """Visible sub-folders, sorted; symbolic links to folders are not followed (they could loop)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink() and not p.name.startswith("."))


def _tree(folder: Path) -> list[Path]:
    """Every folder below ``folder``, depth first, in a stable order."""
    return [d for sub in _subfolders(folder) for d in (sub, *_tree(sub))]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image_file(p))


def crop_folder(
    input_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    stage: FaceStage,
    keep_rejects: str | os.PathLike | None = None,
    progress: bool = False,
    sources: list[Source] | None = None,
    overwrite: bool = False,
) -> CropSummary:
    """Run ``stage`` on every image under ``input_dir``; write kept faces and the manifest under ``out_dir``.

    Images already in the manifest are skipped. ``keep_rejects`` copies each rejected image to
    ``keep_rejects/<reason>/<class>/``. ``sources`` (from :func:`find_images`) saves listing the folder twice.
    ``out_dir`` must be new, empty or an earlier crop's output; ``overwrite`` empties it first. Neither output
    may overlap the input.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    sources = find_images(input_dir) if sources is None else sources
    if keep_rejects is not None:
        refuse_inputs(keep_rejects, [input_dir, out_dir], "--keep-rejects")
    prepare_output_folder(
        out_dir, command=COMMAND, is_own=has_settings_of(COMMAND), overwrite=overwrite, inputs=[input_dir]
    )
    with output_lock(out_dir):
        check_settings(out_dir, {"command": COMMAND, "input": str(input_dir.resolve()), **stage.settings})
        summary = CropSummary()
        done = set()
        for record in read_records(out_dir):
            done.add(record["input"])
            summary.add(record)
        summary.resumed = len(done)
        todo = [s for s in sources if s.relpath not in done]
        with (
            progress_bar(
                progress,
                TextColumn("cropping faces"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            ) as bar,
            ManifestWriter(out_dir / MANIFEST) as log,
        ):
            task = bar.add_task("crop", total=len(todo))
            for source, rgb in prefetch(lambda s: read_rgb(input_dir / s.relpath), todo):
                record = _crop_one(source, rgb, input_dir, out_dir, stage, keep_rejects)
                log.append([record])
                summary.add(record)
                summary.processed += 1
                bar.advance(task)
    return summary


def prefetch(load: Callable, items: Iterable, depth: int = 4) -> Iterator[tuple]:
    """Yield ``(item, load(item))`` in order while a background thread loads the next ``depth`` items.

    Decoding releases the GIL, so it overlaps with detection on the other core.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.submit(load, item)))
            if len(pending) > depth:
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()


def _crop_one(
    source: Source,
    rgb: np.ndarray | None,
    input_dir: Path,
    out_dir: Path,
    stage: FaceStage,
    keep_rejects: str | os.PathLike | None,
) -> dict:
    path = input_dir / source.relpath
    record = {"input": source.relpath, "class": source.label, "files": []}
    if rgb is None:
        _keep_reject(path, keep_rejects, UNREADABLE, source.folder)
        return {**record, "kept": False, "reason": UNREADABLE, "boxes": [], "scores": [], "backend": stage.backend}
    result = stage(rgb)
    folder = out_dir / source.folder
    if result.kept:
        folder.mkdir(parents=True, exist_ok=True)
        names = (
            [f"{source.stem}.png"]
            if len(result.faces) == 1
            else [f"{source.stem}_{k}.png" for k in range(len(result.faces))]
        )
        for name, face in zip(names, result.faces):
            save_png(face, folder / name)
        record["files"] = [(folder / name).relative_to(out_dir).as_posix() for name in names]
    else:
        _keep_reject(path, keep_rejects, result.reason, source.folder)
    return {**record, **result.to_record()}


def _keep_reject(path: Path, keep_rejects: str | os.PathLike | None, reason: str, folder: str) -> None:
    if keep_rejects is None:
        return
    target = Path(keep_rejects) / reason / folder
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target / path.name)
