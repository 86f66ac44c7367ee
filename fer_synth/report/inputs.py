"""What a dataset report reads: the dataset (any layout ``read_dataset`` takes), and optionally a pool folder with
its manifest, run settings and the judge's verdicts (``judgement.jsonl``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from fer_synth.core.classes import CLASSES, class_list
from fer_synth.core.dataset import REAL, SYNTHETIC, Dataset, Split
from fer_synth.core.errors import FerError
from fer_synth.core.folders import read_pool_faces
from fer_synth.core.judgement import JUDGEMENT_FILE, read_judgement
from fer_synth.core.manifest import SETTINGS_FILE, read_records
from fer_synth.data.readers import read_dataset
from fer_synth.data.stats import identical_groups

#: What the judge section reads of each record (``fer_synth.core.judgement`` describes the whole format).
JUDGEMENT_KEYS = ("file", "class", "judged", "p_intended")
#: Split names that are evaluation splits (ours, FER2013's and common folder names).
EVAL_SPLITS = ("val", "test", "PublicTest", "PrivateTest", "valid", "validation")
TRAIN_SPLITS = ("train", "Training", "images")


@dataclass
class Pool:
    """A folder of generated (or cropped) faces: the faces at 48x48, the attempts' records, the run settings."""

    path: Path
    faces: Split  # origin = the file's path relative to the pool, as the manifest and the judge name it
    records: list[dict] = field(default_factory=list)
    settings: dict | None = None
    judgement: list[dict] = field(default_factory=list)

    def row_of(self) -> dict[str, int]:
        return {origin: i for i, origin in enumerate(self.faces.origin)}


@dataclass
class ReportInputs:
    path: Path
    dataset: Dataset
    classes: list[str]
    pool: Pool | None = None

    @property
    def train_name(self) -> str:
        """The split whose faces the contact sheets show: the training split, else the first."""
        return next((name for name in TRAIN_SPLITS if name in self.dataset.splits), next(iter(self.dataset.splits)))

    @property
    def eval_names(self) -> list[str]:
        return [name for name in self.dataset.splits if name in EVAL_SPLITS]

    @cached_property
    def exact_groups(self) -> tuple[list[list[tuple[str, int]]], int]:
        """The dataset's groups of identical images and its number of distinct images (hashed once per report)."""
        return identical_groups(self.dataset.splits)

    def composition(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """Real and synthetic images per class of one split."""
        split = self.dataset[name]
        size = len(self.classes)
        return (
            np.bincount(split.labels[split.source == REAL], minlength=size),
            np.bincount(split.labels[split.source == SYNTHETIC], minlength=size),
        )


def checked_judgement(pool: Path) -> list[dict]:
    """The pool's judgement records ([] when it was never judged); a record lacking a key is a one-line error."""
    records = list(read_judgement(pool).values())
    for record in records:
        missing = [key for key in JUDGEMENT_KEYS if key not in record]
        if missing:
            raise FerError(
                f"{pool / JUDGEMENT_FILE}: the record of {record.get('file', '?')} lacks "
                f"{', '.join(missing)}; judge the pool again (`fer-models judge POOL --overwrite`)"
            )
    return records


def read_pool(path: str | os.PathLike, classes: Sequence[str]) -> Pool:
    path = Path(path)
    faces = read_pool_faces(path, classes=class_list(classes))
    settings_file = path / SETTINGS_FILE
    settings = json.loads(settings_file.read_text()) if settings_file.exists() else None
    return Pool(path, faces, read_records(path), settings, checked_judgement(path))


def load_inputs(dataset: str | os.PathLike, pool: str | os.PathLike | None = None) -> ReportInputs:
    """Read the dataset and the pool; the class names come from the data file when it names them."""
    data = read_dataset(dataset)
    classes = list(data.attrs.get("classes") or CLASSES)
    return ReportInputs(Path(dataset), data, classes, read_pool(pool, classes) if pool is not None else None)
