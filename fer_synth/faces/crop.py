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
import re
import shutil
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

from fer_synth.core.classes import VOCABULARY, UnknownClassError
from fer_synth.core.errors import FerError
from fer_synth.core.folders import FolderWalk, describe_skipped
from fer_synth.core.images import IMAGE_SUFFIXES, load_image, printable, save_png
from fer_synth.core.images import TOO_LARGE as IMAGE_TOO_LARGE
from fer_synth.core.manifest import MANIFEST, ManifestWriter, check_settings, read_records
from fer_synth.core.outputs import check_output_folder, has_settings_of, output_folder, refuse_collisions
from fer_synth.faces.stage import REASONS, TOO_LARGE, FaceStage
from fer_synth.ui.console import progress_bar

logger = logging.getLogger(__name__)

#: What a crop records in its run.json, so that a later run recognises the folder as its own.
COMMAND = "crop"
UNLABELLED = "unlabelled"
UNREADABLE = "unreadable"
#: A record's field naming its copy under --keep-rejects (relative to it).
REJECTS_KEY = "rejected_copy"


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
    sub-folder at any depth (unlabelled, output in the same relative layout under ``unlabelled/``); stable order.
    Linked folders are followed once; an unreadable folder, a link loop or a broken link is named in a warning."""
    if not input_dir.is_dir():
        raise FerError(
            f"input folder {printable(str(input_dir))} does not exist or is not a folder; give a folder of images"
        )
    walk = FolderWalk()
    subfolders, files = walk.listing(input_dir)
    groups: list[tuple[str | None, str, list[Path]]] = [(None, UNLABELLED, _images(files))]
    for sub in subfolders:
        try:
            label = VOCABULARY.resolve(sub.name)
        except UnknownClassError:
            for folder, inside in walk.tree(sub):
                groups.append((None, f"{UNLABELLED}/{folder.relative_to(input_dir).as_posix()}", _images(inside)))
            continue
        inner, inside = walk.listing(sub)
        walk.problems += [(str(folder), "a folder inside a class folder (not read)") for folder in inner]
        groups.append((label, label, _images(inside)))
    if message := describe_skipped(walk.problems):
        logger.warning(message)
    sources = []
    names: dict[str, OutputNames] = {}  # by output folder: folders of one class's aliases (Happy/, happiness/) share it
    for label, out_folder, paths in groups:
        stems = Counter(p.stem for p in paths)
        taken = names.setdefault(out_folder, OutputNames())
        for p in paths:
            # Two files with one stem (a.jpg, a.png) keep distinct outputs.
            stem = p.stem if stems[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.').lower()}"
            sources.append(Source(p.relative_to(input_dir).as_posix(), label, taken.claim_stem(stem), out_folder))
    if not sources:
        raise FerError(
            f"no images in {printable(str(input_dir))} or its sub-folders (looked for "
            f"{', '.join(sorted(IMAGE_SUFFIXES))})"
        )
    return sources


_NUMBERED = re.compile(r"^(.*)_[0-9]+$")


class OutputNames:
    """The stems of one output folder, kept apart: an image's faces are ``<stem>.png`` or, several,
    ``<stem>_<k>.png``, so no stem may equal another, nor another followed by ``_<digits>`` (``x.png`` with two
    faces writes ``x_1.png``, which is also the face of ``x_1.jpg``). A stem that would share a name gets
    ``_dup2``, ``_dup3``, ... (not digits alone: ``x_2`` is a face of ``x``); the first in the stable listing order
    keeps its own."""

    def __init__(self) -> None:
        self._stems: set[str] = set()
        self._bases: set[str] = set()  # X for every stem X_<digits>

    def free(self, stem: str) -> bool:
        match = _NUMBERED.match(stem)
        return stem not in self._stems and stem not in self._bases and not (match and match[1] in self._stems)

    def claim_stem(self, stem: str) -> str:
        candidate, n = stem, 1
        while not self.free(candidate):
            n += 1
            candidate = f"{stem}_dup{n}"
        self._stems.add(candidate)
        if match := _NUMBERED.match(candidate):
            self._bases.add(match[1])
        return candidate


def _images(files: list[Path]) -> list[Path]:
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


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
    ``out_dir`` must be new, empty or an earlier crop's output; ``overwrite`` replaces it (the new output is built
    beside it and swapped in at the end). ``keep_rejects`` must be new, empty or an earlier one. Neither output may
    overlap the input, the detector's model file or the other output.
    """
    input_dir, out_dir = Path(input_dir), Path(out_dir)
    sources = find_images(input_dir) if sources is None else sources
    check_outputs(input_dir, out_dir, keep_rejects, overwrite, stage.files)
    with output_folder(
        out_dir, command=COMMAND, is_own=has_settings_of(COMMAND), overwrite=overwrite, inputs=[input_dir, *stage.files]
    ) as work:
        check_settings(work, {"command": COMMAND, "input": str(input_dir.resolve()), **stage.settings})
        summary = CropSummary()
        done = set()
        for record in read_records(work):
            done.add(record["input"])
            summary.add(record)
        summary.resumed = len(done)
        # Face files and rejected copies the manifest's records own: an image added to the input since can never
        # write over one (a record is written after its files, so a killed image's files are its own to redo).
        claimed = {file for record in read_records(work) for file in record["files"]}
        claimed |= {f"{REJECTS_KEY}:{r[REJECTS_KEY]}" for r in read_records(work) if r.get(REJECTS_KEY)}
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
            ManifestWriter(work / MANIFEST) as log,
        ):
            task = bar.add_task("crop", total=len(todo))
            unread = []
            for source, (rgb, why) in prefetch(lambda s: load_image(input_dir / s.relpath), todo):
                record = _crop_one(source, rgb, why, input_dir, work, stage, keep_rejects, claimed)
                claimed.update(record["files"])
                if record.get(REJECTS_KEY):
                    claimed.add(f"{REJECTS_KEY}:{record[REJECTS_KEY]}")
                log.append([record])
                summary.add(record)
                summary.processed += 1
                if record["reason"] in (UNREADABLE, TOO_LARGE):
                    unread.append((source.relpath, why or "too large to search for faces in the memory left"))
                bar.advance(task)
    if message := describe_skipped(unread):
        logger.warning(f"{message} (recorded in {printable(str(out_dir))}/{MANIFEST})")
    return summary


