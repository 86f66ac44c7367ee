"""Helpers for the fer_models tests: a toy dataset whose classes a small CNN separates easily."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fer_synth.core import store
from fer_synth.core.dataset import SYNTHETIC, Split


def separable_split(per_class: int, seed: int, synthetic: int = 0) -> Split:
    """Class k: a uniform face of brightness 20 + 33k with mild noise; the last ``synthetic`` rows synthetic."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(7), per_class)
    rng.shuffle(labels)
    images = (20 + 33 * labels[:, None, None] + rng.normal(0, 4, (len(labels), 48, 48))).clip(0, 255).astype(np.uint8)
    source = np.zeros(len(labels), np.uint8)
    if synthetic:
        source[-synthetic:] = SYNTHETIC
    return Split(images=images, labels=labels, source=source)


def separable_h5(path: Path, synthetic_test: int = 0) -> Path:
    return store.write(
        path,
        {
            "train": separable_split(24, 0),
            "val": separable_split(6, 1),
            "test": separable_split(6, 2, synthetic=synthetic_test),
        },
    )


def tiny_config(data: Path, out: Path, **overrides):
    """A seconds-long run: the small CNN with narrow layers, no augmentation, no progress bar."""
    from fer_models.training.config import make_config

    settings = dict(
        data=str(data),
        out=str(out),
        model="small-cnn",
        model_options={"widths": [8, 16]},
        epochs=2,
        batch_size=16,
        lr=0.01,
        augment={},
        progress=False,
        device="cpu",
        tta="none",
    )
    settings.update(overrides)
    return make_config(**settings)
