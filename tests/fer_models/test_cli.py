"""fer-models commands through click's CliRunner: defaults, and bad input as one-line errors."""

from __future__ import annotations

import h5py
import pytest
from click.testing import CliRunner

from fer_models.cli import main
from tests.fer_models.helpers import separable_h5

FAST = ["--epochs", "1", "--batch-size", "16", "--no-progress", "--device", "cpu"]


@pytest.fixture
def runner():
    return CliRunner()


def test_train_with_defaults_in_the_current_folder(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    separable_h5(tmp_path / "fer2013_balanced.h5")
    result = runner.invoke(main, ["train", *FAST])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "small-cnn" / "best.safetensors").exists()
    result = runner.invoke(main, ["evaluate", "runs/small-cnn", "--tta", "flip"])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "SYNTHETIC" not in result.output
    result = runner.invoke(main, ["train", *FAST, "--out", "runs/second", "--seed", "1", "--rotate", "5"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["ensemble", "runs/small-cnn", "runs/second", "--out", "runs/ens.json"])
    assert result.exit_code == 0, result.output
    assert "ensemble" in result.output and (tmp_path / "runs" / "ens.json").exists()
    assert runner.invoke(main, ["evaluate", "runs/ens.json", "--tta", "none"]).exit_code == 0


def test_evaluate_shouts_about_synthetic_rows(runner, tmp_path):
    data = separable_h5(tmp_path / "d.h5", synthetic_test=7)
    assert runner.invoke(main, ["train", "--data", str(data), "--out", str(tmp_path / "r"), *FAST]).exit_code == 0
    result = runner.invoke(main, ["evaluate", str(tmp_path / "r"), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and "7 SYNTHETIC" in result.output and "real (35)" in result.output


def test_missing_data_file_names_the_command_that_makes_it(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["train"])
    assert result.exit_code == 2
    assert "fer2013_balanced.h5" in result.output and "fer-synth balance" in result.output
    assert "fer-synth pack" in result.output and "Traceback" not in result.output


def test_wrong_format_version(runner, tmp_path):
    data = separable_h5(tmp_path / "d.h5")
    with h5py.File(data, "a") as f:
        f.attrs["format_version"] = 99
    result = runner.invoke(main, ["train", "--data", str(data), *FAST])
    assert result.exit_code == 2 and "format version 99" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet-9000"], "unknown model 'resnet-9000'"),
        (["--recipe", "nope"], "unknown recipe 'nope'"),
        (["--loss", "hinge"], "unknown loss 'hinge'"),
    ],
)
def test_bad_settings(runner, tmp_path, args, message):
    data = separable_h5(tmp_path / "d.h5")
    result = runner.invoke(main, ["train", "--data", str(data), "--out", str(tmp_path / "r"), *FAST, *args])
    assert result.exit_code == 2 and message in result.output, result.output


def test_evaluate_bad_input(runner, tmp_path):
    data = separable_h5(tmp_path / "d.h5")
    result = runner.invoke(main, ["evaluate", str(tmp_path / "nothing"), "--data", str(data)])
    assert result.exit_code == 2 and "no such checkpoint" in result.output
    (tmp_path / "notes.json").write_text('{"hello": 1}')
    result = runner.invoke(main, ["evaluate", str(tmp_path / "notes.json"), "--data", str(data)])
    assert result.exit_code == 2 and "not a fer-models checkpoint" in result.output


def test_listings(runner):
    models = runner.invoke(main, ["list-models"])
    assert models.exit_code == 0 and "vgg" in models.output and "29.89M" in models.output and "1x40x40" in models.output
    recipes = runner.invoke(main, ["list-recipes"])
    assert recipes.exit_code == 0 and "khaireddin-vgg" in recipes.output and "cpu-fast" in recipes.output
