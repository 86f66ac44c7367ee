"""Fixtures of the fer_synth tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def hub_offline(monkeypatch):
    """HF_HUB_OFFLINE=1 as a user sets it; huggingface_hub read it at import, so its constant is set too:
    with it, every HTTP request from huggingface_hub raises instead of reaching the network."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
