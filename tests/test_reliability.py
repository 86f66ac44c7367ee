"""Lose nothing: existing folders and inputs survive, two runs never share an output, a kill at any instant
then the same command again ends where an uninterrupted run ends, and nothing is dropped without a word.

Kills are simulated deterministically: a write is made to raise at the chosen instant (KeyboardInterrupt, as
Ctrl-C would), which leaves the files exactly as a kill -9 at that instant would.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
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
from fer_synth.core.classes import CLASSES
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


def test_generate_resumes_under_any_spelling_of_a_local_model_and_refuses_another_model_of_the_same_name(
    tmp_path, monkeypatch
):
    from fer_synth.core.manifest import SettingsMismatchError
    from fer_synth.generation.tiny import tiny_random_pipeline

    tiny_random_pipeline().save_pretrained(tmp_path / "tiny-sd")
    (tmp_path / "link").symlink_to(tmp_path / "tiny-sd")
    monkeypatch.chdir(tmp_path)

    def run(model: str, out: Path = tmp_path / "gen") -> int:
        pipeline = PipelineOptions(model=model)
        config = GenerateConfig(emotions=["fear"], n=1, out=out, steps=1, height=32, width=32, pipeline=pipeline)
        return generate(config, progress=False).images_made

    assert run("tiny-sd") == 1
    # Once refused as "different settings": model 'tiny-sd' (this run: '/.../tiny-sd'). One model, three names.
    assert run(str(tmp_path / "tiny-sd")) == 0 and run("./link/") == 0 and run("tiny-sd/") == 0
    recorded = json.loads((tmp_path / "gen" / "run.json").read_text())["model"]
    assert recorded == str((tmp_path / "tiny-sd").resolve())  # where the model is, not what was typed
    # The same name typed in another folder is another model: once accepted, mixing two models in one run.
    (tmp_path / "elsewhere").mkdir()
    tiny_random_pipeline(seed=1).save_pretrained(tmp_path / "elsewhere" / "tiny-sd")
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(SettingsMismatchError, match="elsewhere/tiny-sd"):
        run("tiny-sd", tmp_path / "gen")


def test_prompts_prints_nothing_when_a_class_has_no_entry(tmp_path):
    """A class the prompt file lacks was found only when its turn came: --json had printed the earlier classes'
    lines, a partial output a script would read, before the error."""
    (tmp_path / "p.yaml").write_text(
        'template: "{context} {emotion}"\npools:\n  context: [a photo]\nclasses:\n  fear: {}\n'
    )
    result = CliRunner().invoke(
        synth_cli, ["prompts", "-e", "fear,sad", "--n", "2", "--json", "--prompts", str(tmp_path / "p.yaml")]
    )
    assert result.exit_code == 2 and "no entry for class 'sad'" in result.output
    assert '"class"' not in result.output, result.output


def test_a_second_training_on_the_same_run_folder_is_refused(tmp_path):
    data = separable_h5(tmp_path / "d.h5")
    with output_lock(tmp_path / "run"), pytest.raises(BusyError):
        training.train(tiny_config(data, tmp_path / "run", epochs=1))


# --- training runs: existing folders, kills, other data -----------------------------------------------------


def _state_tensors(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "last-state.safetensors"))


@pytest.mark.parametrize("cut", ["after-best", "after-state", "after-last", "before-calibration"])
def test_a_training_run_killed_at_any_point_ends_where_an_uninterrupted_run_ends(tmp_path, monkeypatch, cut):
    """Killed in epoch 2 (after best, after the state, after last) or after the last epoch, before the calibration
    of best that ends a run: the same command again ends with the files of an uninterrupted run."""
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

    def killing_calibration(path, split):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_checkpoint", killing_checkpoint)
    monkeypatch.setattr(ckpt, "save_state", killing_state)
    if cut == "before-calibration":
        monkeypatch.setattr(training, "calibrate_checkpoint", killing_calibration)
    with pytest.raises(KeyboardInterrupt):
        training.train(tiny_config(data, tmp_path / "cut", **settings))
    monkeypatch.undo()
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
    assert "calibration" in json.loads((tmp_path / "cut" / "best.json").read_text())


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


# === round two (issue 21) ===================================================================================
# Each class of failure is walked over every command it can reach; helpers build tiny inputs in the test.


def _faces(folder: Path, per_class: dict[str, int], seed: int = 0, size: int = 48) -> Path:
    """Random faces as PNG files in class folders."""
    rng = np.random.default_rng(seed)
    for name, n in per_class.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(folder / name / f"{i}.png")
    return folder


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file, link and folder under ``root`` (hidden ones too, lock files aside): a file's size, modification
    time and bytes; a folder's existence."""
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns, p.read_bytes())
        if p.is_file() and not p.is_symlink()
        else (0, 0, os.readlink(p).encode() if p.is_symlink() else b"")
        for p in sorted(root.rglob("*"))
        if not p.name.endswith(".lock")
    }


