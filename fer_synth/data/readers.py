"""Readers: FER2013's CSV, Kaggle-style split folders, per-class folders and our HDF5 file -> :class:`Dataset`.

(Folders are read by :mod:`fer_synth.core.folders`, the foundation layer, since ``fer_models`` reads pools too.)

Every reader returns splits in the source's own terms (``Training``/``PublicTest``/``PrivateTest`` for
FER2013, folder names otherwise); :mod:`fer_synth.data.splits` maps them to train/val/test. Files that cannot
be used (unreadable, not an image, wrong size) are skipped and listed in ``dataset.attrs["skipped"]`` as
``(path, reason)`` pairs; the command line warns about them.
"""

from __future__ import annotations

import csv
import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from fer_synth.core import store
from fer_synth.core.classes import CLASSES, ClassList
from fer_synth.core.dataset import Dataset, Split
from fer_synth.core.errors import DatasetError, MissingPathError
from fer_synth.core.folders import IMAGE_SIZE, describe_skipped, read_folder
from fer_synth.data.ferplus import apply_ferplus, check_label_mode

FER2013_USAGES = ("Training", "PublicTest", "PrivateTest")
#: Kaggle's file prefixes name the official split each image came from.
USAGE_PREFIXES = {f"{usage}_": usage for usage in FER2013_USAGES}
_CSV_CHUNK = 4096


def read_dataset(
    path: str | os.PathLike,
    *,
    resize: bool = False,
    synthetic: bool = False,
    ferplus: str | os.PathLike | None = None,
    label_mode: str = "majority",
    classes: ClassList | None = None,
) -> Dataset:
    """Read a dataset of any supported layout, chosen by what ``path`` is.

    * ``*.csv`` / ``*.csv.gz``: FER2013's ``emotion,pixels[,Usage]`` CSV; with ``ferplus`` (Microsoft's
      ``fer2013new.csv``) relabelled with the FER+ votes in ``label_mode`` (see :mod:`fer_synth.data.ferplus`)
    * ``*.h5``: a fer_synth HDF5 file
    * a folder with ``train/``, ``val/`` or ``test/`` subfolders of class folders: Kaggle's layout
    * a folder of class folders (``angry/``, ``fear/``, ...): one split named ``images``

    ``resize`` resizes images of another size to 48x48 instead of skipping them; ``synthetic`` marks
    every row of a folder as synthetic (a generated pool); ``classes`` is the class list a folder's class
    folders belong to (:func:`read_folder`).
    """
    path = Path(path)
    check_label_mode(label_mode)
    if not path.exists():
        raise MissingPathError(f"{path}: no such file or folder")
    if ferplus is not None and not (path.is_file() and path.name.lower().endswith((".csv", ".csv.gz"))):
        raise DatasetError(f"{path}: --ferplus relabels FER2013's CSV (fer2013.csv or .csv.gz) by row; give that file")
    name = path.name.lower()
    if path.is_file():
        if name.endswith((".csv", ".csv.gz")):
            dataset = read_fer2013_csv(path)
            if ferplus is not None:
                dataset = apply_ferplus(dataset, ferplus, label_mode)
        elif name.endswith((".h5", ".hdf5")):
            dataset = store.read(path)
        else:
            raise DatasetError(
                f"{path}: unknown dataset file type; give a FER2013 .csv/.csv.gz, an .h5 file or a folder"
            )
    else:
        dataset = read_folder(path, resize=resize, synthetic=synthetic, classes=classes)
    if dataset.num_images == 0:
        # Every row or file was left out: say which and why (images of another size, say), not just "empty".
        why = describe_skipped(dataset.attrs.get("skipped", []))
        raise DatasetError(f"{path}: the dataset is empty (no usable images{f'; {why}' if why else ''})")
    dataset.attrs.setdefault("path", str(path))
    return dataset


