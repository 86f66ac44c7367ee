"""Shared by the generation tests (test_pipeline.py, test_generate.py)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Golden comparisons need one thread: reductions split across threads may round differently."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def hub_offline(monkeypatch):
    """HF_HUB_OFFLINE=1 as a user sets it; huggingface_hub read it at import, so its constant is set too:
    with it, every HTTP request from huggingface_hub raises instead of reaching the network."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
