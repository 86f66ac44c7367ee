"""``fer-synth generate`` with the real face stage on the tiny random pipeline (noise: the shortfall path)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fer_synth.cli import main
from fer_synth.faces import REASONS, FaceStage
from fer_synth.manifest import read_records

from conftest import SHARED

MODEL = str(SHARED / "models" / "face_detection_short_range.tflite")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    monkeypatch.setenv("FER_SYNTH_OFFLINE", "1")


def generate(out, *extra: str):
    args = ["generate", "-e", "happy,sad", "--n", "2", "--max-attempts", "2", "--seed", "5", "--out", str(out),
            "--model", "tiny-random", "--steps", "2", "--guidance", "5", "--size", "64", "--no-progress",
            "--face-model", MODEL, *extra]
    return CliRunner().invoke(main, args)


def test_every_attempt_is_recorded_and_the_shortfall_reported(tmp_path):
    out = tmp_path / "gen"
    result = generate(out, "--keep-raw")
    # tiny-random paints noise: no face passes, so each class spends its 2 x 2 attempts and falls short.
    assert result.exit_code == 1, result.output
    assert "happy: 0 of 2 faces after 4 attempts" in result.output
    assert "sad: 0 of 2 faces after 4 attempts" in result.output
    records = read_records(out)
    assert sorted((r["class"], r["index"]) for r in records) == [(c, i) for c in ("happy", "sad") for i in range(4)]
    for record in records:
        face = record["face"]
        assert face["kept"] is False and face["reason"] in REASONS and face["backend"] == "mediapipe"
        assert record["files"] == []
    assert not list(out.glob("happy/*.png")) and len(list(out.glob("raw/*/*.png"))) == 8
    with FaceStage("mediapipe", face_model=MODEL) as stage:
        assert json.loads((out / "run.json").read_text())["faces"] == stage.settings

    # Resuming spends nothing more; other face settings are refused, naming them.
    again = generate(out, "--keep-raw")
    assert again.exit_code == 1 and len(read_records(out)) == 8
    changed = generate(out, "--keep-raw", "--min-face", "64")
    assert changed.exit_code == 2 and "faces" in changed.output and len(read_records(out)) == 8


def test_generate_with_haar_and_its_options(tmp_path):
    out = tmp_path / "gen"
    result = generate(out, "--backend", "haar", "--haar-min-neighbors", "3", "--max-attempts", "1", "-e", "fear")
    assert result.exit_code == 1, result.output
    settings = json.loads((out / "run.json").read_text())["faces"]
    assert settings["backend"] == "haar" and settings["detector"]["min_neighbors"] == 3
