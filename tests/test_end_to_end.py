"""The documented offline chain (examples/offline_end_to_end.sh) at toy size, so that it cannot rot:
pack -> train (the builtin-fer2013 recipe) -> evaluate -> predict on the example's photo -> ensemble with the built-in
model; generate (tiny-random) -> crop -> balance -> HDF5 -> train x2 -> evaluate -> ensemble."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fer_models.cli import main as fer_models
from fer_synth.cli import main as fer_synth
from fer_synth.core import store
from fer_synth.core.dataset import SYNTHETIC
from fer_synth.core.manifest import read_records
from tests.conftest import SHARED, make_split
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, write_csv

FACE_MODEL = SHARED / "models" / "face_detection_short_range.tflite"


def run(cli, args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_offline_chain(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "fer2013.csv", fer_rows(DEFAULT_COUNTS))  # train disgust: 2, largest: 9
    run(
        fer_synth,
        [
            "generate",
            "--model",
            "tiny-random",
            "-e",
            "disgust",
            "-e",
            "surprise",
            "--n",
            "7",
            "--size",
            "32",
            "--steps",
            "2",
            "--no-faces",
            "--no-progress",
            "--seed",
            "5",
        ],
    )
    if FACE_MODEL.exists():
        output = run(
            fer_synth, ["crop", "generated", "--out", "faces", "--filters", "generated", "--face-model", FACE_MODEL]
        )
        crop_records = read_records(tmp_path / "faces")
        assert len(crop_records) == 14 and not any(r["kept"] for r in crop_records)  # noise has no faces
        assert "no_face" in output or "low_confidence" in output

    # defaults: pool generated/, out fer2013_balanced.h5; the pool only has disgust and surprise
    run(fer_synth, ["balance", "fer2013.csv", "--allow-shortfall"])
    data = store.read(tmp_path / "fer2013_balanced.h5")
    train = data["train"]
    assert train.counts().tolist() == [6, 9, 5, 9, 4, 9, 7]  # disgust 2+7, surprise 3+6; the rest stay short
    assert data["val"].n_synthetic == data["test"].n_synthetic == 0
    synthetic = train.source == SYNTHETIC
    generated = {(r["prompt"], r["seed"]) for r in read_records(tmp_path / "generated")}
    assert {(p, s) for p, s in zip(train.prompt[synthetic], train.seed[synthetic])} <= generated
    assert set(train.model[synthetic]) == {"tiny-random"}


@pytest.mark.skipif(not FACE_MODEL.exists(), reason="the BlazeFace model is not beside this checkout")
def test_the_example_ends_with_a_model_and_predictions_on_a_photo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photos = Path(__file__).resolve().parents[1] / "examples" / "photos"
    write_csv(tmp_path / "fer2013.csv", fer_rows(DEFAULT_COUNTS))
    run(fer_synth, ["pack", "fer2013.csv", "--out", "fer2013.h5"])
    run(
        fer_models,
        [
            "train",
            "--recipe",
            "builtin-fer2013",
            "--data",
            "fer2013.h5",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--time-budget",
            "60",
            "--out",
            "runs/fer2013",
            "--no-progress",
        ],
    )
    run(fer_models, ["evaluate", "runs/fer2013", "--data", "fer2013.h5", "--split", "test"])
    output = run(
        fer_models,
        [
            "predict",
            photos,
            "--model",
            "runs/fer2013",
            "--face-model",
            FACE_MODEL,
            "--csv",
            "faces.csv",
            "--annotate",
            "annotated",
        ],
    )
    assert "astronaut.jpg" in output and (tmp_path / "annotated" / "astronaut.png").exists()
    assert len((tmp_path / "faces.csv").read_text().splitlines()) == 2  # the header and the astronaut's face
    run(
        fer_models,
        [
            "ensemble",
            "runs/fer2013",
            "builtin",
            "--data",
            "fer2013.h5",
            "--method",
            "weighted",
            "--out",
            "runs/with-builtin.json",
        ],
    )
    members = json.loads((tmp_path / "runs" / "with-builtin.json").read_text())["members"]
    assert [m["checkpoint"] for m in members] == ["fer2013/best.json", "builtin"]
    assert "accuracy" in run(fer_models, ["evaluate", "runs/with-builtin.json", "--data", "fer2013.h5"]).lower()


@pytest.fixture
def trained(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store.write(
        tmp_path / "fer2013_balanced.h5",
        {"train": make_split(56, 0, synthetic=14), "val": make_split(21, 1), "test": make_split(21, 2)},
    )
    for seed in (0, 1):
        run(
            fer_models,
            ["train", "--epochs", "1", "--batch-size", "16", "--seed", seed, "--out", f"runs/{seed}", "--no-progress"],
        )
    return tmp_path


def test_train_evaluate_ensemble(trained):
    output = run(fer_models, ["evaluate", "runs/0", "--split", "test"])
    report = json.loads((trained / "runs" / "0" / "evaluation-test.json").read_text())
    assert report["split"] == "test" and report["n"] == 21 and report["same_data_as_training"]
    assert set(report["results"]) == {"none", "flip"}
    assert 0 <= report["results"]["flip"]["all"]["accuracy"] <= 1
    assert "accuracy" in output.lower()
    run(fer_models, ["ensemble", "runs/0", "runs/1", "--out", "runs/ens.json"])
    output = run(fer_models, ["evaluate", "runs/ens.json"])
    assert "accuracy" in output.lower()
