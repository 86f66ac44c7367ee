"""What the benchmarks share: where the project's data and models are, and the one pack of FER2013 they reuse.

Each benchmark is a script run by hand (``python bench/NAME.py``); it puts the repository root on ``sys.path`` and
imports this module, never another benchmark.
"""

from __future__ import annotations

import time
from pathlib import Path

from fer_synth.core import store
from fer_synth.core.classes import FER2013, FERPLUS
from fer_synth.data.balance import PackConfig, pack

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CSV = SHARED / "data" / "fer2013" / "fer2013.csv.gz"
FERPLUS_CSV = SHARED / "data" / "fer2013" / "ferplus-fer2013new.csv"  # Microsoft's FER+ votes, row-aligned
FACE_MODEL = SHARED / "models" / "face_detection_short_range.tflite"
CACHE = ROOT / "bench" / ".cache"
FER2013_H5 = CACHE / "fer2013.h5"  # FER2013 packed from CSV, made once by packed() and reused by every benchmark
FERPLUS_H5 = CACHE / "ferplus-distribution.h5"  # the same with FER+ vote distributions (the built-in model's data)


def packed(h5: Path = FER2013_H5, ferplus: Path | None = None, label_mode: str = "majority") -> Path:
    """``h5``, packed from the CSV (relabelled with FER+ votes when given) unless it exists; an existing file of
    another class list is refused rather than silently trained on."""
    if h5.exists():
        want = FERPLUS if ferplus else FER2013
        if store.classes_of(h5) != want:
            raise SystemExit(f"{h5} holds the {store.classes_of(h5).name} classes, not {want.name}; give another --h5")
    else:
        started = time.perf_counter()
        pack(PackConfig(CSV, h5, ferplus=ferplus, label_mode=label_mode))
        print(
            f"packed {CSV} -> {h5} in {time.perf_counter() - started:.1f} s (fer_synth.data.balance.pack"
            f"{f', FER+ {label_mode}' if ferplus else ''})"
        )
    return h5
