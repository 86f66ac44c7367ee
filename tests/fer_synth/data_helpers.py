"""Tiny datasets in each on-disk form FER2013 comes in, written by the tests themselves."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from fer_synth.core.classes import CLASSES

USAGES = ("Training", "PublicTest", "PrivateTest")


def fer_rows(per_class: dict[str, list[int]], seed: int = 0) -> list[tuple[int, np.ndarray, str]]:
    """(label, 48x48 image, usage) rows; ``per_class[usage][label]`` images of each class."""
    rng = np.random.default_rng(seed)
    rows = []
    for usage, counts in per_class.items():
        for label, n in enumerate(counts):
            for _ in range(n):
                rows.append((label, rng.integers(0, 256, (48, 48), dtype=np.uint8), usage))
    return rows


DEFAULT_COUNTS = {
    "Training": [6, 2, 5, 9, 4, 3, 7],
    "PublicTest": [2, 1, 2, 3, 2, 1, 2],
    "PrivateTest": [2, 1, 1, 3, 2, 2, 2],
}


def write_csv(path: Path, rows, gz: bool = False, extra_lines: tuple[str, ...] = ()) -> Path:
    lines = ["emotion,pixels,Usage"]
    lines += [f"{label},{' '.join(map(str, image.ravel()))},{usage}" for label, image, usage in rows]
    lines += list(extra_lines)
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def write_kaggle(root: Path, rows, prefixes: bool = True, ext: str = ".png") -> Path:
    """Kaggle's layout: train/<class>/Training_<i>.png, test/<class>/PublicTest_<i>.png / PrivateTest_<i>.png."""
    for i, (label, image, usage) in enumerate(rows):
        folder = root / ("train" if usage == "Training" else "test") / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{usage}_{i}{ext}" if prefixes else f"{i:05d}{ext}"
        cv2.imwrite(str(folder / name), image)
    return root


def write_pool(root: Path, per_class: list[int], size: int = 64, seed: int = 1, manifest: bool = True) -> Path:
    """A generated pool: <class>/<i>.png of any size, with a manifest carrying prompt and seed."""
    rng = np.random.default_rng(seed)
    records = []
    for label, n in enumerate(per_class):
        folder = root / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            rel = f"{CLASSES[label]}/{i:05d}.png"
            cv2.imwrite(str(root / rel), rng.integers(0, 256, (size, size), dtype=np.uint8))
            records.append({"path": rel, "prompt": f"a {CLASSES[label]} face", "seed": 1000 + i, "model": "tiny"})
    if manifest:
        (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def tree_digest(root: Path) -> str:
    """A hash of every file's path, size and bytes under ``root``: changes if anything is modified."""
    h = hashlib.sha256()
    for path in sorted(Path(root).rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()
