"""Benchmark: how fast the judge scores a pool the size of FER2013's deficit, and what its fast settings cost.

The pool: 21,796 real FER2013 train faces as PNGs in class folders, as many per class as FER2013's train split
lacks against happy (the deficit ``balance`` tops up), so reading and decoding files is part of the figure.

1. Classification alone, per setting (TTA x precision x threads), faces/s on the loaded faces; settings alternate
   in ``--rounds`` rounds and the median is reported. float32 ten-crop on one thread (the judge before issue 20) is
   timed on ``--slow-n`` faces and scaled, since at full size it takes minutes.
2. Labels of every setting against float32 with the same TTA and against float32 ten-crop, on the whole pool.
3. ``judge_pool`` end to end with the defaults (``fer-models judge POOL``): read, classify, write the judgement.

    python bench/judge_speed.py                      # the built-in model
    python bench/judge_speed.py --model runs/mine --rounds 3

Figures go to stdout and ``--out`` (JSON). CPU seconds are printed beside wall seconds (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CACHE, FER2013_H5, ROOT, packed
from fer_models.inference.classifier import load_classifier
from fer_models.inference.judge import JUDGE_AMP, JUDGE_TTA, judge_pool
from fer_synth.core import store
from fer_synth.core.classes import CLASSES
from fer_synth.core.images import save_png

SETTINGS = [  # (tta, amp, threads)
    ("ten-crop", "none", 1),
    ("ten-crop", "auto", 2),
    ("flip", "none", 2),
    ("flip", "auto", 1),
    ("flip", "auto", 2),
    ("none", "auto", 2),
]


def deficit_pool(folder: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write the pool (if absent) and return its faces and labels: per class, FER2013 train's deficit to happy."""
    train = store.read_split(packed(FER2013_H5), "train", provenance=False)
    counts = np.bincount(train.labels, minlength=len(CLASSES))
    rng = np.random.default_rng(seed)
    rows = np.concatenate(
        [
            rng.choice(
                np.flatnonzero(train.labels == c),
                counts.max() - counts[c],
                replace=counts.max() - counts[c] > counts[c],
            )
            for c in range(len(CLASSES))
        ]
    )
    if not folder.exists():
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for i, row in enumerate(rows):
            save_png(train.images[row], tmp / CLASSES[train.labels[row]] / f"{i:05d}.png")
        tmp.rename(folder)
    return train.images[rows], train.labels[rows]


def classify_speed(model: str, faces: np.ndarray, rounds: int, slow_n: int) -> tuple[list[dict], dict]:
    """Faces/s per setting (median of rounds; CPU seconds too) and each setting's labels on all faces."""
    tensor = torch.from_numpy(faces)
    times: dict[tuple, list[tuple[float, float]]] = {s: [] for s in SETTINGS}
    labels = {}
    for _ in range(rounds):
        for tta, amp, threads in SETTINGS:
            torch.set_num_threads(threads)
            classifier = load_classifier(model, tta=tta, amp=amp)
            n = slow_n if (tta, amp) == ("ten-crop", "none") else len(faces)
            classifier.predict_proba(tensor[:64])  # warm-up: oneDNN picks its kernels
            wall, cpu = time.perf_counter(), time.process_time()
            probs = classifier.predict_proba(tensor[:n])
            times[(tta, amp, threads)].append((n / (time.perf_counter() - wall), n / (time.process_time() - cpu)))
            if n == len(faces):
                labels[(tta, amp)] = probs.argmax(1)
    torch.set_num_threads(os.cpu_count() or 1)
    for tta in ("ten-crop", "flip"):  # float32 references on the whole pool, for the label agreement
        if (tta, "none") not in labels:
            labels[(tta, "none")] = load_classifier(model, tta=tta).predict_proba(tensor).argmax(1)
    rows = []
    for (tta, amp, threads), measured in times.items():
        per_s = statistics.median(m[0] for m in measured)
        rows.append(
            {
                "tta": tta,
                "amp": amp,
                "threads": threads,
                "faces_per_s": per_s,
                "faces_per_cpu_s": statistics.median(m[1] for m in measured),
                "seconds_for_pool": len(faces) / per_s,
                "timed_on": slow_n if (tta, amp) == ("ten-crop", "none") else len(faces),
            }
        )
    return rows, labels


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="builtin")
    p.add_argument("--work", type=Path, default=CACHE / "judge-speed")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--slow-n", type=int, default=3000, help="faces timed for float32 ten-crop on one thread")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "runs" / "judge_speed.json")
    args = p.parse_args()
    pool = args.work / "pool"
    faces, _ = deficit_pool(pool, args.seed)
    print(
        f"pool: {len(faces)} faces in {pool}; torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rows, labels = classify_speed(args.model, faces, args.rounds, args.slow_n)
    for row in rows:
        same_tta = (
            float(
                (
                    labels.get((row["tta"], row["amp"]), labels[(row["tta"], "none")]) == labels[(row["tta"], "none")]
                ).mean()
            )
            if row["tta"] in ("ten-crop", "flip")
            else None
        )
        row["labels_equal_float32_same_tta"] = same_tta
        if (row["tta"], row["amp"]) in labels:
            row["labels_equal_float32_ten_crop"] = float(
                (labels[(row["tta"], row["amp"])] == labels[("ten-crop", "none")]).mean()
            )
        print(
            f"{row['tta']:>8} {row['amp']:>4} x{row['threads']} thread(s): {row['faces_per_s']:7.0f} faces/s "
            f"({row['faces_per_cpu_s']:.0f}/CPU-s) -> {row['seconds_for_pool']:6.1f} s for the pool; labels = float32 "
            f"same TTA {row['labels_equal_float32_same_tta']}, = float32 ten-crop "
            f"{row.get('labels_equal_float32_ten_crop')}"
        )
    for judged in pool.glob("judgement*"):
        judged.unlink()
    torch.set_num_threads(os.cpu_count() or 1)
    wall, cpu = time.perf_counter(), time.process_time()
    judge_pool(pool, args.model)
    end_to_end = {
        "tta": JUDGE_TTA,
        "amp": JUDGE_AMP,
        "faces": len(faces),
        "wall_s": time.perf_counter() - wall,
        "cpu_s": time.process_time() - cpu,
    }
    print(
        f"judge_pool end to end with the defaults ({JUDGE_TTA}, amp {JUDGE_AMP}): {end_to_end['wall_s']:.1f} s wall, "
        f"{end_to_end['cpu_s']:.1f} CPU-s for {len(faces)} faces (reading the PNGs and writing the records included)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "command": " ".join(sys.argv),
                "faces": len(faces),
                "settings": rows,
                "end_to_end": end_to_end,
                "load_average": os.getloadavg(),
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
