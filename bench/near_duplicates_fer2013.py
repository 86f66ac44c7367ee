"""Near duplicates in the real FER2013: counts per distance and contact sheets to judge precision by eye.

For each Hamming distance d in ``--distances``, a seeded sample of pairs of faces whose pHashes differ in d bits
and whose pixels differ (identical pairs are certain) is drawn on one contact sheet, pair k side by side with its
number. Count the pairs that are NOT the same photo; precision at d = 1 - that / pairs shown. Prints the counts
``fer-synth stats`` reports at ``--max-distance`` and the time they take.

    python bench/near_duplicates_fer2013.py                       # sheets in bench/.cache/near-duplicates/
    python bench/near_duplicates_fer2013.py --distances 0 1 2 3 4 5 6 --per-sheet 40
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import CACHE, CSV  # noqa: E402
from fer_synth.data.near_duplicates import DEFAULT_MAX_DISTANCE, close_pairs, near_duplicate_stats, phash  # noqa: E402
from fer_synth.data.readers import read_dataset  # noqa: E402

SCALE, COLUMNS = 2, 5


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray, str]]) -> np.ndarray:
    """Pairs side by side, scaled up, each with its caption above, COLUMNS pairs per row."""
    side = 48 * SCALE
    cell_w, cell_h = 2 * side + 12, side + 18
    rows = (len(pairs) + COLUMNS - 1) // COLUMNS
    sheet = np.full((max(rows, 1) * cell_h, COLUMNS * cell_w), 255, np.uint8)
    for k, (a, b, caption) in enumerate(pairs):
        y, x = (k // COLUMNS) * cell_h, (k % COLUMNS) * cell_w
        big = [cv2.resize(im, (side, side), interpolation=cv2.INTER_NEAREST) for im in (a, b)]
        sheet[y + 16 : y + 16 + side, x : x + side] = big[0]
        sheet[y + 16 : y + 16 + side, x + side + 2 : x + 2 * side + 2] = big[1]
        cv2.putText(sheet, caption, (x + 2, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, 0, 1, cv2.LINE_AA)
    return sheet


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--csv", type=Path, default=CSV)
    p.add_argument("--distances", type=int, nargs="+", default=[0, 2, 4, 5, 6, 8])
    p.add_argument("--per-sheet", type=int, default=40)
    p.add_argument("--max-distance", type=int, default=DEFAULT_MAX_DISTANCE)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=CACHE / "near-duplicates")
    args = p.parse_args()

    dataset = read_dataset(args.csv)
    started = time.perf_counter()
    stats = near_duplicate_stats(dataset.splits, args.max_distance)
    print(f"near duplicates at distance <= {args.max_distance}: {time.perf_counter() - started:.1f} s")
    for key, value in asdict(stats).items():
        if key != "examples":
            print(f"  {key}: {value}")

    images = np.concatenate([s.images for s in dataset.splits.values()])
    where = [f"{name[:5]}:{origin}" for name, s in dataset.splits.items() for origin in s.origin]
    i, j, dist = close_pairs(phash(images), None, max(args.distances))
    differ = np.array([not np.array_equal(images[a], images[b]) for a, b in zip(i, j)], dtype=bool)
    print(
        "pairs whose pixels differ, per distance:",
        {int(d): int(((dist == d) & differ).sum()) for d in range(max(args.distances) + 1)},
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for d in args.distances:
        candidates = np.flatnonzero((dist == d) & differ)
        chosen = np.sort(rng.choice(candidates, size=min(args.per_sheet, len(candidates)), replace=False))
        pairs = [(images[i[c]], images[j[c]], f"{k} {where[i[c]]} {where[j[c]]}") for k, c in enumerate(chosen)]
        path = args.out / f"distance-{d}.png"
        cv2.imwrite(str(path), contact_sheet(pairs))
        print(f"distance {d}: {len(candidates)} pairs with differing pixels, {len(chosen)} on {path}")


if __name__ == "__main__":
    main()
