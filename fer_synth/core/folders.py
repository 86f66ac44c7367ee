"""Image folders, the layout generated pools and exports share: class folders (``angry/``, ``fear/``, ...),
optionally under split folders (``train/``, ``test/``), with an optional ``manifest.jsonl`` of provenance.

``generate`` and ``crop`` write it, ``balance``, ``fer-models judge`` and the reports read it, so it belongs to the
foundation layer. Files that cannot be used are skipped and listed in ``dataset.attrs["skipped"]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from fer_synth.core.classes import FER2013, VOCABULARY, ClassList, UnknownClassError, class_list
from fer_synth.core.dataset import REAL, SYNTHETIC, Dataset, Split
from fer_synth.core.errors import DatasetError, MissingPathError
from fer_synth.core.images import IMAGE_SUFFIXES, read_gray
from fer_synth.core.manifest import read_records

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
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in subdirs if p.name.lower() in SPLIT_FOLDERS]
    layout = "split-folders" if split_dirs else "class-folders"
    folders = {p.name.lower(): p for p in split_dirs} if split_dirs else {"images": root}
    class_dirs = {name: _class_folders(folder, classes) for name, folder in folders.items()}
    provenance = _read_manifest(root)
    skipped: list[tuple[str, str]] = []
    splits = {
        name: _read_class_folders(dirs, classes, root, resize, synthetic, provenance, skipped)
        for name, dirs in class_dirs.items()
    }
    return Dataset(splits, attrs={"layout": layout, "skipped": skipped})


def _exported_classes(root: Path) -> ClassList | None:
    """The class list our folder export recorded in its ``dataset.json``, if ``root`` is one with a list."""
    try:
        names = json.loads((root / EXPORT_MARKER).read_text()).get("classes")
        return class_list(names) if names else None
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _class_folders(folder: Path, classes: ClassList) -> list[tuple[str, Path]]:
    """(class, folder) of each class folder in ``folder``; a folder naming no class of ``classes`` is an error."""
    found = []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if class_dir.name == RAW_FOLDER:  # full-size images that `generate --keep-raw` keeps beside the crops
            continue
        try:
            found.append((classes.resolve(class_dir.name), class_dir))
        except UnknownClassError:
            raise DatasetError(
                f"{class_dir}: unknown class folder {class_dir.name!r}; class folders must be named "
                f"{', '.join(classes)} (or a common alias)"
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
) -> Split:
    images, labels, origins = [], [], []
    for class_name, class_dir in class_dirs:
        label = classes.index(class_name)
        for file in sorted(class_dir.iterdir()):
            if not file.is_file() or file.name.startswith("."):
                continue
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
    image = read_gray(file)
    if image is None:
        return None, "unreadable image"
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
    faces = Split.concat(list(read_folder(path, resize=True, synthetic=True, classes=classes).splits.values()))
    if len(faces) == 0:
        raise DatasetError(f"{path}: the pool holds no usable faces")
    return faces
