"""Every command, given bad input, answers with one line naming the problem, exits 2, and changes no file.

A traceback is reserved for bugs: anything but a :class:`FerError` (or click's own usage errors) escaping a
command fails these tests.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from fer_models import checkpoint as ckpt
from fer_models.cli import main as models_cli
from fer_models.models import create_model
from fer_synth.cli import main as synth_cli
from fer_synth.core import store
from fer_synth.core.classes import CLASSES
from fer_synth.core.images import save_png
from fer_synth.core.judgement import file_digest
from tests.conftest import make_split
from tests.fer_models.helpers import separable_h5
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, write_csv

PROMPTS = Path(__file__).resolve().parents[1] / "prompts" / "default.yaml"
VOTES_HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"


@pytest.fixture
def world(tmp_path: Path) -> Path:
    """A folder with a valid CSV, HDF5 file, run-less folders and a few broken inputs."""
    write_csv(tmp_path / "fer.csv", fer_rows(DEFAULT_COUNTS))
    separable_h5(tmp_path / "data.h5")
    (tmp_path / "only_test" / "test" / "happy").mkdir(parents=True)
    make = make_split(3)
    for i, image in enumerate(make.images):
        save_png(image, tmp_path / "only_test" / "test" / "happy" / f"{i}.png")
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a dataset\n")
    (tmp_path / "fake.h5").write_text("not hdf5\n")
    (tmp_path / "fake.safetensors").write_text("not tensors\n")
    (tmp_path / "bad.yaml").write_text("- a list, not a mapping\n")
    (tmp_path / "broken.yaml").write_text("epochs: [1, 2\n")
    (tmp_path / "afile").write_text("a file where a folder is expected\n")
    (tmp_path / "x.pt").write_bytes(b"\x80\x04K\x01.")
    (tmp_path / "bad_ensemble.json").write_text("{not json")
    (tmp_path / "empty_ensemble.json").write_text('{"format": "fer-models-ensemble", "format_version": 1}')
    (tmp_path / "votes_short.csv").write_text(  # FER+ votes for one row: do not align with fer.csv
        f"{VOTES_HEADER}\nTraining,fer0000000.png,10,0,0,0,0,0,0,0,0,0\n"
    )
    gz = gzip.compress((tmp_path / "fer.csv").read_bytes())
    (tmp_path / "corrupt.csv.gz").write_bytes(gz[: len(gz) // 2] + b"\0" * 64)
    nine = store.read(tmp_path / "data.h5")
    store.write(tmp_path / "label9.h5", nine.splits)
    with h5py.File(tmp_path / "label9.h5", "a") as f:
        labels = f["train/labels"][...]
        labels[0] = 9
        f["train/labels"][...] = labels
    # A checkpoint whose tensors do not fit its model: small-cnn's JSON, narrower weights.
    narrow = create_model("small-cnn", widths=[8, 16])
    ckpt.save_checkpoint(
        tmp_path / "misfit" / "best",
        narrow,
        {
            "model": "small-cnn",
            "model_options": {},
            "classes": list(CLASSES),
            "input_size": 48,
            "in_chans": 1,
            "tta": "none",
        },
    )
    fit = create_model("small-cnn")
    ckpt.save_checkpoint(
        tmp_path / "fit" / "best",
        fit,
        {
            "model": "small-cnn",
            "model_options": {},
            "classes": list(CLASSES),
            "input_size": 48,
            "in_chans": 1,
            "tta": "none",
        },
    )
    # Other names of the data file, a data file named like an evaluation output, files a command reads.
    (tmp_path / "link.h5").symlink_to(tmp_path / "data.h5")
    os.link(tmp_path / "data.h5", tmp_path / "hard.h5")
    os.link(tmp_path / "only_test" / "test" / "happy" / "0.png", tmp_path / "hard.png")  # a photo, named outside
    (tmp_path / "evalout").mkdir()
    shutil.copy(tmp_path / "data.h5", tmp_path / "evalout" / "evaluation-test.npz")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "face.tflite").write_bytes(b"a face model")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mine.yaml").write_text("epochs: 1\n")
    (tmp_path / "prompts").mkdir()
    shutil.copy(PROMPTS, tmp_path / "prompts" / "mine.yaml")
    # Damaged or foreign versions of what the commands read.
    badver = store.read(tmp_path / "data.h5")
    store.write(tmp_path / "badver.h5", badver.splits)
    with h5py.File(tmp_path / "badver.h5", "a") as f:
        f.attrs["format_version"] = "one"
    meta = json.loads((tmp_path / "fit" / "best.json").read_text())
    shutil.copytree(tmp_path / "fit", tmp_path / "strver")
    (tmp_path / "strver" / "best.json").write_text(json.dumps({**meta, "format_version": "1"}))
    pool = tmp_path / "jpool" / "happy"
    pool.mkdir(parents=True)
    save_png(make.images[0], pool / "a.png")
    record = {
        "file": "happy/a.png",
        "class": "happy",
        "judged": "happy",
        "p_intended": 0.9,
        "probs": [0.1] * 7,
        "classes": list(CLASSES),
        "judge": {"model": "m", "fingerprint": "f"},
    }
    (tmp_path / "jpool" / "judgement.jsonl").write_text(json.dumps(record) + "\n" + json.dumps([record]) + "\n")
    # A data file whose val and test splits are empty; a checkpoint and ensembles of the wrong shape or types.
    splits = store.read(tmp_path / "data.h5").splits
    store.write(
        tmp_path / "no_eval.h5",
        {"train": splits["train"], **{name: make_split(0) for name in ("val", "test")}},
    )
    shutil.copytree(tmp_path / "fit", tmp_path / "badtypes")
    (tmp_path / "badtypes" / "best.json").write_text(json.dumps({**meta, "model": 5}))
    zero = {"format": "fer-models-ensemble", "format_version": 1, "method": "mean"}
    zero["members"] = [{"checkpoint": "fit", "weight": 0}, {"checkpoint": "misfit", "weight": 0}]
    (tmp_path / "zero_ensemble.json").write_text(json.dumps(zero))
    text = {**zero, "members": [{"checkpoint": "fit", "weight": "0.5"}, {"checkpoint": "fit", "weight": "x"}]}
    (tmp_path / "text_ensemble.json").write_text(json.dumps(text))
    # FER+ votes aligned with fer.csv, but for two Training rows swapped (their Usage still agrees).
    usages = [line.rsplit(",", 1)[1] for line in (tmp_path / "fer.csv").read_text().splitlines()[1:]]
    votes = [f"{u},fer{i:07d}.png,10,0,0,0,0,0,0,0,0,0" for i, u in enumerate(usages)]
    votes[1], votes[4] = votes[4], votes[1]
    (tmp_path / "votes_swapped.csv").write_text("\n".join([VOTES_HEADER, *votes]) + "\n")
    (tmp_path / "latin1.yaml").write_bytes("template: caf\xe9\n".encode("latin-1"))  # not UTF-8
    (tmp_path / "big" / "happy").mkdir(parents=True)  # faces of another size than 48x48: every one is skipped
    save_png(np.zeros((96, 96), np.uint8), tmp_path / "big" / "happy" / "0.png")
    # A LoRA for another architecture: one layer's matrices of other shapes than the tiny model's (PyTorch's
    # RuntimeError once escaped as a traceback).
    lora_key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora"
    save_file(
        {f"{lora_key}.down.weight": torch.zeros(2, 5), f"{lora_key}.up.weight": torch.zeros(5, 2)},
        tmp_path / "misfit_lora.safetensors",
    )
    # A pool whose faces were judged over two class lists (one before the pool gained contempt): scores that do
    # not compare.
    (tmp_path / "jmixed" / "happy").mkdir(parents=True)
    mixed = []
    for i, names in enumerate((list(CLASSES), [*CLASSES, "contempt"])):
        save_png(make.images[i], tmp_path / "jmixed" / "happy" / f"{i}.png")
        probs = [1 / len(names)] * len(names)
        digest = file_digest(tmp_path / "jmixed" / "happy" / f"{i}.png")
        mixed.append({**record, "file": f"happy/{i}.png", "probs": probs, "classes": names, "sha256": digest})
    (tmp_path / "jmixed" / "judgement.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mixed))
    return tmp_path


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under root with its size and modification time."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


CASES = [
    # fer-synth
    (synth_cli, ["stats", "{w}/missing.csv"], "no such file"),
    (synth_cli, ["stats", "{w}/notes.txt"], "notes.txt"),
    (synth_cli, ["stats", "{w}/fake.h5"], "fake.h5"),
    (synth_cli, ["stats", "{w}/empty"], "empty"),
    (synth_cli, ["pack", "{w}/fer.csv", "--out", "{w}/o.h5", "--val-fraction", "0"], "--val-fraction"),
    (synth_cli, ["pack", "{w}/fer.csv", "--out", "{w}/o.h5", "--val-fraction", "1.5"], "--val-fraction"),
    (synth_cli, ["pack", "{w}/only_test", "--out", "{w}/o.h5"], "no training split"),
    (synth_cli, ["pack", "{w}/fer.csv"], "--out"),
    (synth_cli, ["balance", "{w}/missing"], "no such file"),
    (synth_cli, ["balance", "{w}/fer.csv", "--pool", "{w}/nopool", "--out", "{w}/b.h5"], "nopool"),
    (
        synth_cli,
        ["balance", "{w}/fer.csv", "--pool", "{w}/empty", "--out", "{w}/b.h5", "--splits", "train,bogus"],
        "bogus",
    ),
    (synth_cli, ["balance", "{w}/fer.csv", "--pool", "{w}/empty", "--out", "{w}/b.h5", "--splits", ","], "--splits"),
    (synth_cli, ["balance", "{w}/fer.csv", "--pool", "{w}/empty", "--out", "{w}/b.h5", "--target", "lots"], "lots"),
    (synth_cli, ["balance", "{w}/fer.csv", "--method", "smoat", "--out", "{w}/b.h5"], "--method"),
    (synth_cli, ["balance", "{w}/fer.csv", "--method", "smote", "--out", "{w}/b.h5"], "--method ros"),  # 2 disgust rows
    (
        synth_cli,
        [
            "balance",
            "{w}/fer.csv",
            "--method",
            "ros",
            "--splits",
            "train,test",
            "--force-synthetic-eval",
            "--out",
            "{w}/b.h5",
        ],
        "train split only",
    ),
    (synth_cli, ["prompts", "-e", "grumpy"], "unknown emotion 'grumpy'"),
    (synth_cli, ["prompts", "-e", "fear", "--prompts", "{w}/missing.yaml"], "missing.yaml"),
    (synth_cli, ["prompts", "-e", "fear", "--prompts", "{w}/bad.yaml"], "bad.yaml"),
    (synth_cli, ["generate", "-e", "grumpy", "--n", "1"], "unknown emotion 'grumpy'"),
    (synth_cli, ["generate", "-e", "fear", "--n", "0"], "--n"),
    (synth_cli, ["generate", "-e", "fear", "--n", "1", "--steps", "0"], "--steps"),
    (
        synth_cli,
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--size",
            "100",
            "--model",
            "tiny-random",
            "--no-faces",
            "--out",
            "{w}/g",
        ],
        "multiple of 8",
    ),
    (
        synth_cli,
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--size",
            "65536",
            "--model",
            "tiny-random",
            "--no-faces",
            "--out",
            "{w}/g",
        ],
        "from 8 to 2048",
    ),
    (synth_cli, ["generate", "-e", "fear", "--n", "1", "--scheduler", "magic"], "--scheduler"),
    (synth_cli, ["generate", "-e", "fear", "--n", "1", "--model", "{w}/missing.safetensors"], "no such file"),
    (synth_cli, ["generate", "-e", "fear", "--n", "1", "--no-faces", "--keep-raw"], "--keep-raw"),
    (synth_cli, ["crop", "{w}/missing", "--out", "{w}/c"], "missing"),
    (synth_cli, ["crop", "{w}/empty", "--out", "{w}/c"], "no images"),
    (synth_cli, ["crop", "{w}/empty", "--out", "{w}/c", "--policy", "some"], "--policy"),
    (synth_cli, ["stats", "{w}/fer.csv", "--ferplus", "{w}/missing.csv"], "no such FER+ file"),
    (synth_cli, ["stats", "{w}/fer.csv", "--ferplus", "{w}/notes.txt"], "not a FER+ vote file"),
    (synth_cli, ["pack", "{w}/fer.csv", "--ferplus", "{w}/votes_short.csv", "--out", "{w}/o.h5"], "do not align"),
    (synth_cli, ["pack", "{w}/data.h5", "--ferplus", "{w}/votes_short.csv", "--out", "{w}/o.h5"], "FER2013's CSV"),
    (synth_cli, ["stats", "{w}/fer.csv", "--near-distance", "65"], "--near-distance"),
    (synth_cli, ["generate", "-e", "contempt", "--n", "1"], "ferplus class list"),
    (synth_cli, ["generate", "-e", "fear", "--n", "1", "--class-list", "affectnet"], "--class-list"),
    (synth_cli, ["export", "{w}/missing.h5", "{w}/x"], "no such file"),
    (synth_cli, ["export", "{w}/fake.h5", "{w}/x"], "fake.h5"),
    (synth_cli, ["export", "{w}/data.h5", "{w}/x", "--format", "parquet"], "--format"),
    (synth_cli, ["export", "{w}/data.h5", "{w}/x", "--shard-size", "0"], "--shard-size"),
    (synth_cli, ["export", "{w}/data.h5", "{w}/only_test"], "not an earlier"),
    (synth_cli, ["export", "{w}/data.h5", "{w}/afile/x"], "afile"),
    (synth_cli, ["report", "{w}/missing.csv"], "no such file"),
    (synth_cli, ["report", "{w}/fer.csv", "--pool", "{w}/nopool"], "nopool"),
    (synth_cli, ["report", "{w}/fer.csv", "--out", "{w}"], "overlaps"),
    (synth_cli, ["report", "{w}/fer.csv", "--out", "{w}/notes.txt"], "not a folder"),
    # fer-models
    (models_cli, ["train", "--data", "{w}/missing.h5"], "no such data file"),
    (models_cli, ["train", "--data", "{w}/fake.h5"], "fake.h5"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--model", "resnet-9000"], "unknown model"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--recipe", "{w}/bad.yaml"], "bad.yaml"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--lr", "-1"], "--lr"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--scale", "big"], "--scale"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--batch-size", "0"], "--batch-size"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--out", "{w}/run", "--resume"], "nothing to resume"),
    (models_cli, ["evaluate", "{w}/missing"], "no such checkpoint"),
    (models_cli, ["evaluate", "{w}/fake.safetensors", "--data", "{w}/data.h5"], "fake"),
    (models_cli, ["evaluate", "{w}/missing", "--tta", "spin"], "--tta"),
    (models_cli, ["ensemble", "{w}/missing1", "{w}/missing2", "--data", "{w}/data.h5"], "missing1"),
    (models_cli, ["ensemble", "{w}/one", "--data", "{w}/data.h5"], "two members"),
    (models_cli, ["compare", "{w}/data.h5", "--epochs", "2", "--train-images", "100"], "not both"),
    (models_cli, ["compare", "{w}/data.h5", "--ensemble", "data,smote"], "smote is none of"),
    (models_cli, ["predict", "{w}/missing.jpg"], "no such file"),
    (models_cli, ["predict", "{w}/notes.txt"], "not an image or video"),
    (models_cli, ["predict", "{w}/only_test", "--model", "{w}/missing"], "no such checkpoint"),
    (models_cli, ["predict", "{w}/only_test", "--model", "{w}/x.pt"], "pickled"),
    (models_cli, ["predict", "{w}/only_test", "--csv", "{w}/notes.txt"], "exists"),
    (models_cli, ["predict", "{w}/only_test", "--csv", "{w}/hard.png", "--overwrite"], "overlaps the input"),
    (models_cli, ["predict", "{w}/only_test", "--annotate", "{w}/only_test/test"], "overlaps"),
    (models_cli, ["predict", "{w}/only_test", "--every", "0"], "--every"),
    (models_cli, ["predict", "{w}/only_test", "--filters", "lenient"], "--filters"),
    (models_cli, ["predict", "{w}/only_test", "--explain", "{w}/only_test/test"], "overlaps"),
    (models_cli, ["demo", "--model", "{w}/missing"], "no such checkpoint"),
    (models_cli, ["demo", "--model", "{w}/x.pt"], "pickled"),
    (models_cli, ["demo", "--port", "0"], "--port"),
    (models_cli, ["demo", "--share", "maybe"], "--share"),
    (models_cli, ["export", "{w}/missing"], "no such checkpoint"),
    (models_cli, ["export", "{w}/fit", "--out", "{w}/notes.txt"], "exists"),
    (models_cli, ["export", "{w}/fit", "--out", "{w}/model.pb"], ".onnx"),
    (models_cli, ["export", "{w}/fit", "--format", "tflite"], "--format"),
    (models_cli, ["report", "{w}/missing"], "no such checkpoint"),
    (models_cli, ["report", "{w}/fake.safetensors"], "fake"),
    # damaged or foreign data files
    (synth_cli, ["stats", "{w}/corrupt.csv.gz"], "corrupt.csv.gz"),
    (synth_cli, ["pack", "{w}/corrupt.csv.gz", "--out", "{w}/o.h5"], "cannot read"),
    (synth_cli, ["stats", "{w}/label9.h5"], "label9.h5"),
    (models_cli, ["train", "--data", "{w}/label9.h5", "--out", "{w}/r9"], "damaged"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--recipe", "{w}/broken.yaml"], "not valid YAML"),
    (models_cli, ["evaluate", "{w}/x.pt", "--data", "{w}/data.h5"], "pickled"),
    (models_cli, ["evaluate", "{w}/misfit", "--data", "{w}/data.h5"], "do not fit"),
    (models_cli, ["evaluate", "{w}/bad_ensemble.json", "--data", "{w}/data.h5"], "bad_ensemble.json"),
    (models_cli, ["evaluate", "{w}/empty_ensemble.json", "--data", "{w}/data.h5"], "damaged ensemble"),
    (models_cli, ["evaluate", "{w}/misfit", "--data", "{w}/data.h5", "--split", "holdout"], "no split 'holdout'"),
    # outputs that cannot be written: a parent that is a file
    (synth_cli, ["pack", "{w}/fer.csv", "--out", "{w}/afile/o.h5"], "afile"),
    (synth_cli, ["pack", "{w}/fer.csv", "--out", "{w}/afile/folder"], "afile"),
    (synth_cli, ["balance", "{w}/fer.csv", "--pool", "{w}/empty", "--out", "{w}/afile/b.h5"], "afile"),
    (
        synth_cli,
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--model",
            "tiny-random",
            "--no-faces",
            "--size",
            "32",
            "--out",
            "{w}/afile/g",
        ],
        "afile",
    ),
    (synth_cli, ["crop", "{w}/only_test/test/happy", "--out", "{w}/afile/c", "--backend", "haar"], "afile"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--out", "{w}/afile/run"], "afile"),
    (models_cli, ["evaluate", "{w}/fit", "--data", "{w}/data.h5", "--out", "{w}/afile/e"], "afile"),
    (models_cli, ["ensemble", "{w}/fit", "{w}/fit", "--data", "{w}/data.h5", "--out", "{w}/afile/e.json"], "afile"),
    # folders that hold something else, and inputs as outputs
    (synth_cli, ["pack", "{w}/fer.csv", "--out", "{w}/only_test"], "not an earlier"),
    (synth_cli, ["crop", "{w}/only_test/test/happy", "--out", "{w}/only_test", "--backend", "haar"], "overlaps"),
    (
        synth_cli,
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--model",
            "tiny-random",
            "--no-faces",
            "--size",
            "32",
            "--out",
            "{w}/only_test",
        ],
        "not an earlier",
    ),
    (models_cli, ["train", "--data", "{w}/data.h5", "--out", "{w}/only_test"], "not an earlier"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--out", "{w}/run", "--resume", "--overwrite"], "choose one"),
    (synth_cli, ["report", "{w}/fer.csv", "--out", "{w}/afile/r"], "afile"),
    (synth_cli, ["report", "{w}/only_test", "--out", "{w}/only_test/test"], "overlaps"),
    (models_cli, ["report", "{w}/fit", "--out", "{w}/only_test"], "not an earlier"),
    # everything a command reads is an input: the data, checkpoints and their weights, members, recipes, prompts,
    # the face model, pools; as given, through a symbolic or a hard link, or as the folder holding them
    (models_cli, ["ensemble", "{w}/fit", "{w}/misfit", "--data", "{w}/data.h5", "--out", "{w}/data.h5"], "overlaps"),
    (
        models_cli,
        ["ensemble", "{w}/fit", "{w}/misfit", "--data", "{w}/data.h5", "--out", "{w}/fit/best.json"],
        "overlaps",
    ),
    (
        models_cli,
        ["ensemble", "{w}/fit", "{w}/misfit", "--data", "{w}/data.h5", "--out", "{w}/misfit/best.safetensors"],
        "overlaps",
    ),
    (models_cli, ["ensemble", "{w}/fit", "{w}/misfit", "--data", "{w}/link.h5", "--out", "{w}/data.h5"], "overlaps"),
    (models_cli, ["ensemble", "{w}/fit", "{w}/misfit", "--data", "{w}/data.h5", "--out", "{w}/hard.h5"], "overlaps"),
    (models_cli, ["ensemble", "{w}/fit", "{w}/misfit", "--data", "{w}/data.h5", "--out", "{w}/fit/e.json"], "overlaps"),
    (
        models_cli,
        ["predict", "{w}/only_test", "--model", "{w}/fit", "--annotate", "{w}/fit", "--overwrite"],
        "overlaps",
    ),
    (models_cli, ["predict", "{w}/only_test", "--model", "{w}/fit", "--annotate", "{w}", "--overwrite"], "overlaps"),
    (
        models_cli,
        ["predict", "{w}/only_test", "--model", "{w}/fit", "--csv", "{w}/fit/best.json", "--overwrite"],
        "overlaps",
    ),
    (models_cli, ["predict", "{w}/only_test", "--json", "{w}/only_test/p.json"], "overlaps"),
    (
        models_cli,
        [
            "predict",
            "{w}/only_test",
            "--annotate",
            "{w}/models",
            "--overwrite",
            "--face-model",
            "{w}/models/face.tflite",
        ],
        "overlaps",
    ),
    (
        models_cli,
        ["evaluate", "{w}/fit", "--data", "{w}/evalout/evaluation-test.npz", "--out", "{w}/evalout"],
        "overlaps",
    ),
    (
        models_cli,
        ["train", "--data", "{w}/data.h5", "--weights", "{w}/fit/best.safetensors", "--out", "{w}/fit", "--overwrite"],
        "overlaps",
    ),
    (
        models_cli,
        ["train", "--data", "{w}/data.h5", "--recipe", "{w}/recipes/mine.yaml", "--out", "{w}/recipes", "--overwrite"],
        "overlaps",
    ),
    (models_cli, ["train", "--data", "{w}/link.h5", "--out", "{w}", "--overwrite"], "overlaps"),
    (models_cli, ["export", "{w}/fit", "--out", "{w}/fit/best.json", "--overwrite"], "overlaps"),
    (models_cli, ["judge", "{w}/fit", "--model", "{w}/fit"], "overlaps"),
    (models_cli, ["report", "{w}/fit", "--out", "{w}/fit", "--overwrite"], "overlaps"),
    (models_cli, ["compare", "{w}/data.h5", "--out", "{w}", "--epochs", "1"], "overlaps"),
    (synth_cli, ["export", "{w}/data.h5", "{w}", "--overwrite"], "overlaps"),
    (synth_cli, ["pack", "{w}/data.h5", "--out", "{w}/link.h5"], "overlaps"),
    (synth_cli, ["pack", "{w}/fer.csv", "--out", "{w}/fer.csv"], "overlaps"),
    (
        synth_cli,
        ["pack", "{w}/fer.csv", "--ferplus", "{w}/votes_short.csv", "--out", "{w}/votes_short.csv"],
        "overlaps",
    ),
    (synth_cli, ["balance", "{w}/fer.csv", "--pool", "{w}/jpool", "--out", "{w}/jpool/judgement.jsonl"], "overlaps"),
    (synth_cli, ["report", "{w}/fer.csv", "--pool", "{w}/jpool", "--out", "{w}/jpool/r"], "overlaps"),
    (
        synth_cli,
        [
            "crop",
            "{w}/only_test/test/happy",
            "--out",
            "{w}/models",
            "--overwrite",
            "--face-model",
            "{w}/models/face.tflite",
        ],
        "overlaps",
    ),
    (
        synth_cli,
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--model",
            "tiny-random",
            "--no-faces",
            "--size",
            "32",
            "--prompts",
            "{w}/prompts/mine.yaml",
            "--out",
            "{w}/prompts",
            "--overwrite",
        ],
        "overlaps",
    ),
    # the commands since: predict --explain, demo, balance --method and compare's leaderboard, through the resolver
    (
        models_cli,
        ["predict", "{w}/only_test", "--model", "{w}/fit", "--explain", "{w}/fit", "--overwrite"],
        "overlaps",
    ),
    (
        models_cli,
        [
            "predict",
            "{w}/only_test",
            "--explain",
            "{w}/models",
            "--overwrite",
            "--face-model",
            "{w}/models/face.tflite",
        ],
        "overlaps",
    ),
    (models_cli, ["predict", "{w}/only_test", "--explain", "{w}/jpool"], "not an earlier"),
    (models_cli, ["predict", "{w}/only_test", "--explain", "{w}/notes.txt"], "is a file"),
    (models_cli, ["predict", "{w}/only_test", "--explain", "{w}/afile/x"], "afile"),
    (models_cli, ["demo", "--device", "nonsense"], "--device 'nonsense'"),
    (models_cli, ["demo", "--model", "{w}/strver"], "format version '1'"),
    (models_cli, ["demo", "--model", "{w}/misfit"], "do not fit"),
    (synth_cli, ["balance", "{w}/fer.csv", "--method", "ros", "--out", "{w}/fer.csv"], "overlaps"),
    (synth_cli, ["balance", "{w}/data.h5", "--method", "ros", "--out", "{w}/link.h5"], "overlaps"),
    (synth_cli, ["balance", "{w}/fer.csv", "--method", "ros", "--out", "{w}/only_test"], "not an earlier"),
    (synth_cli, ["balance", "{w}/fer.csv", "--method", "ros", "--out", "{w}/afile/b.h5"], "afile"),
    (synth_cli, ["balance", "{w}/badver.h5", "--method", "ros", "--out", "{w}/b.h5"], "format version 'one'"),
    (models_cli, ["compare", "{w}/data.h5", "--out", "{w}/only_test", "--epochs", "1"], "not an earlier"),
    (
        models_cli,
        ["compare", "{w}/data.h5", "--recipe", "{w}/recipes/mine.yaml", "--out", "{w}/recipes", "--epochs", "1"],
        "overlaps",
    ),
    # two outputs of one command in one place
    (models_cli, ["predict", "{w}/only_test", "--json", "{w}/p.out", "--csv", "{w}/p.out"], "same place"),
    (models_cli, ["predict", "{w}/only_test", "--json", "{w}/ann/p.json", "--annotate", "{w}/ann"], "same place"),
    (
        synth_cli,
        ["crop", "{w}/only_test/test/happy", "--out", "{w}/c", "--keep-rejects", "{w}/c/rejects", "--backend", "haar"],
        "same place",
    ),
    (models_cli, ["predict", "{w}/only_test", "--annotate", "{w}/ann", "--explain", "{w}/ann"], "same place"),
    (models_cli, ["predict", "{w}/only_test", "--annotate", "{w}/ann", "--explain", "{w}/ann/cam"], "same place"),
    # devices that are not, or not here
    (models_cli, ["evaluate", "{w}/fit", "--data", "{w}/data.h5", "--device", "nonsense"], "--device 'nonsense'"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--out", "{w}/r", "--device", "cuda:99"], "--device cuda:99"),
    (models_cli, ["ensemble", "{w}/fit", "{w}/misfit", "--data", "{w}/data.h5", "--device", "tpu"], "--device"),
    (models_cli, ["predict", "{w}/only_test", "--device", "gpu"], "--device 'gpu'"),
    (models_cli, ["judge", "{w}/jpool", "--device", "nonsense"], "--device 'nonsense'"),
    (models_cli, ["compare", "{w}/data.h5", "--out", "{w}/cmp", "--device", "cuda:99"], "--device cuda:99"),
    # a variant's setting is checked before the --out folder is claimed (it once left a folder holding a lock)
    (models_cli, ["compare", "{w}/data.h5", "--out", "{w}/cmp", "--variant", "no_such_setting=1"], "no_such_setting"),
    (models_cli, ["compare", "{w}/data.h5", "{w}/data.h5", "--out", "{w}/cmp"], "given more than once"),
    (
        synth_cli,
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--model",
            "tiny-random",
            "--no-faces",
            "--size",
            "32",
            "--device",
            "nonsense",
            "--out",
            "{w}/g",
        ],
        "--device 'nonsense'",
    ),
    # versions that are not whole numbers, judgements of the wrong shape, FER+ rows moved within a split
    (synth_cli, ["stats", "{w}/badver.h5"], "format version 'one'"),
    (models_cli, ["train", "--data", "{w}/badver.h5", "--out", "{w}/r"], "format version 'one'"),
    (models_cli, ["evaluate", "{w}/strver", "--data", "{w}/data.h5"], "format version '1'"),
    (
        synth_cli,
        ["balance", "{w}/fer.csv", "--pool", "{w}/jpool", "--judged", "--out", "{w}/b.h5", "--allow-shortfall"],
        "judgement.jsonl:2: not a judgement record",
    ),
    (synth_cli, ["report", "{w}/fer.csv", "--pool", "{w}/jpool", "--out", "{w}/r"], "judgement.jsonl:2"),
    (models_cli, ["judge", "{w}/jpool", "--model", "{w}/fit"], "judgement.jsonl:2"),
    (
        synth_cli,
        ["pack", "{w}/fer.csv", "--ferplus", "{w}/votes_swapped.csv", "--out", "{w}/o.h5"],
        "out of the Image name order",
    ),
    (synth_cli, ["stats", "{w}/fer.csv", "--ferplus", "{w}/votes_swapped.csv"], "row 1 (fer0000004.png"),
    # numbers that are not usable though click takes them: too large, not ASCII digits, NaN or infinite, negative
    (
        synth_cli,
        ["balance", "{w}/fer.csv", "--method", "ros", "--out", "{w}/b.h5", "--target", "9" * 20],
        "unknown target",
    ),
    (
        synth_cli,
        ["balance", "{w}/fer.csv", "--method", "ros", "--out", "{w}/b.h5", "--target", "\u00b2"],
        "unknown target",
    ),
    (synth_cli, ["report", "{w}/fer.csv", "--out", "{w}/r", "--seed", "-1"], "--seed"),
    (synth_cli, ["crop", "{w}/only_test", "--out", "{w}/c", "--backend", "haar", "--margin", "nan"], "margin nan"),
    (synth_cli, ["crop", "{w}/only_test", "--out", "{w}/c", "--backend", "haar", "--crop-size", "100000"], "at most"),
    (synth_cli, ["crop", "{w}/only_test", "--out", "{w}/c", "--backend", "haar", "--haar-scale-factor", "nan"], "> 1"),
    # a prompt file that is not UTF-8; a dataset whose every image is left out says why; a file that is not ours
    (synth_cli, ["prompts", "-e", "fear", "--prompts", "{w}/latin1.yaml"], "not UTF-8"),
    (synth_cli, ["stats", "{w}/big"], "size 96x96"),
    (synth_cli, ["pack", "{w}/fer.csv", "--out", "{w}/fake.h5"], "not an earlier output"),
    (synth_cli, ["balance", "{w}/fer.csv", "--method", "ros", "--out", "{w}/fake.h5"], "not an earlier output"),
    # splits without rows to score, checkpoint and ensemble files of the wrong types, an output over another file
    (models_cli, ["evaluate", "{w}/fit", "--data", "{w}/no_eval.h5"], "the test split is empty"),
    (
        models_cli,
        ["ensemble", "{w}/fit", "{w}/fit", "--data", "{w}/no_eval.h5", "--method", "weighted", "--out", "{w}/e.json"],
        "the val split is empty",
    ),
    (models_cli, ["evaluate", "{w}/badtypes", "--data", "{w}/data.h5"], "'model' is missing or not a str"),
    (models_cli, ["evaluate", "{w}/zero_ensemble.json", "--data", "{w}/data.h5"], "weights that sum to 0"),
    (models_cli, ["report", "{w}/text_ensemble.json", "--out", "{w}/r"], "damaged ensemble file"),
    (models_cli, ["train", "--data", "{w}/data.h5", "--weights", "{w}/fake.safetensors"], "not a readable"),
    (models_cli, ["ensemble", "{w}/fit", "{w}/fit", "--data", "{w}/data.h5", "--out", "{w}/notes.txt"], "exists"),
    # model files that cannot be loaded leave no output folder behind (it was once made, holding a lock file)
    (
        synth_cli,
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--model",
            "tiny-random",
            "--lora",
            "{w}/misfit_lora.safetensors",
            "--no-faces",
            "--size",
            "32",
            "--out",
            "{w}/g",
        ],
        "cannot be loaded into this model: size mismatch",
    ),
    (
        synth_cli,
        [
            "generate",
            "-e",
            "fear",
            "--n",
            "1",
            "--model",
            "{w}/recipes",
            "--no-faces",
            "--size",
            "32",
            "--out",
            "{w}/g",
        ],
        "without model_index.json",
    ),
    (
        synth_cli,
        ["balance", "{w}/fer.csv", "--pool", "{w}/jmixed", "--judged", "--out", "{w}/b.h5", "--allow-shortfall"],
        "judged over other classes than the rest",
    ),
]


@pytest.mark.parametrize("cli, args, message", CASES, ids=[" ".join(c[1][:3]) for c in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(world, cli, args, message, monkeypatch):
    monkeypatch.chdir(world)
    monkeypatch.setenv("FER_SYNTH_OFFLINE", "1")
    before = tree(world)
    result = CliRunner().invoke(cli, [a.format(w=world) for a in args])
    assert result.exit_code == 2, (result.output, result.exc_info)
    assert isinstance(result.exception, SystemExit), result.exc_info  # no escaped exception, no traceback
    assert "Traceback" not in result.output
    assert message in result.output, result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error_lines) == 1, result.output
    assert "Usage:" not in result.output, result.output  # click's usage block too is one line: where help is
    assert tree(world) == before, "a failed command changed the files"


def test_store_refuses_what_is_not_its_format(tmp_path):
    """The HDF5 reader names the file for anything that is not ours (the CLI cases above rely on it)."""
    (tmp_path / "x.h5").write_text("text")
    with pytest.raises(Exception) as info:
        store.read_attrs(tmp_path / "x.h5")
    assert "x.h5" in str(info.value) and os.fspath(tmp_path) in str(info.value)
