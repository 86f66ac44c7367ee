"""Fixtures shared by the fer_models tests."""

from __future__ import annotations

import pytest

from fer_models.training.loop import train
from tests.fer_models.helpers import separable_h5, tiny_config


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A run that learned the toy classes and one that barely trained; the toy test split has 14 synthetic rows."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    data = separable_h5(root / "toy.h5", synthetic_test=14)
    train(tiny_config(data, root / "good", epochs=8, lr=0.02, schedule="one-cycle"))
    train(tiny_config(data, root / "weak", epochs=1, lr=0.0001, seed=3, tta="flip"))
    torch.set_num_threads(threads)
    return data, root