def _temps_beside(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.*.tmp"))


def _one_error_line(result) -> str:
    assert result.exit_code == 2, (result.output, result.exc_info)
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    return errors[0]


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A data file and a finished two-epoch training run on it."""
    data = separable_h5(tmp_path / "d.h5")
    training.train(tiny_config(data, tmp_path / "run", epochs=2))
    return tmp_path


# --- class 1: everything a command reads is an input, whatever name it is given ---------------------------------


@pytest.mark.parametrize(
    "how", ["same", "symbolic link", "hard link", "dot-dot", "linked parent", "holding it", "inside it"]
)
def test_the_resolver_refuses_an_input_under_any_name(tmp_path, how):
    from fer_synth.core.outputs import refuse_inputs

    folder = tmp_path / "inputs"
    folder.mkdir()
    data = folder / "data.h5"
    data.write_text("data")
    (tmp_path / "link.h5").symlink_to(data)
    os.link(data, tmp_path / "hard.h5")
    (tmp_path / "linked").symlink_to(folder)
    out, given = {
        "same": (data, data),
        "symbolic link": (tmp_path / "link.h5", data),
        "hard link": (tmp_path / "hard.h5", data),
        "dot-dot": (folder / ".." / "inputs" / "data.h5", data),
        "linked parent": (tmp_path / "linked" / "data.h5", data),
        "holding it": (folder, data),
        "inside it": (folder / "new.h5", folder),
    }[how]
    with pytest.raises(OutputError, match="overlaps the input"):
        refuse_inputs(out, [given])
    if how == "inside it":  # beside an input (evaluate's reports beside a checkpoint) is allowed, over it never
        refuse_inputs(out, [given], beside=True)
        with pytest.raises(OutputError, match="overlaps the input"):
            refuse_inputs(data, [data], beside=True)


# --- class 2: replacing is atomic --------------------------------------------------------------------------------


def _enospc(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def _after(count: int, action):
    """A stand-in that lets ``count - 1`` calls through to ``real`` and runs ``action`` on the next."""

    def wrap(real):
        calls = [0]

        def stand_in(*args, **kwargs):
            calls[0] += 1
            if calls[0] == count:
                return action(*args, **kwargs)
            return real(*args, **kwargs)

        return stand_in

    return wrap


REPLACE_FAILS = {
    # command: (arguments with OLD for the output, what to break after the output is claimed, or None)
    "pack": (["pack", "{w}/only_train_free", "--out", "{old}", "--overwrite"], None),
    "balance": (["balance", "{w}/fer.csv", "--pool", "{w}/tiny_pool", "--out", "{old}", "--overwrite"], None),
    "export": (["export", "{w}/d.h5", "{old}", "--overwrite"], ("fer_synth.data.export", "png_bytes", 5)),
    "report": (["report", "{w}/fer.csv", "--pool", "{w}/no_pool", "--out", "{old}", "--overwrite"], None),
    "runs report": (["report", "{w}/run", "--out", "{old}", "--overwrite"], ("fer_synth.ui.html", "write_page", 1)),
    "generate": (
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--model",
            "nobody/no-such-model",
            "--no-faces",
            "--out",
            "{old}",
            "--overwrite",
        ],
        None,
    ),
    "crop": (
        ["crop", "{w}/faces", "--out", "{old}", "--overwrite", "--backend", "haar"],
        ("fer_synth.faces.crop", "ManifestWriter.append", 1),
    ),
    "train": (
        [
            "train",
            "--data",
            "{w}/d.h5",
            "--out",
            "{old}",
            "--overwrite",
            "--model",
            "small-cnn",
            "--epochs",
            "2",
            "--batch-size",
            "16",
            "--no-progress",
            "--device",
            "cpu",
            "--amp",
            "none",
        ],
        ("fer_models.checkpoint", "save_state", 2),
    ),
    "predict": (["predict", "{w}/faces", "--model", "{w}/nowhere", "--annotate", "{old}", "--overwrite"], None),
    "predict --explain": (
        ["predict", "{w}/faces", "--backend", "haar", "--explain", "{old}", "--overwrite"],
        ("fer_models.inference.media", "_save", 2),
    ),
    "balance --method": (
        ["balance", "{w}/fer.csv", "--method", "ros", "--out", "{old}", "--overwrite"],
        ("fer_synth.data.export", "png_bytes", 5),
    ),
    "judge": (
        ["judge", "{w}/faces", "--model", "builtin", "--overwrite", "--batch-size", "4"],
        ("fer_models.inference.judge", "ManifestWriter.append", 2),
    ),
}


@pytest.mark.parametrize("command", list(REPLACE_FAILS))
def test_overwrite_that_fails_midway_leaves_the_old_output_whole(tmp_path, monkeypatch, command):
    """A replacement is built beside the old output and swapped in at the end: an error after the output is claimed
    (a mistyped --model, a pool shortfall, a damaged input, a full disk) changes nothing of the old one."""
    import importlib

    from fer_models.cli import main as models_cli

    write_csv(tmp_path / "fer.csv", fer_rows(DEFAULT_COUNTS))
    separable_h5(tmp_path / "d.h5")
    _faces(tmp_path / "faces", {"happy": 5, "sad": 5})
    _faces(tmp_path / "tiny_pool", {"happy": 1})
    _faces(tmp_path / "only_train_free" / "test", {"happy": 2})
    args, breaks = REPLACE_FAILS[command]
    if command == "runs report":
        training.train(tiny_config(tmp_path / "d.h5", tmp_path / "run", epochs=1))
    old = tmp_path / "faces" if command == "judge" else tmp_path / "old"
    if command == "judge":
        from fer_models.inference.judge import judge_pool

        judge_pool(old, "builtin", batch_size=4)
    else:
        old.mkdir()
        (old / "precious.txt").write_text("the user's")
        (old / "sub").mkdir()
        (old / "sub" / "more.txt").write_text("more")
    before = _snapshot(tmp_path)
    if breaks is not None:
        module, name, count = breaks
        owner = importlib.import_module(module)
        if "." in name:  # a method of a class the module uses
            cls_name, method = name.split(".")
            owner = getattr(owner, cls_name)
            name = method
        monkeypatch.setattr(owner, name, _after(count, _enospc)(getattr(owner, name)))
    cli = synth_cli if command.split()[0] in ("pack", "balance", "export", "report", "generate", "crop") else models_cli
    result = CliRunner().invoke(cli, [a.format(w=tmp_path, old=old) for a in args])
    _one_error_line(result)
    assert _snapshot(tmp_path) == before, "the failed replacement changed something"


KILL_POINTS = {
    # command: (arguments, output, (module, function, call that kills), prepare the old output with the command)
    "report": (
        ["fer_synth.cli", "report", "{w}/fer.csv", "--out", "{w}/out"],
        "out",
        ("fer_synth.ui.html", "write_page", 1),
        True,
    ),
    "export": (
        ["fer_synth.cli", "export", "{w}/d.h5", "{w}/out"],
        "out",
        ("fer_synth.data.export", "png_bytes", 9),
        True,
    ),
    "pack into folders": (
        ["fer_synth.cli", "pack", "{w}/fer.csv", "--out", "{w}/out"],
        "out",
        ("fer_synth.data.export", "png_bytes", 9),
        True,
    ),
    "annotate": (
        ["fer_models.cli", "predict", "{w}/faces", "--annotate", "{w}/out", "--backend", "haar"],
        "out",
        ("fer_models.inference.media", "_save", 3),
        True,
    ),
    "explain": (
        ["fer_models.cli", "predict", "{w}/faces", "--explain", "{w}/out", "--backend", "haar"],
        "out",
        ("fer_models.inference.media", "_save", 3),
        True,
    ),
    "balance --method into folders": (
        ["fer_synth.cli", "balance", "{w}/fer.csv", "--method", "ros", "--out", "{w}/out"],
        "out",
        ("fer_synth.data.export", "png_bytes", 9),
        True,
    ),
    "runs report": (
        ["fer_models.cli", "report", "{w}/run", "--out", "{w}/out"],
        "out",
        ("fer_synth.ui.html", "write_page", 1),
        True,
    ),
    "onnx export": (
        ["fer_models.cli", "export", "{w}/run", "--out", "{w}/out.onnx", "--overwrite"],
        "out.onnx",
        ("onnx", "save", 1),
        False,
    ),
    "evaluate": (
        ["fer_models.cli", "evaluate", "{w}/run", "--data", "{w}/d.h5", "--tta", "none"],
        "run/evaluation-test.npz",
        ("numpy", "savez_compressed", 1),
        True,
    ),
}
_KILLER = """
import importlib, os, signal, sys
module, name, count, cli = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
owner = importlib.import_module(module)
real, calls = getattr(owner, name), [0]
def kill(*args, **kwargs):
    calls[0] += 1
    if calls[0] == count:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
setattr(owner, name, kill)
importlib.import_module(cli).main(sys.argv[5:])
"""


def kill_at_call(module: str, name: str, count: int, cli: str, arguments: list[str], cwd: Path) -> None:
    """Run ``cli`` with ``arguments`` in a child process that SIGKILLs itself at the ``count``-th call of
    ``module.name``, and check that it died so."""
    killed = subprocess.run(
        [sys.executable, "-c", _KILLER, module, name, str(count), cli, *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr


@pytest.mark.parametrize("command", list(KILL_POINTS))
def test_a_replacement_killed_midway_leaves_the_old_output_and_the_same_command_cleans_up(tmp_path, command):
    """kill -9 in the middle of building: the old output is whole, the killed writer's temporary lies beside it;
    the same command again finishes, and removes the temporary (a dead writer's: its process is gone)."""
    import importlib

    args, out_name, (module, name, count), prepare = KILL_POINTS[command]
    write_csv(tmp_path / "fer.csv", fer_rows(DEFAULT_COUNTS))
    separable_h5(tmp_path / "d.h5")
    _faces(tmp_path / "faces", {"happy": 3}, size=96)
    if command in ("runs report", "onnx export", "evaluate"):
        training.train(tiny_config(tmp_path / "d.h5", tmp_path / "run", epochs=1))
    out = tmp_path / out_name
    cli = importlib.import_module(args[0]).main
    arguments = [a.format(w=tmp_path) for a in args[1:]]
    if prepare:
        first = CliRunner().invoke(cli, arguments)
        assert first.exit_code == 0, first.output
    else:
        out.write_bytes(b"the previous export")
    before = _snapshot(tmp_path) if out.is_dir() else {out.name: out.read_bytes()}
    kill_at_call(module, name, count, args[0], arguments, tmp_path)
    assert _temps_beside(out), "the killed writer left nothing beside the output: the kill came too early"
    now = _snapshot(tmp_path) if out.is_dir() else {out.name: out.read_bytes()}
    if out.is_dir():
        now = {k: v for k, v in now.items() if not k.startswith(".")}
        before = {k: v for k, v in before.items() if not k.startswith(".")}
    assert now == before, "the killed replacement changed the old output"
    again = CliRunner().invoke(cli, arguments)
    assert again.exit_code == 0, again.output
    assert _temps_beside(out) == [] and out.exists()


def test_predict_killed_between_its_json_and_csv_is_finished_by_the_same_command(run_dir, monkeypatch):
    """kill -9 after --json is renamed into place and before --csv is: the same command again does not refuse the
    JSON file it made itself (a dead writer's note vouches for its content) and ends with the files of an
    uninterrupted run; a JSON file changed since is still refused."""
    from fer_models.cli import main as models_cli

    monkeypatch.chdir(run_dir)
    _faces(run_dir / "faces", {"happy": 3}, size=96)
    args = ["predict", "faces", "--model", "run", "--backend", "haar", "--device", "cpu"]
    whole = CliRunner().invoke(models_cli, [*args, "--json", "whole.json", "--csv", "whole.csv"])
    assert whole.exit_code == 0, whole.output
    arguments = [*args, "--json", "out.json", "--csv", "out.csv"]
    kill_at_call("os", "replace", 2, "fer_models.cli", arguments, run_dir)
    json_out, csv_out = run_dir / "out.json", run_dir / "out.csv"
    assert json_out.exists() and not csv_out.exists(), "the kill did not come between the two renames"
    made = json_out.read_bytes()
    json_out.write_bytes(made + b" ")  # no longer what the killed writer made: refused as any other file
    assert "out.json exists" in _one_error_line(CliRunner().invoke(models_cli, arguments))
    json_out.write_bytes(made)
    again = CliRunner().invoke(models_cli, arguments)
    assert again.exit_code == 0, again.output
    assert json_out.read_bytes() == (run_dir / "whole.json").read_bytes()
    assert csv_out.read_bytes() == (run_dir / "whole.csv").read_bytes()
    assert _temps_beside(json_out) == [] and _temps_beside(csv_out) == []


def test_a_comparison_killed_while_evaluating_a_run_is_finished_by_the_same_command(tmp_path):
    """kill -9 as compare evaluates its trained run, before the confusion matrix: the same command again ends with
    every file of an uninterrupted comparison (it reuses an evaluation it finds, so its report must come last)."""
    from fer_models.cli import main as models_cli

    data = separable_h5(tmp_path / "d.h5")
    settings = ["--recipe", "cpu-fast", "--seeds", "1", "--epochs", "1", "--threads", "1", "--device", "cpu"]
    args = ["compare", str(data), *settings, "--resamples", "100", "--out"]
    whole = CliRunner().invoke(models_cli, [*args, str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    kill_at_call(
        "fer_models.evaluation.evaluate",
        "plot_confusion",
        1,
        "fer_models.cli",
        [*args, str(tmp_path / "cut")],
        tmp_path,
    )
    again = CliRunner().invoke(models_cli, [*args, str(tmp_path / "cut")])
    assert again.exit_code == 0, again.output

    def files(root: Path) -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.startswith("."))

    assert files(tmp_path / "cut") == files(tmp_path / "whole")
    assert _temps_beside(tmp_path / "cut") == [] and not list((tmp_path / "cut").rglob(".*.tmp"))


def test_temporaries_of_dead_writers_are_cleaned_live_ones_and_other_hosts_kept(tmp_path):
    from fer_synth.core.outputs import remove_dead_temps_in, remove_stale_temps, temp_prefix

    target = tmp_path / "out"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as alive:
        dead = int(
            subprocess.run(
                [sys.executable, "-c", "import os; print(os.getpid())"], check=False, capture_output=True, text=True
            ).stdout
        )
        host = temp_prefix(target).split("@")[1].rstrip(".")
        beside = {who: tmp_path / f".out.{pid}@{host}.x1.tmp" for who, pid in (("dead", dead), ("alive", alive.pid))}
        beside["other host"] = tmp_path / f".out.{dead}@elsewhere.x1.tmp"
        beside["mine"] = Path(f"{tmp_path / temp_prefix(target)}x1.tmp")
        for path in beside.values():
            path.mkdir()
        assert remove_stale_temps(target) == [beside["dead"]]
        assert all(p.exists() for who, p in beside.items() if who != "dead")
        target.mkdir()
        inside = {
            "dead": target / f".a.png.{dead}@{host}.x1.tmp",
            "alive": target / f".b.png.{alive.pid}@{host}.x1.tmp",
        }
        for path in inside.values():
            path.write_bytes(b"half")
        assert remove_dead_temps_in(target) == [inside["dead"]] and inside["alive"].exists()
        alive.kill()


def test_a_swap_where_names_cannot_be_exchanged_is_undone_after_a_kill_between_its_renames(tmp_path, monkeypatch):
    from fer_synth.core import outputs

    target = tmp_path / "report"
    target.mkdir()
    (target / "index.html").write_text("old")
    monkeypatch.setattr(outputs, "_exchange", lambda a, b: False)  # a file system without renameat2's exchange
    with outputs.output_folder(target, command="report", is_own=lambda f: True, whole=True, lock=None) as work:
        (work / "index.html").write_text("new")
    assert (target / "index.html").read_text() == "new" and _temps_beside(target) == []
    # Killed between "old aside" and "new in place": the next run puts the old one back, then replaces it.
    dead = int(
        subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], check=False, capture_output=True, text=True
        ).stdout
    )
    host = outputs.temp_prefix(target).split("@")[1].rstrip(".")
    aside = tmp_path / f".report.{dead}@{host}.ab12-previous.tmp"
    os.rename(target, aside)
    outputs.remove_stale_temps(target)
    assert (target / "index.html").read_text() == "new" and not aside.exists()


def test_two_writers_creating_one_folder_at_once_end_with_one_whole_output(tmp_path, monkeypatch):
    """Outputs built whole take no lock: a second writer whose target appears between its check and its rename
    (the first writer's swap) replaces it as an earlier output, never fails half-way (a rename onto a folder that
    is not empty)."""
    from fer_synth.core import outputs

    target = tmp_path / "report"
    real = os.path.lexists

    def first_writer_lands(path):
        there = real(path)
        if Path(path) == target and not there:
            target.mkdir()
            (target / "index.html").write_text("first")
        return there

    with outputs.output_folder(target, command="report", is_own=lambda f: True, whole=True, lock=None) as work:
        (work / "index.html").write_text("second")
        monkeypatch.setattr(os.path, "lexists", first_writer_lands)  # the swap's check sees no target yet
    monkeypatch.undo()
    assert (target / "index.html").read_text() == "second" and _temps_beside(target) == []


# --- class 3: judgements are bound to the content of the faces ---------------------------------------------------


def test_a_replaced_face_is_judged_again_a_deleted_one_leaves_and_balance_never_uses_a_stale_score(tmp_path):
    from fer_models.inference.judge import judge_pool
    from fer_synth.core.judgement import JudgementError, SelectionPolicy, current_judgement, read_judgement
    from fer_synth.data.balance import BalanceConfig, balance
    from fer_synth.report.inputs import read_pool

    pool = _faces(tmp_path / "pool", {"happy": 4, "sad": 4})
    csv = write_csv(tmp_path / "fer.csv", fer_rows(DEFAULT_COUNTS))
    first = judge_pool(pool, "builtin")
    assert first["faces"] == 8 and all(r["sha256"] for r in read_judgement(pool).values())
    Image.fromarray(np.full((48, 48), 200, np.uint8)).save(pool / "happy" / "0.png")  # replaced after judging
    (pool / "sad" / "0.png").unlink()  # deleted after judging
    files = [f"{c}/{i}.png" for c in ("happy", "sad") for i in range(4) if (c, i) != ("sad", 0)]
    current, stale = current_judgement(pool, files)
    assert stale == ["happy/0.png"] and len(current) == 6
    assert len(read_pool(pool, list(CLASSES)).judgement) == 6  # the report shows current judgements only
    with pytest.raises(JudgementError, match="1 of them changed since they were judged"):
        balance(
            BalanceConfig(csv, None, pool=pool, dry_run=True, allow_shortfall=True, judged=SelectionPolicy("agree"))
        )
    again = judge_pool(pool, "builtin")
    assert again["faces"] == 7 and len((pool / "judgement.jsonl").read_text().splitlines()) == 9  # one judged again
    balance(
        BalanceConfig(csv, None, pool=pool, dry_run=True, allow_shortfall=True, judged=SelectionPolicy("min-prob", 0.0))
    )


def test_faces_judged_over_other_classes_are_judged_again_and_balance_refuses_a_mixed_judgement(tmp_path, caplog):
    """A pool judged, then given a contempt folder: the judge scores over the pool's classes (renormalised), so the
    old records' scores and judged classes no longer compare with the new ones; they were once kept beside them."""
    from fer_models.inference.judge import judge_pool
    from fer_synth.core.judgement import JudgementError, SelectionPolicy, current_judgement, read_judgement
    from fer_synth.data.balance import BalanceConfig, balance

    pool = _faces(tmp_path / "pool", {"happy": 2, "sad": 2})
    csv = write_csv(tmp_path / "fer.csv", fer_rows(DEFAULT_COUNTS))
    judge_pool(pool, "builtin")
    seven = (pool / "judgement.jsonl").read_text()
    _faces(tmp_path / "pool", {"contempt": 1}, seed=1)
    with caplog.at_level("WARNING"):
        report = judge_pool(pool, "builtin")
    assert "judging again 4 faces" in caplog.text and report["faces"] == 5
    files = [f"{c}/{i}.png" for c, n in (("happy", 2), ("sad", 2), ("contempt", 1)) for i in range(n)]
    current, _ = current_judgement(pool, files)
    assert {len(r["classes"]) for r in current.values()} == {8}
    config = BalanceConfig(csv, None, pool=pool, dry_run=True, allow_shortfall=True, judged=SelectionPolicy("agree"))
    balance(config)
    # The judgement an older judge left: the first faces' 7-class records, the new face's 8-class one.
    eight = [line for line in (pool / "judgement.jsonl").read_text().splitlines() if "contempt/" in line]
    (pool / "judgement.jsonl").write_text(seven + eight[-1] + "\n")
    (pool / "sad" / "1.png").unlink()  # happy/0, happy/1, sad/0 over 7 classes; no 8-class face left but contempt
    (pool / "happy" / "new.png").write_bytes((pool / "contempt" / "0.png").read_bytes())
    new = json.loads(eight[-1]) | {"file": "happy/new.png", "class": "happy"}
    with (pool / "judgement.jsonl").open("a") as f:
        f.write(json.dumps(new) + "\n")
    assert len(read_judgement(pool)) == 6
    with pytest.raises(JudgementError, match="judged over other classes than the rest"):
        balance(config)


# --- class 4: outputs never collide -------------------------------------------------------------------------------


def test_inputs_that_would_share_an_annotation_keep_their_own(tmp_path):
    import cv2

    from fer_models.cli import main as models_cli

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("x.png", "x.jpg", "y.png"):
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(photos / name)
    for name, fourcc in (("clip.avi", "MJPG"), ("clip.mp4", "mp4v")):
        writer = cv2.VideoWriter(str(photos / name), cv2.VideoWriter_fourcc(*fourcc), 10, (96, 96))
        for _ in range(3):
            writer.write(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
        writer.release()
    result = CliRunner().invoke(
        models_cli, ["predict", str(photos), "--annotate", str(tmp_path / "a"), "--backend", "haar", "--every", "1"]
    )
    assert result.exit_code == 0, result.output
    written = sorted(str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*.png"))
    assert written == [
        "clip_avi/frame-000000.png",
        "clip_avi/frame-000001.png",
        "clip_avi/frame-000002.png",
        "clip_mp4/frame-000000.png",
        "clip_mp4/frame-000001.png",
        "clip_mp4/frame-000002.png",
        "x_jpg.png",
        "x_png.png",
        "y.png",
    ]


def test_evaluations_of_other_checkpoints_neither_replace_nor_pass_for_a_runs_own(run_dir):
    """A run's last.json and another run evaluated into its folder once wrote its evaluation-test.json; the runs
    report matched reports by the file name best.json and showed another run's numbers as this one's."""
    import shutil

    from fer_models.cli import main as models_cli

    run, other, data = run_dir / "run", run_dir / "other", str(run_dir / "d.h5")
    training.train(tiny_config(run_dir / "d.h5", other, epochs=1, seed=1))
    runner = CliRunner()
    for args in (["evaluate", str(run)], ["evaluate", str(run / "last.json")], ["evaluate", str(other)]):
        result = runner.invoke(models_cli, [*args, "--data", data, "--tta", "none"])
        assert result.exit_code == 0, result.output
    own = (run / "evaluation-test.json").read_bytes()
    assert json.loads((run / "last.evaluation-test.json").read_text())["checkpoint"].endswith("last.json")
    # Over another run's evaluation: refused, nothing replaced.
    result = runner.invoke(models_cli, ["evaluate", str(run), "--data", data, "--out", str(other)])
    assert result.exit_code == 2 and "is the evaluation of" in result.output, result.output
    assert json.loads((other / "evaluation-test.json").read_text())["checkpoint"] == str(other / "best.json")
    # Into a folder with no evaluation of its own: written, but never shown as that run's.
    (other / "evaluation-test.json").unlink()
    assert runner.invoke(models_cli, ["evaluate", str(run), "--data", data, "--out", str(other)]).exit_code == 0
    assert runner.invoke(models_cli, ["report", str(other), "--out", str(run_dir / "r")]).exit_code == 0
    assert json.loads((run_dir / "r" / "report.json").read_text())["entries"][0]["evaluations"] == {}
    # A copied run folder keeps its evaluation (the same checkpoint bytes), and the original is unchanged.
    shutil.copytree(run, run_dir / "copy")
    assert runner.invoke(models_cli, ["report", str(run_dir / "copy"), "--out", str(run_dir / "r2")]).exit_code == 0
    assert "test" in json.loads((run_dir / "r2" / "report.json").read_text())["entries"][0]["evaluations"]
    assert (run / "evaluation-test.json").read_bytes() == own


def test_an_input_given_twice_is_used_once_and_said(run_dir):
    """A folder and a file in it, a run folder and its best.json: one prediction, one report entry, and a warning
    (once, each was counted twice)."""
    from skimage import data

    from fer_models.cli import main as models_cli

    photos = run_dir / "photos"
    photos.mkdir()
    Image.fromarray(data.astronaut()).resize((256, 256)).save(photos / "a.png")  # one face
    (run_dir / "link.png").symlink_to(photos / "a.png")
    args = ["predict", str(photos), str(photos / "a.png"), str(run_dir / "link.png"), "--backend", "haar"]
    result = CliRunner().invoke(models_cli, [*args, "--json", str(run_dir / "p.json")])
    assert result.exit_code == 0, result.output
    assert "2 input(s) given more than once" in " ".join(result.output.split())
    rows = json.loads((run_dir / "p.json").read_text())
    assert len(rows) == 1, rows  # its one face, once
    run = run_dir / "run"
    result = CliRunner().invoke(models_cli, ["report", str(run), str(run / "best.json"), "--out", str(run_dir / "r")])
    assert result.exit_code == 0 and "given more than once" in " ".join(result.output.split()), result.output
    assert len(json.loads((run_dir / "r" / "report.json").read_text())["entries"]) == 1


# --- class 5: names and environments ------------------------------------------------------------------------------

NOT_UTF8 = os.fsdecode(b"\xff\xfe-face.png")


def test_file_names_that_are_not_utf8_pass_every_folder_reader(tmp_path):
    """OpenCV crashes on such a name: every reader reads the bytes itself; every writer shows the name escaped."""
    from fer_models.cli import main as models_cli

    pool = _faces(tmp_path / "pool", {"happy": 3, "sad": 3})
    os.rename(pool / "happy" / "0.png", pool / "happy" / NOT_UTF8)
    data = _faces(tmp_path / "data" / "train", {"happy": 4, "sad": 4}).parent
    os.rename(data / "train" / "happy" / "0.png", data / "train" / "happy" / NOT_UTF8)
    csv = write_csv(tmp_path / "fer.csv", fer_rows(DEFAULT_COUNTS))
    runs = [
        (synth_cli, ["stats", str(data)]),
        (synth_cli, ["pack", str(data), "--out", str(tmp_path / "p.h5")]),
        (
            synth_cli,
            [
                "balance",
                str(csv),
                "--pool",
                str(pool),
                "--out",
                str(tmp_path / "b.h5"),
                "--allow-shortfall",
                "--allow-pool-leakage",
            ],
        ),
        (synth_cli, ["crop", str(pool), "--out", str(tmp_path / "c"), "--backend", "haar", "--haar-min-size", "8"]),
        (models_cli, ["judge", str(pool), "--model", "builtin"]),
        (
            synth_cli,
            [
                "balance",
                str(csv),
                "--pool",
                str(pool),
                "--out",
                str(tmp_path / "j.h5"),
                "--allow-shortfall",
                "--allow-pool-leakage",
                "--judged",
                "--min-prob",
                "0",
            ],
        ),
        (synth_cli, ["report", str(tmp_path / "p.h5"), "--pool", str(pool), "--out", str(tmp_path / "r")]),
        (
            models_cli,
            [
                "predict",
                str(pool),
                "--backend",
                "haar",
                "--csv",
                str(tmp_path / "p.csv"),
                "--json",
                str(tmp_path / "p.json"),
                "--annotate",
                str(tmp_path / "a"),
            ],
        ),
    ]
    for cli, args in runs:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, (args, result.output, result.exc_info)
        if cli is models_cli and args[0] == "predict":  # no face in noise: named in the warning, escaped
            assert "\\xff\\xfe-face.png" in result.output
    origins = store.read(tmp_path / "p.h5")["train"].origin
    assert any("\\xff\\xfe-face.png" in o for o in origins)
    assert (tmp_path / "a" / "happy" / os.fsdecode(b"\xff\xfe-face.png")).exists()  # the annotation keeps the name


def _unreadable(monkeypatch, folder: Path) -> None:
    """``folder`` cannot be listed (as for another user's folder; tests may run as root, who reads everything)."""
    import errno

    real = os.scandir

    def scandir(path="."):
        if os.path.abspath(path) == str(folder):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_folders_link_loops_and_broken_links_are_named_in_a_warning(tmp_path, monkeypatch):
    from fer_models.cli import main as models_cli

    data = _faces(tmp_path / "data", {"happy": 3, "sad": 3, "fear": 2})
    (data / "sad" / "loop").symlink_to(data)  # a folder inside a class folder that leads back up
    (data / "happy" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    photos = _faces(tmp_path / "photos", {"trip": 2, "home": 2})
    (photos / "trip" / "again").symlink_to(photos)
    (photos / "home" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    _unreadable(monkeypatch, data / "fear")
    result = CliRunner().invoke(synth_cli, ["stats", str(data)])
    assert result.exit_code == 0, result.output
    assert (
        "fear (unreadable folder (permission denied))" in result.output
        and "gone.png (a broken symbolic link)" in result.output
        and "loop (a folder inside a class folder" in result.output
    )
    _unreadable(monkeypatch, photos / "home")
    for cli, args in (
        (synth_cli, ["crop", str(photos), "--out", str(tmp_path / "c"), "--backend", "haar"]),
        (models_cli, ["predict", str(photos), "--backend", "haar"]),
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert "home (unreadable folder" in result.output and "again (a folder already read" in result.output


def test_one_image_too_large_for_memory_is_skipped_with_a_warning(tmp_path, monkeypatch):
    from fer_models.cli import main as models_cli
    from fer_synth.core import images

    data = _faces(tmp_path / "data", {"happy": 3, "sad": 3})
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(data / "happy" / "huge.png")
    for name in ("_decode_gray", "_decode_rgb"):
        real = getattr(images, name)

        def decode(raw, real=real):
            if raw.size == (data / "happy" / "huge.png").stat().st_size:
                raise MemoryError
            return real(raw)

        monkeypatch.setattr(images, name, decode)
    runs = [
        (synth_cli, ["stats", str(data)], "huge.png (too large to decode in memory)"),
        (
            synth_cli,
            ["crop", str(data), "--out", str(tmp_path / "c"), "--backend", "haar"],
            "huge.png (too large to decode in memory)",
        ),
        (models_cli, ["predict", str(data), "--backend", "haar"], "(too_large), e.g."),
    ]
    for cli, args, warning in runs:
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0 and warning in result.output, (args, result.output)


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_the_same_command_finishes(tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from fer_models.cli import main as models_cli

    data = separable_h5(tmp_path / "d.h5")
    args = [
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "cut"),
        "--model",
        "small-cnn",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--no-progress",
        "--device",
        "cpu",
        "--amp",
        "none",
    ]
    whole = CliRunner().invoke(models_cli, [*args[:4], str(tmp_path / "whole"), *args[5:]])
    assert whole.exit_code == 0, whole.output

    def full(*a, **k):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(ckpt, "save_file", _after(4, full)(ckpt.save_file))  # epoch 2's state
    error = _one_error_line(CliRunner().invoke(models_cli, args))
    assert "disk is full" in error and "run the same command again" in error
    assert [p for p in (tmp_path / "cut").iterdir() if p.name.endswith(".tmp")] == []
    monkeypatch.undo()
    assert CliRunner().invoke(models_cli, args).exit_code == 0
    a, b = _state_tensors(tmp_path / "whole"), _state_tensors(tmp_path / "cut")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_full_disk_while_judging_is_one_line_and_the_same_command_finishes(tmp_path, monkeypatch):
    from fer_models.cli import main as models_cli
    from fer_models.inference import judge
    from fer_synth.core.judgement import read_judgement

    pool = _faces(tmp_path / "pool", {"happy": 5, "sad": 5})
    args = ["judge", str(pool), "--model", "builtin", "--batch-size", "3"]
    monkeypatch.setattr(judge.ManifestWriter, "append", _after(2, _enospc)(judge.ManifestWriter.append))
    assert "disk is full" in _one_error_line(CliRunner().invoke(models_cli, args))
    monkeypatch.undo()
    assert len(read_judgement(pool)) == 3  # the first batch, complete
    assert CliRunner().invoke(models_cli, args).exit_code == 0
    assert len(read_judgement(pool)) == 10 and len((pool / "judgement.jsonl").read_text().splitlines()) == 10


@pytest.mark.parametrize(
    "command", [["-m", "fer_synth", "stats", "{csv}"], ["-m", "fer_models", "evaluate", "builtin", "--data", "{h5}"]]
)
@pytest.mark.parametrize("gib", [0.4, 1.5, 3.0])
def test_a_low_memory_limit_is_one_line_or_enough(tmp_path, command, gib):
    """Under ``ulimit -v`` the libraries may not even load: one line and exit 2, or the command works."""
    import resource

    csv = write_csv(tmp_path / "fer.csv", fer_rows(DEFAULT_COUNTS))
    h5 = separable_h5(tmp_path / "d.h5")
    limit = int(gib * 2**30)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run(
        [sys.executable, *(a.format(csv=csv, h5=h5) for a in command)],
        check=False,
        capture_output=True,
        text=True,
        preexec_fn=limited,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode in (0, 2), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    if result.returncode == 2:
        assert [line for line in result.stderr.splitlines() if line.startswith("Error:")], result.stderr


def test_damaged_evaluation_reports_are_left_out_with_a_warning(run_dir):
    from fer_models.cli import main as models_cli
    from fer_models.evaluation.evaluate import evaluate

    evaluate(run_dir / "run", run_dir / "d.h5", "test", "none", out=run_dir / "run")
    (run_dir / "run" / "evaluation-val.json").write_text("{broken")
    (run_dir / "run" / "evaluation-train.json").write_text(json.dumps({"split": "train", "results": []}))
    good = json.loads((run_dir / "run" / "evaluation-test.json").read_text())
    # Well-formed but for a key the page reads when present: the classes (a number), per-class scores (one missing).
    (run_dir / "run" / "evaluation-x.json").write_text(json.dumps({**good, "split": "x", "classes": 5}))
    tta = good["results"][good["tta"]]["all"]
    del tta["per_class"][good["classes"][0]]
    (run_dir / "run" / "evaluation-y.json").write_text(json.dumps({**good, "split": "y"}))
    result = CliRunner().invoke(models_cli, ["report", str(run_dir / "run"), "--out", str(run_dir / "r")])
    assert result.exit_code == 0, result.output
    assert "evaluation-val.json (not readable as JSON" in result.output and "evaluation-train.json" in result.output
    assert "evaluation-x.json ('classes' is not a list" in result.output
    assert "skipped 4 unusable" in result.output  # evaluation-y.json, fourth, is counted past the names shown


def test_a_run_folder_named_in_bytes_that_are_not_utf8_is_trained_read_and_reported(tmp_path):
    """safetensors opens only names that are valid UTF-8 and matplotlib draws no surrogates: a run folder named
    otherwise is trained, continued, evaluated, ensembled, judged and reported like any other."""
    from fer_models.cli import main as models_cli

    data = separable_h5(tmp_path / "d.h5")
    run = tmp_path / os.fsdecode(b"run-\xff\xfe")
    training.train(tiny_config(data, run, epochs=1))
    training.train(tiny_config(data, run, epochs=2))  # continued from its state file
    _faces(tmp_path / "pool", {"happy": 2})
    for args in (
        ["evaluate", str(run), "--data", str(data), "--tta", "none"],
        ["ensemble", str(run), "builtin", "--data", str(data), "--out", str(tmp_path / f"{run.name}.json")],
        ["report", str(tmp_path / f"{run.name}.json"), "--out", str(tmp_path / "r")],
        ["judge", str(tmp_path / "pool"), "--model", str(run), "--amp", "none"],
    ):
        result = CliRunner().invoke(models_cli, args)
        assert result.exit_code == 0, (args, result.output, result.exc_info)
    assert (tmp_path / "r" / "index.html").is_file() and (run / "evaluation-test.json").is_file()


def test_a_weights_file_that_fits_in_part_says_what_it_left_out(tmp_path, caplog):
    """Loading keeps the tensors whose names and shapes fit (a head for other classes is left out on purpose) and
    says how many it left out, with the first names: never a silent partial load."""
    import logging

    from fer_models.models import create_model

    ckpt.save_checkpoint(tmp_path / "eight", create_model("small-cnn", num_classes=8), {})
    with caplog.at_level(logging.INFO):
        create_model("small-cnn", num_classes=7, weights=tmp_path / "eight.safetensors")
    assert "left out" in caplog.text and "head" in caplog.text, caplog.text


def test_a_truncated_video_is_named_in_a_warning(tmp_path):
    import cv2

    from fer_models.cli import main as models_cli

    writer = cv2.VideoWriter(str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for i in range(30):
        writer.write(np.full((64, 64, 3), 8 * i, np.uint8))
    writer.release()
    data = (tmp_path / "clip.avi").read_bytes()
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "cut.avi").write_bytes(data[: len(data) // 2])
    result = CliRunner().invoke(models_cli, ["predict", str(tmp_path / "videos"), "--backend", "haar"])
    assert result.exit_code == 0, result.output
    assert "cut.avi: the video ends at frame" in result.output


def test_a_damaged_face_in_a_pool_is_named_in_a_warning(tmp_path, csv):
    pool = _faces(tmp_path / "pool", {"happy": 3})
    (pool / "happy" / "broken.png").write_bytes(b"\x89PNG half a file")
    result = CliRunner().invoke(
        synth_cli,
        [
            "balance",
            str(csv),
            "--pool",
            str(pool),
            "--out",
            str(tmp_path / "b.h5"),
            "--allow-shortfall",
            "--allow-pool-leakage",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "happy/broken.png (unreadable image)" in result.output


# --- class 6: FER+ rows are aligned by Image name too ------------------------------------------------------------


def test_ferplus_rows_moved_within_a_split_are_caught_and_microsofts_file_passes():
    from fer_synth.data.ferplus import _rows_out_of_order, read_votes
    from tests.conftest import SHARED

    names = [f"fer{i:07d}.png" for i in range(10)]
    names[3], names[6] = names[6], names[3]
    assert _rows_out_of_order(names)
    names = [f"fer{i:07d}.png" for i in range(10)]
    names[4] = ""  # a row without a usable face has no name
    names[7] = names[2]  # a duplicate image reuses an earlier image's name
    assert _rows_out_of_order(names) == []
    real = SHARED / "data" / "fer2013" / "ferplus-fer2013new.csv"
    if real.exists():
        assert _rows_out_of_order(read_votes(real)[2]) == []


# --- class 7: a finished run is left as it is ---------------------------------------------------------------------


def test_a_finished_run_rerun_with_other_settings_is_refused_and_its_files_untouched(run_dir):
    run = run_dir / "run"
    config = json.loads((run / "config.json").read_text())
    before = _snapshot(run)
    with pytest.raises(FerError, match="finished run of 2 epochs, not 1"):
        training.train(tiny_config(run_dir / "d.h5", run, epochs=1))
    with pytest.raises(FerError, match="other settings.*lr"):
        training.train(tiny_config(run_dir / "d.h5", run, epochs=2, lr=0.5))
    assert _snapshot(run) == before and json.loads((run / "config.json").read_text()) == config
    same = training.train(tiny_config(run_dir / "d.h5", run, epochs=2))  # the same settings: nothing written
    assert len(same.history) == 2 and _snapshot(run) == before
    longer = training.train(tiny_config(run_dir / "d.h5", run, epochs=3))  # more epochs continue it
    assert [r["epoch"] for r in longer.history] == [1, 2, 3]
    assert json.loads((run / "config.json").read_text())["epochs"] == 3


# --- class 8: the suite is hermetic ----------------------------------------------------------------------------


def test_the_suite_does_not_depend_on_the_users_environment(tmp_path):
    """A user's offline flag, launcher ranks, terminal width and colours change nothing in the tests."""
    hostile = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "FER_SYNTH_OFFLINE": "1",
        "RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "1",
        "COLUMNS": "30",
        "FORCE_COLOR": "1",
        "FER_SYNTH_FACE_MODEL": str(tmp_path / "missing.tflite"),
    }
    tests = [
        "tests/fer_synth/faces/test_stage.py::test_download_is_verified_and_lands_in_the_cache",
        "tests/fer_synth/faces/test_stage.py::test_failed_download_names_the_option",
        "tests/fer_synth/generation/test_run.py::test_generate_command",
    ]
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=root,
        env=hostile,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:]


# --- class 9: outputs of one run never share a file ----------------------------------------------------------------


def test_crop_gives_every_face_and_rejected_copy_its_own_file_even_when_the_input_grows(tmp_path):
    """Faces whose names would meet (one class under two folder names, ``a.png`` beside ``a_png.png``, ``x.png``
    with two faces beside ``x_1.png``) each keep their own file, as do rejected copies; an image added since an
    earlier run never writes over a face that run recorded."""
    from skimage import data

    from fer_synth.core.manifest import read_records
    from tests.conftest import SHARED

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((256, 256)))
    black = np.zeros((64, 64, 3), np.uint8)
    photos = tmp_path / "photos"
    images = {
        "happy/x.png": np.hstack([photo, photo[:, ::-1]]),  # two faces: x_0.png and x_1.png
        "happy/x_1.png": photo,
        "happy/a.png": photo,
        "happy/a.jpg": photo[:, ::-1],
        "happy/a_png.png": photo,
        "happy/b.png": photo,
        "happy/k.png": black,
    }
    later = {"Happiness/b.png": photo[:, ::-1], "Happiness/k.png": black}  # added before the second run
    for name, rgb in images.items():
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(rgb)).save(photos / name)
    out, rejects = tmp_path / "faces", tmp_path / "rejects"
    model = str(SHARED / "models" / "face_detection_short_range.tflite")
    args = ["crop", str(photos), "--out", str(out), "--keep-rejects", str(rejects), "--policy", "all"]
    args += ["--face-model", model]
    first = CliRunner().invoke(synth_cli, args)
    assert first.exit_code == 0, first.output
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}
    for name, rgb in later.items():
        (photos / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(rgb)).save(photos / name)
    second = CliRunner().invoke(synth_cli, args)
    assert second.exit_code == 0, second.output
    files = [file for record in read_records(out) for file in record["files"]]
    assert len(files) == len(set(files)) == 8, files  # x gives two faces, the six other images with a face one
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(files)
    assert {name: (out / name).read_bytes() for name in before} == before  # the first run's faces as they were
    assert len(list(rejects.rglob("*.png"))) == 2  # both black images, one from each folder of the class


# --- class 10: odd values and encodings that are not errors ---------------------------------------------------------


def test_a_seed_of_any_size_is_written_where_hdf5_cannot_hold_it(tmp_path, csv):
    """--seed takes any whole number >= 0 (generate's too); HDF5 attributes hold 64 bits, so a larger seed is
    written as its digits, in the file and in a folder's dataset.json, instead of a traceback half-way."""
    seed = 2**70
    for out in (tmp_path / "o.h5", tmp_path / "folder"):
        result = CliRunner().invoke(synth_cli, ["pack", str(csv), "--out", str(out), "--seed", str(seed)])
        assert result.exit_code == 0, (result.output, result.exc_info)
    assert str(store.read_attrs(tmp_path / "o.h5")["seed"]) == str(seed)
    assert json.loads((tmp_path / "folder" / "dataset.json").read_text())["seed"] == seed


def test_csv_files_saved_with_a_byte_order_mark_are_read_as_without(tmp_path, csv):
    """Excel saves "CSV UTF-8" with a byte-order mark before the header: FER2013's CSV and the FER+ votes read the
    same with it; a file with no header names what it found, shortened, not 2,304 pixel values."""
    from fer_synth.data.ferplus import read_votes
    from fer_synth.data.readers import read_dataset

    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
    assert store.fingerprint(read_dataset(bom).splits) == store.fingerprint(read_dataset(csv).splits)
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    votes = f"{header}\nTraining,fer0000000.png,{','.join(['1'] * 10)}\n"
    (tmp_path / "votes.csv").write_text(votes)
    (tmp_path / "bom_votes.csv").write_bytes(b"\xef\xbb\xbf" + votes.encode())
    assert read_votes(tmp_path / "bom_votes.csv")[0] == read_votes(tmp_path / "votes.csv")[0] == ["Training"]
    headless = tmp_path / "headless.csv"
    headless.write_text("".join(csv.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(FerError, match="first line must name") as info:
        read_dataset(headless)
    assert len(str(info.value)) < 400


def test_prompts_are_printed_as_they_are_drawn_whatever_n(monkeypatch):
    """--n has no upper bound: a huge one prints at once and holds no list of all the prompts (it held 10**20)."""
    from fer_synth.generation.prompts import PromptSet

    real, calls = PromptSet.prompt, [0]

    def interrupt_after_three(self, *args):
        calls[0] += 1
        if calls[0] > 3:
            raise KeyboardInterrupt  # Ctrl-C, as the user would
        return real(self, *args)

    monkeypatch.setattr(PromptSet, "prompt", interrupt_after_three)
    result = CliRunner().invoke(synth_cli, ["prompts", "-e", "happy", "--n", str(10**20), "--json"])
    assert [json.loads(line)["index"] for line in result.output.splitlines() if line.startswith("{")] == [0, 1, 2]
