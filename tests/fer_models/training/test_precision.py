"""--amp on CPUs: bf16 autocast + channels_last where the CPU has native bf16, float32 otherwise; the CPU budget."""

from __future__ import annotations

import logging

import pytest
import torch

from fer_models.training import precision
from fer_models.training.loop import train
from fer_models.training.precision import autocast_dtype, to_layout, uses_channels_last
from tests.fer_models.helpers import tiny_config

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bf16_exactly_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert autocast_dtype("auto", CPU) == (torch.bfloat16 if native else None)
    assert autocast_dtype("none", CPU) is None
    assert uses_channels_last(autocast_dtype("auto", CPU), CPU) is native
    assert autocast_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert autocast_dtype("fp16", torch.device("cuda")) == torch.float16


def test_unsupported_requests_fall_back_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with caplog.at_level(logging.WARNING, logger="fer_models.training.precision"):
        assert autocast_dtype("fp16", CPU) is None
        assert autocast_dtype("bf16", CPU) == torch.bfloat16  # asked for: done, but emulated
    assert "float32" in caplog.text and "emulated" in caplog.text


def test_to_layout_makes_conv_weights_channels_last():
    conv = torch.nn.Conv2d(1, 4, 3)
    to_layout(conv, True)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("amp", ["auto", "bf16"])
def test_bf16_training_on_cpu_is_deterministic_and_saves_plain_weights(tiny_h5, tmp_path, amp):
    a = train(tiny_config(tiny_h5, tmp_path / "a", amp=amp))
    b = train(tiny_config(tiny_h5, tmp_path / "b", amp=amp))
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
    from safetensors.torch import load_file

    saved, weights = load_file(str(tmp_path / "a" / "last.safetensors")), a.model.state_dict()
    assert saved.keys() == weights.keys() and all(torch.equal(saved[k], v) for k, v in weights.items())
    assert all(t.dtype in (torch.float32, torch.int64) for t in saved.values())  # bf16 is autocast only
    assert a.history[-1]["cpu_seconds"] > 0


def test_cpu_time_budget_stops_cleanly(tiny_h5, tmp_path):
    result = train(tiny_config(tiny_h5, tmp_path / "run", epochs=50, time_budget=1e-6, budget_clock="cpu"))
    assert result.stopped_by == "time-budget" and result.history[0]["partial_epoch"]
