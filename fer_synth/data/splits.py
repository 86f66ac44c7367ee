"""From a source's own splits to the evaluation protocol's train / val / test.

FER2013's protocol: train on Training, select on PublicTest, report PrivateTest once. Sources without a
validation split get a seeded, stratified fraction of train; sources without any test split get one
carved the same way (and say so).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_synth.core.dataset import Dataset, Split
from fer_synth.core.errors import InvalidOptionError
from fer_synth.data.near_duplicates import near_mask, phash
from fer_synth.data.readers import FER2013_USAGES, usage_of
from fer_synth.data.stats import image_hashes

_VAL_NAMES = ("val", "valid", "validation")


@dataclass
class ProtocolSplits:
    train: Split
    val: Split
    test: Split
    notes: list[str] = field(default_factory=list)  # how each split was made, for the output's provenance
    unused: list[tuple[str, str]] = field(default_factory=list)  # (row or file, why) of rows no split took
    _held_out_phashes: np.ndarray | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Split]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def held_out_phashes(self) -> np.ndarray:
        """pHashes of the val then test images, what leakage is checked against; computed once."""
        if self._held_out_phashes is None:
            self._held_out_phashes = phash(np.concatenate([self.val.images, self.test.images]))
        return self._held_out_phashes


def stratified_holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split rows into (rest, held out) with ``fraction`` of each class held out, chosen by ``seed``."""
    if not 0 < fraction < 1:
        raise InvalidOptionError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    held = np.zeros(len(split), bool)
    for label in range(len(split.classes)):
        rows = np.flatnonzero(split.labels == label)
        rng = np.random.default_rng([seed, label])
        k = int(round(len(rows) * fraction))
        held[rng.permutation(rows)[:k]] = True
    return split.take(~held), split.take(held)


def _regroup_by_usage(dataset: Dataset) -> dict[str, Split] | None:
    """Kaggle folders whose file names all carry Training_/PublicTest_/PrivateTest_ prefixes -> the official splits."""
    everything = Split.concat(list(dataset.splits.values()))
    usages = np.array([usage_of(o) for o in everything.origin], dtype=object)
    if len(usages) == 0 or any(u is None for u in usages):
        return None
    return {u: everything.take(usages == u) for u in FER2013_USAGES if (usages == u).any()}


def protocol_splits(dataset: Dataset, val_fraction: float = 0.1, seed: int = 0) -> ProtocolSplits:
    """Map a dataset's splits to train/val/test (see the module docstring)."""
    splits = dict(dataset.splits)
    notes: list[str] = list(dataset.attrs.get("notes", []))  # what the reader did (e.g. FER+ labelling)
    if not set(FER2013_USAGES) & set(splits):
        regrouped = _regroup_by_usage(dataset)
        if regrouped is not None:
            splits = regrouped
            notes.append("official FER2013 splits recovered from Training_/PublicTest_/PrivateTest_ file names")
    if "Training" in splits:
        used = ("Training", "PublicTest", "PrivateTest")
        train = splits["Training"]
        val, test = splits.get("PublicTest"), splits.get("PrivateTest")
        if val is not None:
            notes.append("val = PublicTest")
        if test is not None:
            notes.append("test = PrivateTest")
    elif {"train", "val", "test"} <= set(splits):
        return ProtocolSplits(
            splits["train"],
            splits["val"],
            splits["test"],
            [*notes, "train/val/test as in the source"],
            _unused(splits, ("train", "val", "test")),
        )
    else:
        train_name = "train" if "train" in splits else "images"
        if train_name not in splits:
            raise InvalidOptionError(
                f"no training split: the dataset has only {', '.join(splits)}; give a folder with "
                "train/ (val/ and test/ optional) or a FER2013 CSV with Training rows"
            )
        train = splits[train_name]
        val_name = next((n for n in _VAL_NAMES if n in splits), None)
        val = splits[val_name] if val_name else None
        test = splits.get("test")
        used = (train_name, val_name, "test")
    if test is None:
        train, test = stratified_holdout(train, val_fraction, seed + 1)
        notes.append(
            f"test = a stratified {val_fraction:.0%} of the source's images (seed {seed}); the source has no test split"
        )
    if val is None:
        train, val = stratified_holdout(train, val_fraction, seed)
        notes.append(f"val = a stratified {val_fraction:.0%} of train (seed {seed})")
    return ProtocolSplits(train, val, test, notes, _unused(splits, used))


def _unused(splits: dict[str, Split], used: tuple[str | None, ...]) -> list[tuple[str, str]]:
    """Every row of a split the protocol does not map (e.g. a CSV row whose Usage is not one of the three)."""
    return [
        (
            f"row {origin}" if str(origin).isdigit() else str(origin),
            f"its split {name!r} is none of {', '.join(u for u in used if u)}",
        )
        for name, split in splits.items()
        if name not in used
        for origin in split.origin
    ]


def drop_leaked(protocol: ProtocolSplits, near_distance: int | None = None) -> tuple[ProtocolSplits, int]:
    """Remove train images identical to a val or test image (FER2013 itself has hundreds), or with
    ``near_distance`` nearly identical: pHashes at most that many bits apart (:mod:`fer_synth.data.near_duplicates`)."""
    if near_distance is None:
        held_hashes = set(image_hashes(np.concatenate([protocol.val.images, protocol.test.images])))
        keep = np.array([h not in held_hashes for h in image_hashes(protocol.train.images)], dtype=bool)
        what = "identical to"
    else:
        keep = ~near_mask(phash(protocol.train.images), protocol.held_out_phashes(), near_distance)
        what = f"nearly identical to (pHash distance <= {near_distance})"
    dropped = int((~keep).sum())
    notes = [*protocol.notes, f"dropped {dropped} train images {what} a val/test image"]
    return ProtocolSplits(
        protocol.train.take(keep), protocol.val, protocol.test, notes, protocol.unused, protocol._held_out_phashes
    ), dropped
