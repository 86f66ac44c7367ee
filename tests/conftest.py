"""Shared fixtures: tiny datasets built in the test, never downloaded; and the environment the tests depend on."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from fer_synth.core import store
from fer_synth.core.dataset import SYNTHETIC, Split

SHARED = Path(__file__).resolve().parents[2] / "shared"

#: Variables of the user's shell that change what the tools do: offline flags and caches (a test that needs one
#: sets it), the ranks of a launcher (they shard generate and start DDP), and the terminal's size and colours (the
#: tests read what the commands print).
USER_VARIABLES = (
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "DIFFUSERS_OFFLINE",
    "HF_HOME",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "XDG_CACHE_HOME",
    "FER_SYNTH_OFFLINE",
    "FER_SYNTH_FACE_MODEL",
    "FER_SYNTH_CACHE",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "COLUMNS",
    "LINES",
    "FORCE_COLOR",
    "NO_COLOR",
    "TTY_COMPATIBLE",
)
_CACHE: str | None = None


def pytest_configure(config) -> None:
    """Hermetic tests: whatever the user's environment holds, every test starts from the same one, before any
    library reads it. Downloads are off (a test of the download path serves a local file and says so), caches are
    empty temporary folders."""
    global _CACHE
    for name in USER_VARIABLES:
        os.environ.pop(name, None)
    _CACHE = tempfile.mkdtemp(prefix="fer-tests-cache-")
    os.environ.update(
        {
            "FER_SYNTH_OFFLINE": "1",
            "FER_SYNTH_CACHE": os.path.join(_CACHE, "fer-synth"),
            "HF_HOME": os.path.join(_CACHE, "huggingface"),
            "XDG_CACHE_HOME": _CACHE,
        }
    )
    if "huggingface_hub.constants" in sys.modules:  # it reads HF_HUB_OFFLINE once, when first imported
        sys.modules["huggingface_hub.constants"].HF_HUB_OFFLINE = False


def pytest_unconfigure(config) -> None:
    if _CACHE is not None:
        shutil.rmtree(_CACHE, ignore_errors=True)


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