def check_outputs(
    input_dir: Path,
    out_dir: str | os.PathLike,
    keep_rejects: str | os.PathLike | None = None,
    overwrite: bool = False,
    model_files: Iterable[str | os.PathLike] = (),
) -> None:
    """Before any work (the command line: before the detector loads): ``out_dir`` new, empty, an earlier crop's
    output or ``overwrite``; ``keep_rejects`` new, empty or an earlier one; neither over the input, the detector's
    ``model_files`` or the other output."""
    inputs = [input_dir, *model_files]
    check_output_folder(out_dir, command=COMMAND, is_own=has_settings_of(COMMAND), overwrite=overwrite, inputs=inputs)
    if keep_rejects is not None:
        refuse_collisions({"--out": out_dir, "--keep-rejects": keep_rejects})
        check_output_folder(
            keep_rejects, command=COMMAND, is_own=_holds_rejects, inputs=inputs, option="--keep-rejects"
        )


def _holds_rejects(folder: Path) -> bool:
    """An earlier ``--keep-rejects`` folder: only folders named by rejection reasons."""
    return all(p.is_dir() and p.name in (*REASONS, UNREADABLE, TOO_LARGE) for p in folder.iterdir())


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
    why: str,
    input_dir: Path,
    out_dir: Path,
    stage: FaceStage,
    keep_rejects: str | os.PathLike | None,
    claimed: AbstractSet[str] = frozenset(),
) -> dict:
    """One image's record; its faces are written first. ``why``: why ``rgb`` is None (:func:`load_image`).
    ``claimed``: face files (relative to ``out_dir``) and rejected copies (``rejected_copy:<name>``) that other
    images' records own, never written over."""
    path = input_dir / source.relpath
    record = {"input": source.relpath, "class": source.label, "files": []}
    try:
        result = stage(rgb) if rgb is not None else None
    except MemoryError:  # one huge image is one skipped image, not the end of the run
        result, why = None, IMAGE_TOO_LARGE
    if result is None:
        reason = TOO_LARGE if why == IMAGE_TOO_LARGE else UNREADABLE
        record = {**record, "kept": False, "reason": reason, "boxes": [], "scores": [], "backend": stage.backend}
        return _keep_reject(path, keep_rejects, source, record, claimed)
    folder = out_dir / source.folder
    if result.kept:
        folder.mkdir(parents=True, exist_ok=True)
        names = _face_names(source, len(result.faces), claimed)
        for name, face in zip(names, result.faces):
            save_png(face, folder / name)
        record["files"] = [(folder / name).relative_to(out_dir).as_posix() for name in names]
        return {**record, **result.to_record()}
    return _keep_reject(path, keep_rejects, source, {**record, **result.to_record()}, claimed)


def _face_names(source: Source, faces: int, claimed: AbstractSet[str]) -> list[str]:
    """The file names of ``source``'s faces in its output folder: ``<stem>.png``, or ``<stem>_<k>.png`` for several.
    Stems are distinct within a listing (:class:`OutputNames`); one whose name a record of an earlier run owns (an
    image added to the input since) takes ``<stem>_dup<n>``, the same on every rerun."""
    for n in range(1, len(claimed) + 2):
        stem = source.stem if n == 1 else f"{source.stem}_dup{n}"
        names = [f"{stem}.png"] if faces == 1 else [f"{stem}_{k}.png" for k in range(faces)]
        if not any(f"{source.folder}/{name}" in claimed for name in names):
            return names
    raise AssertionError("unreachable: one of len(claimed) + 1 stems is free")


def _keep_reject(
    path: Path, keep_rejects: str | os.PathLike | None, source: Source, record: dict, claimed: AbstractSet[str]
) -> dict:
    """Copy a rejected image to ``keep_rejects/<reason>/<folder>/``; ``record`` with the copy's name. Named by the
    source's stem, so images of one class under two folder names (Happy/x.png, happiness/x.png) are both kept, or
    ``<stem>_dup<n>`` where an earlier run's record owns that name."""
    if keep_rejects is None:
        return record
    folder = f"{record['reason']}/{source.folder}"
    for n in range(1, len(claimed) + 2):
        name = f"{folder}/{source.stem if n == 1 else f'{source.stem}_dup{n}'}{path.suffix}"
        if f"{REJECTS_KEY}:{name}" not in claimed:
            break
    target = Path(keep_rejects) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    return {**record, REJECTS_KEY: name}