def read_fer2013_csv(path: str | os.PathLike) -> Dataset:
    """Read FER2013's canonical CSV (``emotion,pixels,Usage``; gzip when named ``.gz``), rows in file order.

    Without a ``Usage`` column every row goes to one split named ``Training``. ``origin`` is the row number
    (0-based, header not counted), so a row can always be traced back to the file.
    """
    path = Path(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    rows: dict[str, list[tuple[int, int, int]]] = {}  # usage -> (position in images, label, row number)
    pixel_chunks: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    n_good = 0
    n_rows = 0

    def flush(batch: list[tuple[int, int, str, str]]) -> None:
        nonlocal n_good
        images, good = _parse_pixels([pixels for *_, pixels in batch]), batch
        if images is None:  # a bad row in the batch: find it (and its fellows) row by row
            parsed = [(row, _parse_pixels([row[3]])) for row in batch]
            for (row_number, *_), image in parsed:
                if image is None:
                    skipped.append((f"row {row_number}", "pixels are not 2304 integers in 0..255"))
            good = [row for row, image in parsed if image is not None]
            images = np.concatenate([image for _, image in parsed if image is not None]) if good else None
        for row_number, label, usage, _ in good:
            rows.setdefault(usage, []).append((n_good, label, row_number))
            n_good += 1
        if images is not None:
            pixel_chunks.append(images)

    try:
        # UTF-8 whatever the locale; -sig: a CSV saved by Excel starts with a byte-order mark.
        with opener(path, "rt", newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            if "emotion" not in header or "pixels" not in header:
                shown = ", ".join(repr(h[:20] + ("..." if len(h) > 20 else "")) for h in header[:5])
                raise DatasetError(
                    f"{path}: not a FER2013 CSV: its first line must name the columns emotion and pixels "
                    f"(and Usage), got [{shown}{', ...' if len(header) > 5 else ''}]"
                )
            i_emotion, i_pixels = header.index("emotion"), header.index("pixels")
            i_usage = header.index("usage") if "usage" in header else None
            batch: list[tuple[int, int, str, str]] = []
            for row_number, row in enumerate(reader):
                n_rows = row_number + 1
                try:
                    label = int(row[i_emotion])
                    usage = row[i_usage] if i_usage is not None else "Training"
                    pixels = row[i_pixels]
                except (IndexError, ValueError):
                    skipped.append((f"row {row_number}", "malformed row"))
                    continue
                if not 0 <= label < len(CLASSES):
                    skipped.append((f"row {row_number}", f"emotion {label} outside 0..6"))
                    continue
                if pixels.count(" ") != IMAGE_SIZE * IMAGE_SIZE - 1:
                    skipped.append((f"row {row_number}", "pixels is not 48x48 values"))
                    continue
                batch.append((row_number, label, usage, pixels))
                if len(batch) == _CSV_CHUNK:
                    flush(batch)
                    batch = []
            if batch:
                flush(batch)
    except (OSError, EOFError, csv.Error, UnicodeDecodeError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot read as CSV ({e})") from None
    images = np.concatenate(pixel_chunks) if pixel_chunks else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
    order = [u for u in FER2013_USAGES if u in rows] + sorted(set(rows) - set(FER2013_USAGES))
    splits = {}
    for usage in order:
        positions, labels, row_numbers = (np.array(col) for col in zip(*rows[usage]))
        splits[usage] = Split(images[positions], labels, origin=[str(r) for r in row_numbers])
    return Dataset(splits, attrs={"layout": "fer2013-csv", "skipped": skipped, "rows": n_rows})


def _parse_pixels(batch: list[str]) -> np.ndarray | None:
    """[N, 48, 48] uint8 from N space-separated pixel strings, or None when any value is not an integer in 0..255."""
    # np.fromstring with a separator parses in C, ~10x faster than str.split for FER2013's 83M values
    try:
        values = np.fromstring(" ".join(batch), dtype=np.int32, sep=" ")
    except ValueError:
        return None
    if values.size != len(batch) * IMAGE_SIZE * IMAGE_SIZE or values.min() < 0 or values.max() > 255:
        return None
    return values.astype(np.uint8).reshape(len(batch), IMAGE_SIZE, IMAGE_SIZE)


def usage_of(origin: str) -> str | None:
    """The official FER2013 split named by a Kaggle file name (``Training_123.jpg`` -> ``Training``)."""
    name = Path(origin).name
    for prefix, usage in USAGE_PREFIXES.items():
        if name.startswith(prefix):
            return usage
    return None
