"""Benchmark: pack the real FER2013 into the HDF5 contract, then read its train split back.

    python bench/pack_fer2013.py ../shared/data/fer2013/fer2013.csv.gz

Prints the packing time, the packing process's peak memory (max RSS, measured in a child process so the
figure is the packer's alone), the file size, and images/s reading the train split from the HDF5 file vs
decoding the same images from a folder of PNGs (the ratio is measured in one run, so machine noise
cancels). Targets on a 2-core machine: pack < 30 s, peak < 1.5 GB, HDF5 reading >= 20x PNG decoding.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from fer_synth.core import store

ROOT = Path(__file__).resolve().parents[1]


def pack_in_child(csv: Path, out: Path) -> tuple[float, float]:
    """Run `fer-synth pack` in a child process; return (seconds, peak RSS in MB)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "fer_synth.cli", "pack", str(csv), "--out", str(out)],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes on Linux
    return seconds, peak_kb / 1024


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path, help="fer2013.csv or fer2013.csv.gz")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        h5 = tmp / "fer2013.h5"
        seconds, peak_mb = pack_in_child(args.csv.resolve(), h5)
        size_mb = h5.stat().st_size / 2**20
        train = store.read_split(h5, "train", provenance=False)
        n = len(train)
        print(f"pack: {seconds:.1f} s, peak memory {peak_mb:.0f} MB, file {size_mb:.1f} MB")

        png_dir = tmp / "png"
        png_dir.mkdir()
        paths = [png_dir / f"{i:05d}.png" for i in range(n)]
        for path, image in zip(paths, train.images):
            cv2.imwrite(str(path), image)

        def read_h5():
            split = store.read_split(h5, "train", provenance=False)
            assert split.images.shape == (n, 48, 48)

        def read_png():
            images = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in paths])
            assert images.shape == (n, 48, 48)

        gz = store.write(tmp / "gzip.h5", {"train": train}, compression="gzip")

        def read_gz():
            store.read_split(gz, "train", provenance=False)

        t_h5, t_gz = best_of(read_h5, repeats=5), best_of(read_gz)
        t_png = best_of(read_png, repeats=1)
        print(
            f"read train ({n} images): HDF5 {n / t_h5:,.0f} images/s, PNG folder {n / t_png:,.0f} images/s, "
            f"ratio {t_png / t_h5:.1f}x"
        )
        print(
            f"  gzip-compressed HDF5 (--compression gzip): {n / t_gz:,.0f} images/s "
            f"({t_gz / t_h5:.1f}x slower), images {gz.stat().st_size / 2**20:.1f} MB vs "
            f"{train.images.nbytes / 2**20:.1f} MB raw"
        )


if __name__ == "__main__":
    main()
