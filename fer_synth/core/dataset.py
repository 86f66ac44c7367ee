"""The in-memory dataset type that readers produce, balancing transforms and the HDF5 store writes.

A :class:`Split` is a set of column arrays of equal length, one row per face: 48x48 uint8 grayscale images,
label indices into the split's class list (FER2013's seven unless told otherwise), optionally the label
distribution each row was annotated with (FER+'s votes), and per-row provenance (real or synthetic, where the
row came from, and for synthetic rows the prompt, seed and model that made it, or the real rows it was made
from). A :class:`Dataset` is an ordered mapping of split names to splits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fer_synth.core.classes import FER2013, ClassList
from fer_synth.core.errors import InvalidOptionError, SplitNotFoundError

REAL, SYNTHETIC = 0, 1
SOURCE_NAMES = ("real", "synthetic")


def _str_array(values: Sequence[str] | np.ndarray, n: int, default: str = "") -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=object)
    return np.asarray(list(values), dtype=object)


@dataclass
class Split:
    """One split of a face dataset, as column arrays of equal length."""

    images: np.ndarray  # uint8 [N, H, W]
    labels: np.ndarray  # int64 [N], indices into ``classes``
    source: np.ndarray = None  # uint8 [N]: REAL or SYNTHETIC
    origin: np.ndarray = None  # object [N]: CSV row number or file path; for an oversampled row its method (ros, smote)
    prompt: np.ndarray = None  # object [N]: generation prompt, "" for real rows
    seed: np.ndarray = None  # int64 [N]: generation seed, -1 for real rows
    model: np.ndarray = None  # object [N]: generator model, "" for real rows
    judge_score: np.ndarray = None  # float32 [N]: a judge's probability of the row's label, NaN when not judged
    parents: np.ndarray = None  # object [N]: JSON list of the origins an oversampled row was made from, "" otherwise
    soft_labels: np.ndarray | None = None  # float32 [N, C]: each row's label distribution (FER+ votes), or None
    classes: ClassList = FER2013  # what the label indices mean

    def __post_init__(self) -> None:
        n = len(self.images)
        self.images = np.ascontiguousarray(self.images, dtype=np.uint8)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.source = np.zeros(n, np.uint8) if self.source is None else np.asarray(self.source, np.uint8)
        self.origin = _str_array(self.origin, n)
        self.prompt = _str_array(self.prompt, n)
        self.model = _str_array(self.model, n)
        self.parents = _str_array(self.parents, n)
        self.seed = np.full(n, -1, np.int64) if self.seed is None else np.asarray(self.seed, np.int64)
        self.judge_score = (
            np.full(n, np.nan, np.float32) if self.judge_score is None else np.asarray(self.judge_score, np.float32)
        )
        for name in COLUMNS[1:]:
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name!r} has {len(getattr(self, name))} rows, images has {n}")
        if self.images.ndim != 3:
            raise ValueError(f"images must be [N, H, W] grayscale, got shape {self.images.shape}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"labels must be in 0..{len(self.classes) - 1} ({self.classes.name} classes)")
        if self.soft_labels is not None:
            self.soft_labels = np.asarray(self.soft_labels, np.float32)
            if self.soft_labels.shape != (n, len(self.classes)):
                raise ValueError(f"soft_labels must be [{n}, {len(self.classes)}], got {self.soft_labels.shape}")

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> np.ndarray:
        """Images per class, in the order of ``classes``."""
        return np.bincount(self.labels, minlength=len(self.classes))

    def take(self, index: np.ndarray | Sequence[int]) -> Split:
        """Rows at ``index`` (integer positions or a boolean mask), as a new split."""
        index = np.asarray(index)
        soft = None if self.soft_labels is None else self.soft_labels[index]
        return Split(**{name: getattr(self, name)[index] for name in COLUMNS}, soft_labels=soft, classes=self.classes)

    def targets(self) -> np.ndarray:
        """Probability targets [N, C]: the soft labels, or one-hot labels when the split has none."""
        if self.soft_labels is not None:
            return self.soft_labels
        return np.eye(len(self.classes), dtype=np.float32)[self.labels]

    def with_classes(self, classes: ClassList) -> tuple[Split, np.ndarray]:
        """The rows whose class is in ``classes``, relabelled by name to its indices; and the mask of rows kept.

        Soft labels do not survive a change of class list (their columns are the old list's)."""
        if classes == self.classes:
            return self, np.ones(len(self), bool)
        mapping = np.array(
            [classes.names.index(c) if c in classes.names else -1 for c in self.classes.names], dtype=np.int64
        )
        keep = mapping[self.labels] >= 0
        rows = {name: getattr(self, name)[keep] for name in COLUMNS}
        rows["labels"] = mapping[self.labels[keep]]
        return Split(**rows, classes=classes), keep

    @property
    def n_synthetic(self) -> int:
        return int((self.source == SYNTHETIC).sum())

    @classmethod
    def empty(cls, size: int = 48, classes: ClassList = FER2013) -> Split:
        return cls(np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64), classes=classes)

    @classmethod
    def concat(cls, splits: Sequence[Split]) -> Split:
        """One split of all rows; the splits must share a class list. When any has soft labels, rows of the
        others get their one-hot labels as soft labels."""
        if not splits:
            raise ValueError("nothing to concatenate")
        classes = splits[0].classes
        if any(s.classes != classes for s in splits):
            raise ValueError(f"cannot concatenate splits of different class lists: {[s.classes.name for s in splits]}")
        soft = np.concatenate([s.targets() for s in splits]) if any(s.soft_labels is not None for s in splits) else None
        return cls(
            **{name: np.concatenate([getattr(s, name) for s in splits]) for name in COLUMNS},
            soft_labels=soft,
            classes=classes,
        )


COLUMNS: tuple[str, ...] = ("images", "labels", "source", "origin", "prompt", "seed", "model", "judge_score", "parents")
#: The columns that hold text.
TEXT_COLUMNS: tuple[str, ...] = ("origin", "prompt", "model", "parents")


def shared_classes(splits: Mapping[str, Split]) -> ClassList:
    """The class list every split of ``splits`` has (FER2013's when there is no split); different lists are an error."""
    lists = {split.classes for split in splits.values()} or {FER2013}
    if len(lists) > 1:
        raise InvalidOptionError(f"all splits must share one class list, got {sorted(c.name for c in lists)}")
    return lists.pop()


@dataclass
class Dataset(Mapping[str, Split]):
    """Named splits in a fixed order, plus free-form attributes describing where they came from."""

    splits: dict[str, Split]
    attrs: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            raise SplitNotFoundError(f"no split {name!r}; this dataset has: {', '.join(self.splits)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)

    @property
    def num_images(self) -> int:
        return sum(len(s) for s in self.splits.values())

    @property
    def classes(self) -> ClassList:
        """The class list its splits share (FER2013's for a dataset without splits)."""
        return shared_classes(self.splits)
