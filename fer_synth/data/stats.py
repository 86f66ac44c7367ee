"""Dataset statistics: class counts, deficits to equilibrium, identical and nearly identical images across splits
and labels."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from fer_synth.core.dataset import Split, shared_classes
from fer_synth.data.near_duplicates import DEFAULT_MAX_DISTANCE, near_duplicate_stats


@dataclass
class SplitStats:
    num_images: int
    counts: dict[str, int]
    deficits: dict[str, int]  # images each class needs to match the largest class
    needed: int  # total images for equilibrium
    largest: str
    smallest: str
    imbalance_ratio: float  # largest / smallest class count (inf when a class is empty)


@dataclass
class DuplicateStats:
    distinct_images: int
    duplicate_groups: int  # groups of two or more identical images
    extra_copies: int  # images beyond the first of each group
    cross_split_groups: int  # groups whose copies sit in more than one split (leakage)
    conflicting_label_groups: int  # groups whose copies carry different labels
    constant_images: int  # all pixels equal (e.g. FER2013's black images)
    examples: dict[str, list[list[str]]]  # a few groups of each kind, as "split:origin" strings


def split_stats(split: Split) -> SplitStats:
    counts, classes = split.counts(), split.classes
    largest = int(counts.max()) if len(split) else 0
    smallest = int(counts.min()) if len(split) else 0
    return SplitStats(
        num_images=len(split),
        counts=dict(zip(classes, counts.tolist())),
        deficits=dict(zip(classes, (largest - counts).tolist())),
        needed=int((largest - counts).sum()),
        largest=classes[int(counts.argmax())],
        smallest=classes[int(counts.argmin())],
        imbalance_ratio=float(largest / smallest) if smallest else float("inf"),
    )


def image_hashes(images: np.ndarray) -> list[bytes]:
    """A content hash per image: identical pixels, identical hash."""
    return [hashlib.blake2b(image.tobytes(), digest_size=16).digest() for image in images]


def identical_groups(splits: Mapping[str, Split]) -> tuple[list[list[tuple[str, int]]], int]:
    """Groups of two or more identical images as ``(split, row)`` pairs, in first-seen order, and the number of
    distinct images."""
    groups: dict[bytes, list[tuple[str, int]]] = defaultdict(list)
    for name, split in splits.items():
        for row, digest in enumerate(image_hashes(split.images)):
            groups[digest].append((name, row))
    return [members for members in groups.values() if len(members) > 1], len(groups)


def duplicate_stats(
    splits: Mapping[str, Split], max_examples: int = 3, groups: tuple[list[list[tuple[str, int]]], int] | None = None
) -> DuplicateStats:
    """Counts of identical images; ``groups`` reuses :func:`identical_groups`' answer for these splits."""
    duplicate, distinct = groups or identical_groups(splits)
    constant = 0
    for split in splits.values():
        if len(split):
            flat = split.images.reshape(len(split), -1)
            constant += int((flat.min(axis=1) == flat.max(axis=1)).sum())
    cross, conflict = [], []
    for members in duplicate:
        if len({name for name, _ in members}) > 1:
            cross.append(members)
        if len({int(splits[name].labels[row]) for name, row in members}) > 1:
            conflict.append(members)

    def show(kind: list) -> list[list[str]]:
        return [[f"{name}:{splits[name].origin[row]}" for name, row in members] for members in kind[:max_examples]]

    return DuplicateStats(
        distinct_images=distinct,
        duplicate_groups=len(duplicate),
        extra_copies=sum(len(m) - 1 for m in duplicate),
        cross_split_groups=len(cross),
        conflicting_label_groups=len(conflict),
        constant_images=constant,
        examples={"cross_split": show(cross), "conflicting_labels": show(conflict)},
    )


def dataset_stats(
    splits: Mapping[str, Split],
    groups: tuple[list[list[tuple[str, int]]], int] | None = None,
    near_distance: int | None = DEFAULT_MAX_DISTANCE,
) -> dict:
    """Per-split statistics and the duplicate reports, as plain data (what ``fer-synth stats --json`` prints).

    ``groups``: :func:`identical_groups` when already computed. ``near_distance``: the pHash distance of near
    duplicates (:mod:`fer_synth.data.near_duplicates`); None skips that report."""
    per_split = {name: asdict(split_stats(split)) for name, split in splits.items()}
    return {
        "classes": list(shared_classes(splits)) if splits else [],
        "splits": per_split,
        "needed_total": sum(s["needed"] for s in per_split.values()),
        "duplicates": asdict(duplicate_stats(splits, groups=groups)),
        "near_duplicates": None if near_distance is None else asdict(near_duplicate_stats(splits, near_distance)),
    }
