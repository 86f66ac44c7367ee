"""Shared fixtures: tiny datasets built in the test, never downloaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fer_synth.core import store
from fer_synth.core.dataset import SYNTHETIC, Split

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread in every test: golden pixel comparisons need one (reductions split across threads
    may round differently), and tiny models on a shared 2-core machine run far faster on one thread than
    on two that spin-wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_split(n: int, seed: int = 0, synthetic: int = 0, size: int = 48) -> Split:
    """A random split of ``n`` faces; the last ``synthetic`` rows are marked synthetic with provenance."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 7
    rng.shuffle(labels)
    source = np.zeros(n, np.uint8)
    prompt = np.full(n, "", dtype=object)
    seeds = np.full(n, -1, np.int64)
    if synthetic:
        source[-synthetic:] = SYNTHETIC
        prompt[-synthetic:] = "a photo of a face"
        seeds[-synthetic:] = np.arange(synthetic)
    return Split(
        images=rng.integers(0, 256, (n, size, size), dtype=np.uint8),
        labels=labels,
        source=source,
        origin=[str(i) for i in range(n)],
        prompt=prompt,
        seed=seeds,
    )


@pytest.fixture
def tiny_h5(tmp_path: Path) -> Path:
    """A small HDF5 file in the contract's format: 70 train (14 synthetic), 21 val, 21 test rows."""
    return store.write(
        tmp_path / "tiny.h5",
        {"train": make_split(70, 0, synthetic=14), "val": make_split(21, 1), "test": make_split(21, 2)},
    )
