"""``generate`` with the real face stage: the tiny random pipeline (noise: the shortfall path), and a stand-in
pipeline that paints the astronaut photo for some seeds (the kept path)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

from fer_synth.cli import main
from fer_synth.core.manifest import read_records
from fer_synth.data.readers import read_dataset
from fer_synth.faces.stage import REASONS, FaceStage, FaceStageConfig
from fer_synth.generation.config import GenerateConfig
from fer_synth.generation.pipeline import PipelineOptions
from fer_synth.generation.run import generate as run_generation
from tests.conftest import SHARED

MODEL = str(SHARED / "models" / "face_detection_short_range.tflite")


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    monkeypatch.setenv("FER_SYNTH_OFFLINE", "1")


def generate(out, *extra: str):
    args = [
        "generate",
        "-e",
        "happy,sad",
        "--n",
        "2",
        "--max-attempts",
        "2",
        "--seed",
        "5",
        "--out",
        str(out),
        "--model",
        "tiny-random",
        "--steps",
        "2",
        "--guidance",
        "5",
        "--size",
        "64",
        "--no-progress",
        "--face-model",
        MODEL,
        *extra,
    ]
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
    with FaceStage(FaceStageConfig("mediapipe", face_model=MODEL)) as stage:
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


class PhotoPipeline:
    """A stand-in for a diffusion pipeline: the astronaut photo when the image's seed is even, noise otherwise,
    so the real face stage decides; the generation run cannot tell it from a diffusers pipeline."""

    def __init__(self):
        self.photo = Image.fromarray(cv2.resize(data.astronaut(), (256, 256), interpolation=cv2.INTER_AREA))

    def __call__(self, *, prompt, generator, **_):
        images = []
        for g in generator:
            seed = g.initial_seed()
            noise = np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)
            images.append(self.photo if seed % 2 == 0 else Image.fromarray(noise))
        return SimpleNamespace(images=images, nsfw_content_detected=[False] * len(images))


def test_n_counts_kept_faces_and_every_attempt_is_recorded(tmp_path):
    def run(n: int):
        config = GenerateConfig(
            emotions=["disgust"],
            n=n,
            seed=1,
            out=tmp_path,
            batch_size=2,
            max_attempts=10,
            pipeline=PipelineOptions(model="tiny-random"),
        )
        with FaceStage(FaceStageConfig("mediapipe", face_model=MODEL)) as stage:
            return run_generation(config, pipe=PhotoPipeline(), face_stage=stage, progress=False)

    summary = run(3)
    assert summary.shortfall_report() is None
    records = read_records(tmp_path)
    kept = [r for r in records if r["face"]["kept"]]
    assert len(kept) == 3 and all(r["seed"] % 2 == 0 for r in kept)
    # Noise is rejected: mostly no_face, now and then a weak detection under min_score (low_confidence).
    rejected = [r for r in records if r not in kept]
    assert rejected and all(r["face"]["reason"] in ("no_face", "low_confidence") and r["files"] == [] for r in rejected)
    faces = sorted(tmp_path.glob("disgust/*.png"))
    assert [f.relative_to(tmp_path).as_posix() for f in faces] == sorted(f for r in kept for f in r["files"])
    assert all(cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape == (48, 48) for f in faces)
    # Resume with nothing to do, then extend to 4: new attempts continue after the last index, none repeats.
    assert run(3).images_made == 0 and len(read_records(tmp_path)) == len(records)
    run(4)
    indices = [r["index"] for r in read_records(tmp_path)]
    assert len(indices) == len(set(indices)) and len(list(tmp_path.glob("disgust/*.png"))) == 4
    # The folder is a pool `balance` reads: every kept face carries its attempt's prompt, seed and model.
    pool = read_dataset(tmp_path, synthetic=True)["images"]
    by_seed = {r["seed"]: r for r in read_records(tmp_path) if r["files"]}
    assert pool.counts().tolist() == [0, 4, 0, 0, 0, 0, 0] and pool.n_synthetic == 4
    assert all(by_seed[s]["prompt"] == p for s, p in zip(pool.seed, pool.prompt))
    assert set(pool.model) == {"tiny-random"}
