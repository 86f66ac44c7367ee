"""Near-duplicate faces: the same photo re-encoded, slightly shifted, brightened or re-contrasted.

Each face gets OpenCV's perceptual hash (``cv2.img_hash.PHash``, opencv-contrib: 32x32 resize, DCT, the 8x8
lowest frequencies thresholded at their median, 64 bits); two faces are near duplicates when their hashes
differ in at most ``max_distance`` bits. Identical pixels give identical hashes, so exact duplicates are near
duplicates too. The default distance was chosen by looking at FER2013's pairs on contact sheets
(``python bench/near_duplicates_fer2013.py``; docs/datasets.md gives the counts and the precision).

Comparisons are exact (every pair, 64-bit XOR and popcount in numpy blocks): FER2013's 35,887 faces take a few
seconds. Mirrored copies are not near duplicates under pHash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from fer_synth.core.dataset import Split

#: Hashes differing in at most this many of 64 bits are near duplicates (see the module docstring).
DEFAULT_MAX_DISTANCE = 4
_BLOCK = 2048  # rows compared at once: a 2048 x N block of uint64 distances


def phash(images: np.ndarray) -> np.ndarray:
    """64-bit perceptual hashes [N] (uint64) of uint8 grayscale images [N, H, W]."""
    hasher = cv2.img_hash.PHash_create()
    out = np.empty((len(images), 8), np.uint8)
    for i, image in enumerate(images):
        out[i] = hasher.compute(image)[0]
    return out.view(np.uint64).ravel() if len(images) else np.zeros(0, np.uint64)


def close_pairs(
    a: np.ndarray, b: np.ndarray | None = None, max_distance: int = DEFAULT_MAX_DISTANCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of hashes at most ``max_distance`` bits apart: (rows of ``a``, rows of ``b``, distances).

    With ``b`` None, pairs within ``a`` (each once, first row < second row)."""
    within = b is None
    b = a if within else b
    rows, cols, dists = [], [], []
    for start in range(0, len(a), _BLOCK):
        block = a[start : start + _BLOCK]
        first = start if within else 0  # within one set, only the columns right of the diagonal block
        distance = np.bitwise_count(block[:, None] ^ b[None, first:])
        if within:  # column c of this block is row start + c: keep c > r only
            distance[np.arange(distance.shape[1])[None, :] <= np.arange(len(block))[:, None]] = 255
        i, j = np.nonzero(distance <= max_distance)
        rows.append(i + start)
        cols.append(j + first)
        dists.append(distance[i, j])
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(dists).astype(np.uint8)


def near_mask(hashes: np.ndarray, reference: np.ndarray, max_distance: int = DEFAULT_MAX_DISTANCE) -> np.ndarray:
    """Boolean [len(hashes)]: True where a hash is within ``max_distance`` bits of any ``reference`` hash."""
    mask = np.zeros(len(hashes), bool)
    if len(hashes) and len(reference):
        rows, _, _ = close_pairs(hashes, reference, max_distance)
        mask[rows] = True
    return mask


def _components(n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Connected-component id per node of an undirected graph given by edges (union-find with path halving)."""
    parent = np.arange(n)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in zip(rows.tolist(), cols.tolist()):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(n)])


@dataclass
class NearDuplicateStats:
    max_distance: int
    pairs: int  # pairs of faces within max_distance
    pairs_not_identical: int  # of those, pairs whose pixels differ (what exact-duplicate search misses)
    groups: int  # groups of two or more faces linked by near-duplicate pairs
    extra_images: int  # faces beyond the first of each group
    within_split_groups: int  # groups inside one split
    cross_split_groups: int  # groups spanning two or more splits (leakage)
    cross_split_not_identical: int  # of those, groups holding two or more distinct images
    split_pairs: dict[str, int] = field(default_factory=dict)  # "a~b" -> groups linking splits a and b
    examples: list[list[str]] = field(default_factory=list)  # a few cross-split groups as "split:origin (distance)"


def near_duplicate_stats(
    splits: Mapping[str, Split], max_distance: int = DEFAULT_MAX_DISTANCE, max_examples: int = 3
) -> NearDuplicateStats:
    """Near-duplicate groups within and across ``splits`` (see the module docstring)."""
    names = list(splits)
    owner = np.concatenate([np.full(len(splits[s]), k) for k, s in enumerate(names)]) if names else np.zeros(0, int)
    row = np.concatenate([np.arange(len(splits[s])) for s in names]) if names else np.zeros(0, int)
    hashes = np.concatenate([phash(splits[s].images) for s in names]) if names else np.zeros(0, np.uint64)
    i, j, dist = close_pairs(hashes, None, max_distance)

    def image(node: int) -> np.ndarray:
        return splits[names[owner[node]]].images[row[node]]

    group = _components(len(hashes), i, j)
    members: dict[int, list[int]] = {}
    for node in np.unique(np.concatenate([i, j])).tolist():
        members.setdefault(int(group[node]), []).append(node)
    cross, cross_distinct, split_pairs, examples = 0, 0, {}, []
    for nodes in members.values():
        spans = sorted({int(owner[n]) for n in nodes})
        if len(spans) < 2:
            continue
        cross += 1
        cross_distinct += len({image(n).tobytes() for n in nodes}) > 1
        for a in range(len(spans)):
            for b in range(a + 1, len(spans)):
                key = f"{names[spans[a]]}~{names[spans[b]]}"
                split_pairs[key] = split_pairs.get(key, 0) + 1
        if len(examples) < max_examples:
            examples.append([f"{names[owner[n]]}:{splits[names[owner[n]]].origin[row[n]]}" for n in nodes])
    return NearDuplicateStats(
        max_distance=max_distance,
        pairs=len(i),
        pairs_not_identical=sum(not np.array_equal(image(a), image(b)) for a, b in zip(i.tolist(), j.tolist())),
        groups=len(members),
        extra_images=sum(len(nodes) - 1 for nodes in members.values()),
        within_split_groups=len(members) - cross,
        cross_split_groups=cross,
        cross_split_not_identical=cross_distinct,
        split_pairs=dict(sorted(split_pairs.items())),
        examples=examples,
    )
