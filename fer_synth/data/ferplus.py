"""FER+ (Barsoum et al., ICMI 2016, arXiv:1608.01041): ten crowd votes per FER2013 image -> labels.

Microsoft's ``fer2013new.csv`` has one row per row of ``fer2013.csv``, in the same order (``Usage``, ``Image
name``, then the vote counts for neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
unknown, NF). The rows are matched by position, so the two files must align: the same number of rows and the
same ``Usage`` on every row, and the ``Image name`` column in its own order (rows moved within a split), which
:func:`apply_ferplus` checks before anything else.

The labels follow the authors' reference code (``FERPlusReader._process_data`` in microsoft/FERPlus):

* a class with a single vote is an outlier and loses it;
* ``majority``: the label is the class with MORE than half of the remaining votes. Rows with no such class
  (ties included), or whose majority is ``unknown`` or ``NF`` (not a face), are dropped;
* ``distribution``: every kept training row carries the distribution of its remaining votes over the eight
  emotions as probability targets (``Split.soft_labels``; ``fer-models train`` fits them with soft-label
  cross-entropy) and, as its label, the most voted emotion. A row is dropped when ``unknown`` or ``NF`` gets
  more votes than every emotion, or no emotion vote is left. Validation and test rows are labelled by majority
  in both modes, as in the reference code, so that test accuracies are comparable; they keep their
  distributions too.

The eight classes are :data:`fer_synth.core.classes.FERPLUS`: FER2013's seven in FER2013's order, then
contempt (FER+'s columns are mapped by name).
"""

from __future__ import annotations

import bisect
import csv
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np

from fer_synth.core.classes import FERPLUS, UnknownClassError
from fer_synth.core.dataset import Dataset, Split
from fer_synth.core.errors import FerError, InvalidOptionError, MissingPathError

LABEL_MODES: tuple[str, ...] = ("majority", "distribution")
NOT_EMOTIONS: tuple[str, ...] = ("unknown", "nf")
TRAINING_USAGE = "Training"
IMAGE_NAME = "image name"  # the column (lower-cased) that names each row's image


class FerPlusError(FerError):
    """A FER+ vote file that cannot be read, or that does not align with the FER2013 CSV."""


def check_label_mode(mode: str) -> None:
    if mode not in LABEL_MODES:
        raise InvalidOptionError(f"unknown label mode {mode!r}; choose one of {', '.join(LABEL_MODES)}")


