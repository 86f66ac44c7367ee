"""Image folders, the layout generated pools and exports share: class folders (``angry/``, ``fear/``, ...),
optionally under split folders (``train/``, ``test/``), with an optional ``manifest.jsonl`` of provenance.

``generate`` and ``crop`` write it, ``balance``, ``fer-models judge`` and the reports read it, so it belongs to the
foundation layer. Files that cannot be used are skipped and listed in ``dataset.attrs["skipped"]``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from fer_synth.core.classes import FER2013, VOCABULARY, ClassList, UnknownClassError, class_list
from fer_synth.core.dataset import REAL, SYNTHETIC, Dataset, Split
from fer_synth.core.errors import DatasetError, MissingPathError, environment_reason
from fer_synth.core.images import IMAGE_SUFFIXES, load_image, printable
from fer_synth.core.manifest import read_records

logger = logging.getLogger(__name__)

IMAGE_SIZE = 48
SPLIT_FOLDERS = ("train", "val", "valid", "validation", "test")
RAW_FOLDER = "raw"
#: The file an export writes beside its split folders (the dataset's attributes); it marks the folder as one.
EXPORT_MARKER = "dataset.json"


def read_folder(
    path: str | os.PathLike, *, resize: bool = False, synthetic: bool = False, classes: ClassList | None = None
) -> Dataset:
    """Read Kaggle's ``train/<class>/*`` + ``test/<class>/*`` layout, or a folder of class folders.

    Class folder names may be aliases (``anger``, ``happiness``, ...); a folder naming no class of ``classes``
    is an error. ``classes`` defaults to the list our own folder export recorded (``dataset.json``), else
    FER2013's. An optional ``manifest.jsonl`` at the top level supplies per-file provenance (keys ``path`` or
    ``file`` relative to the top, ``source``, ``prompt``, ``seed``, ``model``).
    """
    root = Path(path)
    classes = classes or _exported_classes(root) or FER2013
    walk = FolderWalk()
    subdirs, _ = walk.listing(root)
    split_dirs = [p for p in subdirs if p.name.lower() in SPLIT_FOLDERS]
    layout = "split-folders" if split_dirs else "class-folders"
    subfolders = {p.name.lower(): walk.listing(p)[0] for p in split_dirs} if split_dirs else {"images": subdirs}
    class_dirs = {name: _class_folders(folders, classes) for name, folders in subfolders.items()}
    provenance = _read_manifest(root)
    skipped: list[tuple[str, str]] = []
    splits = {
        name: _read_class_folders(dirs, classes, root, resize, synthetic, provenance, skipped, walk)
        for name, dirs in class_dirs.items()
    }
    return Dataset(splits, attrs={"layout": layout, "skipped": [*walk.problems, *skipped]})


def _exported_classes(root: Path) -> ClassList | None:
    """The class list our folder export recorded in its ``dataset.json``, if ``root`` is one with a list."""
    try:
        names = json.loads((root / EXPORT_MARKER).read_text()).get("classes")
        return class_list(names) if names else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _class_folders(folders: list[Path], classes: ClassList) -> list[tuple[str, Path]]:
    """(class, folder) of each class folder among ``folders``; a folder naming no class of ``classes`` is an error."""
    found = []
    for class_dir in folders:
        if class_dir.name == RAW_FOLDER:  # full-size images that `generate --keep-raw` keeps beside the crops
            continue
        try:
            found.append((classes.resolve(class_dir.name), class_dir))
        except UnknownClassError:
            raise DatasetError(
                f"{printable(str(class_dir))}: unknown class folder {printable(class_dir.name)!r}; class folders must "
                f"be named {', '.join(classes)} (or a common alias)"
            ) from None
    return found


def _read_manifest(root: Path) -> dict[str, dict]:
    """Provenance per file (relative path) from the folder's manifest shards, if any.

    Our folder exports name one file per record (``path``); ``generate`` and ``crop`` name the files an
    attempt produced (``file`` for a raw image, ``files`` for its face crops).
    """
    by_file = {}
    for record in read_records(root):
        for key in (record.get("path"), record.get("file"), *record.get("files", [])):
            if key:
                by_file[str(Path(key))] = record
    return by_file


def _read_class_folders(
    class_dirs: list[tuple[str, Path]],
    classes: ClassList,
    root: Path,
    resize: bool,
    synthetic: bool,
    provenance: dict[str, dict],
    skipped: list,
    walk: FolderWalk,
) -> Split:
    images, labels, origins = [], [], []
    for class_name, class_dir in class_dirs:
        label = classes.index(class_name)
        inner, files = walk.listing(class_dir)
        skipped += [(str(folder.relative_to(root)), "a folder inside a class folder (not read)") for folder in inner]
        for file in files:
            rel = str(file.relative_to(root))
            image, reason = _load_gray(file, resize)
            if image is None:
                skipped.append((rel, reason))
                continue
            images.append(image)
            labels.append(label)
            origins.append(rel)
    if not images:
        return Split.empty(classes=classes)
    split = Split(np.stack(images), labels, origin=origins, classes=classes)
    records = [provenance.get(o, {}) for o in origins]
    split.source[:] = SYNTHETIC if synthetic else REAL
    for i, record in enumerate(records):
        if record.get("source") in ("real", "synthetic"):
            split.source[i] = SYNTHETIC if record["source"] == "synthetic" else REAL
        split.prompt[i] = record.get("prompt", "") or ""
        split.model[i] = record.get("model", "") or ""
        split.seed[i] = record.get("seed", -1) if record.get("seed") is not None else -1
    return split


def _load_gray(file: Path, resize: bool) -> tuple[np.ndarray | None, str]:
    if file.suffix.lower() not in IMAGE_SUFFIXES:
        return None, "not an image file"
    image, reason = load_image(file, gray=True)
    if image is None:
        return None, reason
    if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
        if not resize:
            return None, f"size {image.shape[1]}x{image.shape[0]}, expected 48x48"
        image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return image, ""


def read_pool_faces(
    path: str | os.PathLike,
    missing_hint: str = "give the folder `fer-synth generate` or `crop` wrote",
    classes: ClassList = VOCABULARY,
) -> Split:
    """Every face of a pool (``generate``'s or ``crop``'s class folders of ``classes``, by default any known emotion),
    resized to 48x48 and marked synthetic, ``origin`` its path relative to the pool; ``missing_hint`` ends the error
    for a missing folder."""
    path = Path(path)
    if not path.is_dir():
        raise MissingPathError(f"pool folder {path} not found; {missing_hint}")
    pool = read_folder(path, resize=True, synthetic=True, classes=classes)
    if message := describe_skipped(pool.attrs["skipped"]):
        logger.warning(f"pool {printable(str(path))}: {message}")
    faces = Split.concat(list(pool.splits.values()))
    if len(faces) == 0:
        raise DatasetError(f"{path}: the pool holds no usable faces")
    return faces


def describe_skipped(skipped: Iterable[tuple[str, str]], first: int = 3) -> str | None:
    """A one-line summary of skipped files: the count and the first few with their reasons."""
    skipped = list(skipped)
    if not skipped:
        return None
    shown = "; ".join(f"{printable(str(path))} ({reason})" for path, reason in skipped[:first])
    more = f"; and {len(skipped) - first} more" if len(skipped) > first else ""
    return f"skipped {len(skipped)} unusable row(s) or file(s): {shown}{more}"


def given_twice(repeated: list[tuple[str, str]], first: int = 3) -> str:
    """One line about the inputs :func:`fer_synth.core.outputs.once_each` left out: the count and the first few,
    each with the name it was first given under."""
    shown = "; ".join(f"{printable(name)} (= {printable(earlier)})" for name, earlier in repeated[:first])
    more = f"; and {len(repeated) - first} more" if len(repeated) > first else ""
    return f"{len(repeated)} input(s) given more than once: {shown}{more}"


class FolderWalk:
    """Lists folders for every folder reader (datasets, pools, crop's photos, predict's media): visible entries
    only (hidden ones are the tools' own), sorted; symbolic links to folders are followed, each folder read once
    (a link back up, a loop, is skipped); an unreadable folder or a broken link is skipped. Whatever is skipped
    is listed in :attr:`problems` as (path, why), for the caller's warning: never silent, never fatal."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self._seen: set[tuple[int, int]] = set()

    def listing(self, folder: Path) -> tuple[list[Path], list[Path]]:
        """(visible sub-folders, visible files) of ``folder``; ([], []) when it cannot be read, or was read."""
        try:
            info = os.stat(folder)
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as e:
            self.problems.append((str(folder), f"unreadable folder ({environment_reason(e) or e.strerror or e})"))
            return [], []
        if (info.st_dev, info.st_ino) in self._seen:
            self.problems.append((str(folder), "a folder already read (a symbolic link loop, or a second link)"))
            return [], []
        self._seen.add((info.st_dev, info.st_ino))
        folders, files = [], []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():
                    folders.append(Path(entry.path))
                elif entry.is_file():
                    files.append(Path(entry.path))
                elif entry.is_symlink():
                    self.problems.append((entry.path, "a broken symbolic link"))
            except OSError as e:
                self.problems.append((entry.path, f"unreadable ({environment_reason(e) or e.strerror or e})"))
        return folders, files

    def tree(self, folder: Path) -> Iterator[tuple[Path, list[Path]]]:
        """(folder, its files) for ``folder`` and every folder below it, depth first, in a stable order."""
        stack = [folder]
        while stack:
            current = stack.pop()
            folders, files = self.listing(current)
            yield current, files
            stack.extend(reversed(folders))
