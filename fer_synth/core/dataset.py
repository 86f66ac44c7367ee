"""The in-memory dataset type that readers produce, balancing transforms and the HDF5 store writes.

A :class:`Split` is a set of column arrays of equal length, one row per face: 48x48 uint8 grayscale images,
FER2013 label indices, and per-row provenance (real or synthetic, where the row came from, and for
synthetic rows the prompt, seed and model that made it). A :class:`Dataset` is an ordered mapping of
split names to splits.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fer_synth.core.classes import NUM_CLASSES
from fer_synth.core.errors import SplitNotFoundError

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
    labels: np.ndarray  # int64 [N], FER2013 indices
    source: np.ndarray = None  # uint8 [N]: REAL or SYNTHETIC
    origin: np.ndarray = None  # object [N]: CSV row number or file path
    prompt: np.ndarray = None  # object [N]: generation prompt, "" for real rows
    seed: np.ndarray = None  # int64 [N]: generation seed, -1 for real rows
    model: np.ndarray = None  # object [N]: generator model, "" for real rows
    judge_score: np.ndarray = None  # float32 [N]: a judge's probability of the row's label, NaN when not judged

    def __post_init__(self) -> None:
        n = len(self.images)
        self.images = np.ascontiguousarray(self.images, dtype=np.uint8)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.source = np.zeros(n, np.uint8) if self.source is None else np.asarray(self.source, np.uint8)
        self.origin = _str_array(self.origin, n)
        self.prompt = _str_array(self.prompt, n)
        self.model = _str_array(self.model, n)
        self.seed = np.full(n, -1, np.int64) if self.seed is None else np.asarray(self.seed, np.int64)
        self.judge_score = (np.full(n, np.nan, np.float32) if self.judge_score is None
                            else np.asarray(self.judge_score, np.float32))
        for name in ("labels", "source", "origin", "prompt", "seed", "model", "judge_score"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name!r} has {len(getattr(self, name))} rows, images has {n}")
        if self.images.ndim != 3:
            raise ValueError(f"images must be [N, H, W] grayscale, got shape {self.images.shape}")
        if n and (self.labels.min() < 0 or self.labels.max() >= NUM_CLASSES):
            raise ValueError(f"labels must be in 0..{NUM_CLASSES - 1}")

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> np.ndarray:
        """Images per class, in FER2013 order."""
        return np.bincount(self.labels, minlength=NUM_CLASSES)

    def take(self, index: np.ndarray | Sequence[int]) -> Split:
        """Rows at ``index`` (integer positions or a boolean mask), as a new split."""
        index = np.asarray(index)
        return Split(**{name: getattr(self, name)[index] for name in COLUMNS})

    @property
    def n_synthetic(self) -> int:
        return int((self.source == SYNTHETIC).sum())

    @classmethod
    def empty(cls, size: int = 48) -> Split:
        return cls(np.zeros((0, size, size), np.uint8), np.zeros(0, np.int64))

    @classmethod
    def concat(cls, splits: Sequence[Split]) -> Split:
        if not splits:
            raise ValueError("nothing to concatenate")
        return cls(**{name: np.concatenate([getattr(s, name) for s in splits]) for name in COLUMNS})


COLUMNS: tuple[str, ...] = ("images", "labels", "source", "origin", "prompt", "seed", "model", "judge_score")


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

