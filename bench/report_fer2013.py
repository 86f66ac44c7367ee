"""Benchmark: `fer-synth report` on the full balanced FER2013 (57,683 faces) with a 20k+ face pool.

    python bench/report_fer2013.py [../shared/data/fer2013/fer2013.csv.gz] [--work bench/.cache/report]

There are no real generated faces on this machine, so the pool is made from REAL faces: for each class, FER2013
Training faces of that class are drawn in turn, jittered (seeded: mirror, a shift of up to 2 px, contrast and
brightness), upscaled to 96 px in a 192 px frame and run through the real face stage (`fer-synth crop`, MediaPipe),
until the kept faces cover the class's train deficit. So the pool has a real crop manifest with real rejections,
and the rejected inputs exist for the report's examples. The judge (issue 12) is not built yet: the bench writes a
`judgement.jsonl` of seeded random probabilities (judge "bench-random") so the judge section costs what it will.
Then `fer-synth balance` tops train up to 7,215 per class (50,505 train + 3,589 val + 3,589 test = 57,683 faces).

The inputs are built once and cached in --work (resumable). The report is timed as a user runs it (a child
process, wall time, best of --repeats), beside a baseline in the same run: `fer-synth stats` on the same file,
which reads it and counts duplicates. Target: under 30 s on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE, CSV, FACE_MODEL, ROOT
from fer_synth.core import store
from fer_synth.core.classes import CLASSES
from fer_synth.core.dataset import Split
from fer_synth.core.manifest import read_records
from fer_synth.data.balance import BalanceConfig, PackConfig, balance, pack
from fer_synth.data.stats import split_stats


def jittered_photo(face: np.ndarray, rng: np.random.Generator, side: int = 96, border: int = 48) -> np.ndarray:
    """A real 48x48 face, mirrored/shifted/re-lit at random, upscaled to ``side`` in a replicated border."""
    if rng.random() < 0.5:
        face = face[:, ::-1]
    dx, dy = rng.integers(-2, 3, 2)
    face = np.roll(face, (int(dy), int(dx)), axis=(0, 1))
    face = np.clip(face.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12), 0, 255).astype(np.uint8)
    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, border, border, border, border, cv2.BORDER_REPLICATE)


def kept_per_class(pool: Path) -> dict[str, int]:
    kept = dict.fromkeys(CLASSES, 0)
    for record in read_records(pool):
        kept[record["class"]] += len(record["files"])
    return kept


def build_pool(train: Split, deficits: dict[str, int], photos: Path, pool: Path, seed: int) -> None:
    """Write jittered photos and crop them until every class's kept faces cover its deficit."""
    from fer_synth.faces.crop import crop_folder
    from fer_synth.faces.stage import FaceStage, FaceStageConfig

    written = {c: len(list((photos / c).glob("*.png"))) if (photos / c).is_dir() else 0 for c in CLASSES}
    with FaceStage(FaceStageConfig("mediapipe", face_model=str(FACE_MODEL))) as stage:
        while True:
            kept = kept_per_class(pool) if pool.exists() else dict.fromkeys(CLASSES, 0)
            short = {c: deficits[c] - kept[c] for c in CLASSES if kept[c] < deficits[c]}
            if not short:
                return
            for name, missing in short.items():
                label = CLASSES.index(name)
                rows = np.flatnonzero(train.labels == label)
                (photos / name).mkdir(parents=True, exist_ok=True)
                extra = math.ceil(missing * 1.25) + 10
                for i in range(written[name], written[name] + extra):
                    rng = np.random.default_rng([seed, label, i])
                    face = train.images[rows[i % len(rows)]]
                    cv2.imwrite(str(photos / name / f"{name}_{i:06d}.png"), jittered_photo(face, rng))
                written[name] += extra
            print(f"  cropping (short: {short})", flush=True)
            crop_folder(photos, pool, stage)


def write_judgement(pool: Path, seed: int) -> None:
    """Seeded random judge output in issue 12's format (a stand-in: the judge is not built yet)."""
    rng = np.random.default_rng(seed)
    lines = []
    for record in read_records(pool):
        for file in record["files"]:
            intended = CLASSES.index(record["class"])
            alpha = np.full(len(CLASSES), 0.5)
            alpha[intended] = 3.0
            probs = rng.dirichlet(alpha)
            lines.append(
                json.dumps(
                    {
                        "file": file,
                        "class": record["class"],
                        "judged": CLASSES[int(probs.argmax())],
                        "p_intended": float(probs[intended]),
                        "probs": [round(float(p), 5) for p in probs],
                        "classes": list(CLASSES),
                        "judge": {"model": "bench-random", "fingerprint": "0000"},
                    }
                )
            )
    (pool / "judgement.jsonl").write_text("\n".join(lines) + "\n")


def timed(command: list[str], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path, nargs="?", default=CSV)
    parser.add_argument("--work", type=Path, default=CACHE / "report")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    packed, balanced = work / "fer2013.h5", work / "fer2013_balanced.h5"
    photos, pool, report = work / "photos", work / "pool", work / "report"

    if not packed.exists():
        print("packing FER2013 ...", flush=True)
        pack(PackConfig(args.csv, packed))
    train = store.read_split(packed, "train", provenance=False)
    deficits = split_stats(train).deficits
    if not (pool / "judgement.jsonl").exists():
        print(f"building the pool (train deficits {deficits}) ...", flush=True)
        build_pool(train, deficits, photos, pool, args.seed)
        write_judgement(pool, args.seed)
    if not balanced.exists():
        print("balancing ...", flush=True)
        balance(BalanceConfig(packed, balanced, pool=pool, seed=args.seed))
    attrs = store.read_attrs(balanced)
    sizes = {s: attrs["plan"]["counts"][s] for s in attrs["plan"]["counts"]}
    records = read_records(pool)
    faces = sum(len(r["files"]) for r in records)
    total = sum(len(store.read_split(balanced, s, provenance=False)) for s in attrs["splits"])
    print(
        f"input: {balanced.name} ({total:,} faces; train before top-up {sizes}), pool {faces:,} faces from "
        f"{len(records):,} crop attempts (real FER2013 faces, jittered), judgement.jsonl (random stand-in)"
    )

    cli = [sys.executable, "-m", "fer_synth.cli"]
    report_s = timed([*cli, "report", str(balanced), "--pool", str(pool), "--out", str(report)], args.repeats)
    stats_s = timed([*cli, "stats", str(balanced), "--json"], args.repeats)
    print(f"fer-synth report: {report_s:6.2f} s (best of {args.repeats}; target < 30 s) -> {report / 'index.html'}")
    print(f"fer-synth stats:  {stats_s:6.2f} s (baseline: reading the file and counting duplicates)")
    print(f"ratio report / stats: {report_s / stats_s:.2f}")


if __name__ == "__main__":
    main()