def read_votes(path: str | os.PathLike) -> tuple[list[str], np.ndarray, list[str]]:
    """(Usage per row, votes [rows, 10] with columns in :data:`FERPLUS` order, then unknown, NF, Image name per
    row)."""
    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"{path}: no such FER+ file (Microsoft's fer2013new.csv)")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a CSV saved by Excel starts with a BOM
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader, [])]
            columns = _vote_columns(path, header)
            usages, votes, names = [], [], []
            for number, row in enumerate(reader):
                try:
                    votes.append([int(float(row[i])) for i in columns])
                    usages.append(row[header.index("usage")].strip())
                    names.append(row[header.index(IMAGE_NAME)].strip())
                except (IndexError, ValueError):
                    raise FerPlusError(
                        f"{path}: row {number} is malformed ({','.join(row)[:80]!r}); "
                        "expected Usage, Image name and ten vote counts"
                    ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise FerPlusError(f"{path}: cannot read as CSV ({e})") from None
    return usages, np.asarray(votes, dtype=np.int64).reshape(-1, len(FERPLUS) + len(NOT_EMOTIONS)), names


def _vote_columns(path: Path, header: list[str]) -> list[int]:
    """Positions of the eight emotions (in FERPLUS order), then unknown and NF, found by name."""
    if "usage" not in header or IMAGE_NAME not in header:
        raise FerPlusError(
            f"{path}: not a FER+ vote file (it needs the Usage and Image name columns; header {header[:4]}...)"
        )
    by_class: dict[str, int] = {}
    for i, name in enumerate(header):
        try:
            by_class.setdefault(FERPLUS.resolve(name), i)
        except UnknownClassError:
            continue
    missing = [c for c in FERPLUS if c not in by_class] + [c for c in NOT_EMOTIONS if c not in header]
    if missing:
        raise FerPlusError(
            f"{path}: not a FER+ vote file (no column for {', '.join(missing)}); expected "
            "neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF"
        )
    return [by_class[c] for c in FERPLUS] + [header.index(c) for c in NOT_EMOTIONS]


def label_votes(votes: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Labels from vote counts [N, 10] (:func:`read_votes`' columns).

    Returns (keep mask [N], labels [N] into FERPLUS, distributions [N, 8] float32, reason per dropped row
    ('' for kept rows)).
    """
    check_label_mode(mode)
    votes = np.where(votes > 1, votes, 0)  # a single vote is an outlier (the reference code's first step)
    total = votes.sum(1)
    emotions, other = votes[:, : len(FERPLUS)], votes[:, len(FERPLUS) :]
    top = votes.argmax(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        distribution = np.where(
            emotions.sum(1, keepdims=True) > 0, emotions / emotions.sum(1, keepdims=True), 0
        ).astype(np.float32)
    if mode == "majority":
        has_majority = votes.max(1) * 2 > total
        keep = has_majority & (top < len(FERPLUS))
        reasons = np.where(
            ~has_majority,
            "no majority",
            np.where(top == len(FERPLUS), "unknown", np.where(top > len(FERPLUS), "not a face", "")),
        )
    else:
        best_emotion = emotions.max(1)
        keep = (best_emotion > 0) & (best_emotion >= other.max(1))
        reasons = np.where(
            keep,
            "",
            np.where(
                best_emotion + other.max(1) == 0,
                "no votes left",
                np.where(other[:, 1] > other[:, 0], "not a face", "unknown"),
            ),
        )
    labels = np.where(keep, emotions.argmax(1), 0)
    return keep, labels, distribution, reasons.tolist()


def apply_ferplus(dataset: Dataset, votes_path: str | os.PathLike, mode: str = "majority") -> Dataset:
    """Relabel a FER2013 CSV's dataset (:func:`fer_synth.data.readers.read_fer2013_csv`) with FER+ votes.

    Rows dropped by the protocol are counted per split and reason in ``attrs["label_drops"]`` and summarised in
    ``attrs["notes"]``; rows the CSV reader skipped stay skipped.
    """
    check_label_mode(mode)
    if dataset.attrs.get("layout") != "fer2013-csv":
        raise FerPlusError(
            "--ferplus needs FER2013's CSV (fer2013.csv or .csv.gz): FER+ votes are matched to its rows by position"
        )
    usages, votes, names = read_votes(votes_path)
    _check_alignment(dataset, usages, names, votes_path)
    splits, drops = {}, {}
    for name, split in dataset.splits.items():
        rows = split.origin.astype(np.int64)
        split_mode = mode if name == TRAINING_USAGE else "majority"
        keep, labels, distribution, reasons = label_votes(votes[rows], split_mode)
        relabelled = Split(
            split.images,
            labels,
            split.source,
            split.origin,
            split.prompt,
            split.seed,
            split.model,
            soft_labels=distribution if mode == "distribution" else None,
            classes=FERPLUS,
        )
        splits[name] = relabelled.take(keep)
        drops[name] = dict(sorted(Counter(r for r in reasons if r).items()))
    dropped = sum(sum(d.values()) for d in drops.values())
    note = (
        f"labels: FER+ votes ({Path(votes_path).name}), {mode} mode (single votes dropped; "
        f"{'strict majority' if mode == 'majority' else 'vote distributions in train, strict majority in val/test'}"
        f"); dropped {dropped} rows: "
        + "; ".join(
            f"{name} " + ", ".join(f"{reason} {n}" for reason, n in d.items()) for name, d in drops.items() if d
        )
    )
    attrs = {
        **dataset.attrs,
        "label_source": f"ferplus-{mode}",
        "ferplus": str(votes_path),
        "label_drops": drops,
        "notes": [*dataset.attrs.get("notes", []), note],
    }
    return Dataset(splits, attrs=attrs)


def _check_alignment(dataset: Dataset, usages: list[str], names: list[str], votes_path: str | os.PathLike) -> None:
    """FER+ rows pair with FER2013 rows by position: same row count, the same Usage on every row, and the Image
    names in their file's order (:func:`_rows_out_of_order`), so rows moved within a split are caught too."""
    n_rows = dataset.attrs.get("rows")
    fix = (
        "FER+ votes are matched to fer2013.csv by row order: give the fer2013.csv they were made for "
        "(35,887 rows), unsorted and unfiltered, and the fer2013new.csv as Microsoft ships it"
    )
    if n_rows is not None and n_rows != len(usages):
        raise FerPlusError(
            f"{votes_path} has {len(usages)} rows and the FER2013 CSV {n_rows}: they do not align; {fix}"
        )
    for name, split in dataset.splits.items():
        rows = split.origin.astype(np.int64)
        if len(rows) and rows.max() >= len(usages):
            raise FerPlusError(f"the FER2013 CSV has row {rows.max()} and {votes_path} only {len(usages)} rows; {fix}")
        wrong = [int(r) for r in rows if usages[r] != name]
        if wrong:
            raise FerPlusError(
                f"row {wrong[0]} is {name} in the FER2013 CSV but {usages[wrong[0]]} in {votes_path} "
                f"({len(wrong)} such rows): the files do not align; {fix}"
            )
    moved = _rows_out_of_order(names)
    if moved:
        raise FerPlusError(
            f"{votes_path}: row {moved[0]} ({names[moved[0]]}, {usages[moved[0]]}) is out of the Image "
            f"name order ({len(moved)} such rows): rows were moved or sorted, so the votes no longer "
            f"pair with fer2013.csv's rows; {fix}"
        )


_NAME = re.compile(r"fer(\d+)\.png", re.IGNORECASE)


def _rows_out_of_order(names: list[str]) -> list[int]:
    """Rows whose Image name breaks its file's order. Microsoft numbers the images in row order (``fer0000000.png``,
    ...; a row without a usable face has no name), except that a row holding a duplicate of another image may
    repeat that image's name. So the names, read as numbers, must rise along the rows but for rows that repeat a
    name: every other row off the longest rising sequence was moved. A name that is not ``ferNNNNNNN.png`` is out
    of order too. On Microsoft's file 4 rows leave the sequence, each repeating a name."""
    numbered, broken = [], []
    for row, name in enumerate(names):
        if not name:
            continue
        match = _NAME.fullmatch(name)
        if match is None:
            broken.append(row)
        else:
            numbered.append((row, int(match.group(1))))
    # The longest strictly rising run of numbers (patience sorting, O(n log n)), then every row off it.
    tails: list[int] = []
    tail_at: list[int] = []
    previous = [-1] * len(numbered)
    for k, (_, number) in enumerate(numbered):
        i = bisect.bisect_left(tails, number)
        tails[i : i + 1] = [number]
        tail_at[i : i + 1] = [k]
        previous[k] = tail_at[i - 1] if i else -1
    rising, k = set(), tail_at[-1] if tail_at else -1
    while k != -1:
        rising.add(k)
        k = previous[k]
    counts = Counter(number for _, number in numbered)
    off = [row for k, (row, number) in enumerate(numbered) if k not in rising and counts[number] < 2]
    return sorted(broken + off)
