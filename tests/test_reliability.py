"""Lose nothing: existing folders and inputs survive, two runs never share an output, a kill at any instant
then the same command again ends where an uninterrupted run ends, and nothing is dropped without a word.

Kills are simulated deterministically: a write is made to raise at the chosen instant (KeyboardInterrupt, as
Ctrl-C would), which leaves the files exactly as a kill -9 at that instant would.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

from fer_models import checkpoint as ckpt
from fer_models.training import loop as training
from fer_synth.cli import main as synth_cli
from fer_synth.core import atomic, store
from fer_synth.core.errors import FerError
from fer_synth.core.outputs import BusyError, OutputError, output_lock
from fer_synth.data import balance as balance_module
from fer_synth.data.balance import PackConfig, pack
from fer_synth.generation.config import GenerateConfig, PipelineOptions
from fer_synth.generation.pipeline import build_pipeline
from fer_synth.generation.run import generate
from tests.fer_models.helpers import separable_h5, tiny_config
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, write_csv

# --- folders that exist, inputs, pools ----------------------------------------------------------------------


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "fer.csv", fer_rows(DEFAULT_COUNTS))


def test_a_folder_holding_other_files_is_never_replaced_without_overwrite(tmp_path, csv):
    out = tmp_path / "v"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    result = CliRunner().invoke(synth_cli, ["pack", str(csv), "--out", str(out)])
    assert result.exit_code == 2 and "precious.txt" in result.output and "--overwrite" in result.output
    assert (out / "precious.txt").read_text() == "keep"
    result = CliRunner().invoke(synth_cli, ["pack", str(csv), "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert not (out / "precious.txt").exists() and (out / "dataset.json").exists()
    # An earlier export of the same command is replaced without asking.
    assert CliRunner().invoke(synth_cli, ["pack", str(csv), "--out", str(out)]).exit_code == 0


@pytest.mark.parametrize("where", ["input", "pool", "inside-input"])
def test_the_input_and_the_pool_are_never_written_over_even_with_overwrite(tmp_path, where):
    data = tmp_path / "data"
    pool = tmp_path / "pool"
    for folder in (data / "train" / "happy", data / "test" / "happy", pool / "happy"):
        folder.mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((48, 48), 40 * i, np.uint8)).save(folder / f"{i}.png")
    out = {"input": data, "pool": pool, "inside-input": data / "train"}[where]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = CliRunner().invoke(
        synth_cli, ["balance", str(data), "--pool", str(pool), "--out", str(out), "--overwrite", "--allow-shortfall"]
    )
    assert result.exit_code == 2 and "overlaps the input" in result.output, result.output
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_dead_writers_temp_files_are_removed_live_ones_kept(tmp_path, csv):
    out = tmp_path / "o.h5"
    dead = tmp_path / ".o.h5.999999999.abc.tmp"  # no such process
    live = tmp_path / f".o.h5.{os.getpid()}.abc.tmp"
    dead.write_bytes(b"x" * 1000)
    live.write_bytes(b"x")
    pack(PackConfig(csv, out))
    assert not dead.exists() and live.exists() and store.read_attrs(out)["format"]


def test_a_disk_too_small_is_refused_before_writing(tmp_path, csv, monkeypatch):
    monkeypatch.setattr(balance_module.shutil, "disk_usage", lambda path: type("U", (), {"free": 1000})())
    with pytest.raises(OutputError, match="MB are needed"):
        pack(PackConfig(csv, tmp_path / "o.h5"))
    assert not (tmp_path / "o.h5").exists()


def test_a_full_disk_during_a_write_is_one_line_and_leaves_nothing(tmp_path):
    import errno

    with pytest.raises(OutputError, match="disk is full"), atomic.atomic_file(tmp_path / "x.bin"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


# --- silent drops ------------------------------------------------------------------------------------------


def test_every_dropped_row_is_reported_and_strict_makes_it_an_error(tmp_path):
    rows = fer_rows(DEFAULT_COUNTS)
    extra = (
        "3," + " ".join(["7"] * 2303) + ",Training",  # 2,303 values
        "7," + " ".join(["7"] * 2304) + ",Training",  # label 7
        "2," + " ".join(["x"] * 2304) + ",Training",  # not numbers
        "1," + " ".join(["300"] * 2304) + ",Training",  # out of range
        "1," + " ".join(["9"] * 2304) + ",Other",
    )  # unknown Usage
    path = write_csv(tmp_path / "bad.csv", rows, extra_lines=extra)
    result = pack(PackConfig(path, tmp_path / "o.h5"))
    assert len(result.skipped) == 5
    assert store.read_attrs(tmp_path / "o.h5")["skipped_source_files"] == 5
    reasons = " ".join(reason for _, reason in result.skipped)
    for phrase in ("48x48", "outside 0..6", "integers in 0..255", "'Other'"):
        assert phrase in reasons
    cli = CliRunner().invoke(synth_cli, ["pack", str(path), "--out", str(tmp_path / "o2.h5")])
    assert cli.exit_code == 0 and "skipped 5 unusable" in cli.output
    strict = CliRunner().invoke(synth_cli, ["pack", str(path), "--out", str(tmp_path / "o3.h5"), "--strict"])
    assert strict.exit_code == 2 and "--strict" in strict.output and not (tmp_path / "o3.h5").exists()


def test_a_16_bit_png_is_read_as_a_photo_not_a_blank(tmp_path):
    from fer_synth.core.images import read_rgb

    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "g16.png")
    rgb = read_rgb(tmp_path / "g16.png")
    assert rgb.dtype == np.uint8 and rgb.min() == 0 and rgb.max() == 255 and rgb.std() > 50


# --- two runs on one output --------------------------------------------------------------------------------


def _hold_lock_then_die(folder: str, name: str, ready) -> None:
    with output_lock(folder, name):
        ready.set()
        os._exit(0)  # dies holding the lock: the OS releases it


def test_a_second_generate_on_the_same_output_is_refused_and_a_dead_holder_is_taken_over(tmp_path):
    out = tmp_path / "gen"
    config = GenerateConfig(
        emotions=["fear"], n=2, out=out, steps=1, height=32, width=32, pipeline=PipelineOptions(model="tiny-random")
    )
    pipe = build_pipeline(config.pipeline)
    with output_lock(out, ".manifest.jsonl.lock"), pytest.raises(BusyError, match=f"process {os.getpid()}"):
        generate(config, pipe=pipe, progress=False)
    assert not (out / "manifest.jsonl").exists()
    ready = multiprocessing.get_context("fork").Event()
    holder = multiprocessing.get_context("fork").Process(
        target=_hold_lock_then_die, args=(str(out), ".manifest.jsonl.lock", ready)
    )
    holder.start()
    holder.join()
    assert ready.is_set()
    assert generate(config, pipe=pipe, progress=False).images_made == 2
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 2


def test_a_second_training_on_the_same_run_folder_is_refused(tmp_path):
    data = separable_h5(tmp_path / "d.h5")
    with output_lock(tmp_path / "run"), pytest.raises(BusyError):
        training.train(tiny_config(data, tmp_path / "run", epochs=1))


# --- training runs: existing folders, kills, other data -----------------------------------------------------


def _state_tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last-state.safetensors"))


@pytest.mark.parametrize("cut", ["after-best", "after-state", "after-last"])
def test_a_training_run_killed_at_any_point_ends_where_an_uninterrupted_run_ends(tmp_path, monkeypatch, cut):
    data = separable_h5(tmp_path / "d.h5")
    settings = dict(epochs=3, ema=0.9, optimizer="sgd", augment={"hflip": True, "erasing": 0.5})
    whole = training.train(tiny_config(data, tmp_path / "whole", **settings))

    real_checkpoint, real_state = ckpt.save_checkpoint, ckpt.save_state

    def killing_checkpoint(stem, model, meta):
        real_checkpoint(stem, model, meta)
        # epoch 1 always improves, so it writes best; later epochs may not
        if meta["epoch"] == (1 if cut == "after-best" else 2) and Path(stem).name == {
            "after-best": "best",
            "after-last": "last",
        }.get(cut):
            raise KeyboardInterrupt

    def killing_state(path, state, meta):
        real_state(path, state, meta)
        if meta["epoch"] == 2 and cut == "after-state":
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_checkpoint", killing_checkpoint)
    monkeypatch.setattr(ckpt, "save_state", killing_state)
    with pytest.raises(KeyboardInterrupt):
        training.train(tiny_config(data, tmp_path / "cut", **settings))
    monkeypatch.setattr(ckpt, "save_checkpoint", real_checkpoint)
    monkeypatch.setattr(ckpt, "save_state", real_state)
    again = training.train(tiny_config(data, tmp_path / "cut", **settings))  # the same command, no --resume

    assert [r["epoch"] for r in again.history] == [1, 2, 3]
    for name in ("last.safetensors", "best.safetensors", "last-state.safetensors"):
        a, b = load_file(str(tmp_path / "whole" / name)), load_file(str(tmp_path / "cut" / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    for name in ("metrics.json", "best.json", "last.json"):
        a, b = json.loads((tmp_path / "whole" / name).read_text()), json.loads((tmp_path / "cut" / name).read_text())
        drop = ("created", "config", "data", "history")
        if isinstance(a, list):  # the history, less its timings
            clocks = ("seconds", "cpu_seconds", "images_per_s")
            a, b = ([{k: v for k, v in r.items() if k not in clocks} for r in m] for m in (a, b))
        else:
            a, b = ({k: v for k, v in m.items() if k not in drop} for m in (a, b))
        assert a == b, name
    assert whole.best_epoch == again.best_epoch


def test_a_finished_run_is_left_alone_and_other_settings_or_data_are_refused(tmp_path):
    data = separable_h5(tmp_path / "d.h5")
    run = tmp_path / "run"
    training.train(tiny_config(data, run, epochs=2))
    before = _state_tensors(run)
    again = training.train(tiny_config(data, run, epochs=2))
    assert len(again.history) == 2 and all(torch.equal(before[k], v) for k, v in _state_tensors(run).items())
    with pytest.raises(FerError, match="other settings.*lr.*--overwrite"):
        training.train(tiny_config(data, run, epochs=2, lr=0.05))
    changed = store.read(data)  # the same rows with one image changed: another fingerprint
    changed.splits["train"].images[0] = 255 - changed.splits["train"].images[0]
    other = store.write(tmp_path / "other.h5", changed.splits)
    with pytest.raises(FerError, match="other data"):
        training.train(tiny_config(other, run, epochs=3), resume=True)
    fresh = training.train(tiny_config(data, run, epochs=1, lr=0.05), overwrite=True)
    assert len(fresh.history) == 1


def test_a_training_folder_with_foreign_files_is_refused(tmp_path):
    data = separable_h5(tmp_path / "d.h5")
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt"):
        training.train(tiny_config(data, run, epochs=1))
    with pytest.raises(OutputError, match="overlaps the input"):
        training.train(tiny_config(data, tmp_path, epochs=1), overwrite=True)  # the data file is inside --out
    assert (run / "notes.txt").read_text() == "mine" and data.exists()


def test_a_second_crop_on_the_same_output_is_refused(tmp_path):
    from fer_synth.faces.crop import crop_folder
    from fer_synth.faces.stage import FaceStage, FaceStageConfig

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(photos / "a.png")
    with (
        FaceStage(FaceStageConfig("haar")) as stage,
        output_lock(tmp_path / "faces"),
        pytest.raises(BusyError, match="in use by process"),
    ):
        crop_folder(photos, tmp_path / "faces", stage)
    assert not (tmp_path / "faces" / "manifest.jsonl").exists()
