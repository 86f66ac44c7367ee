"""``fer-synth export``: Hugging Face ImageFolder (loaded back with ``datasets``) and WebDataset tar shards."""

from __future__ import annotations

import json
import tarfile

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from fer_synth.cli import main
from fer_synth.core import store
from fer_synth.core.classes import FERPLUS
from fer_synth.core.dataset import Split
from fer_synth.data.export import export
from tests.conftest import make_split


@pytest.fixture
def h5(tmp_path):
    """7-class file: 20 train rows (4 synthetic, with provenance, one judged), 7 val, 7 test."""
    train = make_split(20, 0, synthetic=4)
    train.judge_score[16] = 0.9
    return store.write(tmp_path / "data.h5", {"train": train, "val": make_split(7, 1), "test": make_split(7, 2)})


def test_imagefolder_loads_with_hugging_face_datasets(h5, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "hf"
    result = CliRunner().invoke(main, ["export", str(h5), str(out), "--format", "imagefolder"])
    assert result.exit_code == 0, result.output
    loaded = datasets.load_dataset("imagefolder", data_dir=str(out), cache_dir=str(tmp_path / "cache"))
    assert {name: len(split) for name, split in loaded.items()} == {"train": 20, "validation": 7, "test": 7}
    original = store.read(h5)
    train = loaded["train"]
    # Rows keep the file's order: labels, pixels and provenance match row by row.
    for row in (0, 5, 19):
        item = train[row]
        assert item["label"] == original["train"].classes[original["train"].labels[row]]
        assert np.array_equal(np.asarray(item["image"]), original["train"].images[row])
        assert item["origin"] == original["train"].origin[row] and item["split"] == "train"
    synthetic = [r for r in train if r["source"] == "synthetic"]
    assert len(synthetic) == 4 and all(r["prompt"] == "a photo of a face" and r["seed"] >= 0 for r in synthetic)
    assert [r["judge_score"] for r in synthetic] == pytest.approx([0.9, -1, -1, -1])  # -1: not judged
    assert loaded["validation"][0]["split"] == "val"
    assert json.loads((out / "dataset.json").read_text())["export"]["counts"] == {"train": 20, "val": 7, "test": 7}


def test_webdataset_shards_of_the_given_size(h5, tmp_path):
    out = export(h5, tmp_path / "wds", "webdataset", shard_size=6).out
    assert sorted(p.name for p in out.glob("*.tar")) == [
        "test-000000.tar",
        "test-000001.tar",
        "train-000000.tar",
        "train-000001.tar",
        "train-000002.tar",
        "train-000003.tar",
        "val-000000.tar",
        "val-000001.tar",
    ]
    original = store.read(h5)["train"]
    rows = []
    for shard in sorted(out.glob("train-*.tar")):
        with tarfile.open(shard) as archive:
            names = archive.getnames()
            assert len(names) <= 12 and names[0].endswith(".png") and names[1] == names[0].replace(".png", ".json")
            for png, meta in zip(names[::2], names[1::2]):
                image = cv2.imdecode(np.frombuffer(archive.extractfile(png).read(), np.uint8), cv2.IMREAD_UNCHANGED)
                rows.append((png, image, json.load(archive.extractfile(meta))))
    assert [name for name, _, _ in rows][:2] == ["train-0000000.png", "train-0000001.png"] and len(rows) == 20
    for k, (_, image, meta) in enumerate(rows):
        assert np.array_equal(image, original.images[k]) and meta["label_index"] == original.labels[k]
    # The same file gives byte-identical shards (fixed member times and owners).
    again = export(h5, tmp_path / "wds2", "webdataset", shard_size=6).out
    assert (out / "train-000002.tar").read_bytes() == (again / "train-000002.tar").read_bytes()


def test_soft_labels_are_exported_and_the_output_rule_holds(tmp_path):
    rng = np.random.default_rng(0)
    soft = rng.dirichlet(np.ones(8), 8).astype(np.float32)
    split = Split(rng.integers(0, 256, (8, 48, 48), dtype=np.uint8), soft.argmax(1), soft_labels=soft, classes=FERPLUS)
    h5 = store.write(tmp_path / "plus.h5", {"train": split, "val": split.take(np.arange(2))})
    out = export(h5, tmp_path / "hf").out
    first = json.loads((out / "train" / "metadata.jsonl").read_text().splitlines()[0])
    assert first["soft_labels"] == pytest.approx(soft[0].tolist(), abs=1e-6) and first["label"] in FERPLUS
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["export", str(h5), str(tmp_path / "busy")])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    again = CliRunner().invoke(main, ["export", str(h5), str(out), "--format", "webdataset"])  # its own: replaced
    assert again.exit_code == 0 and not (out / "train").exists() and (out / "train-000000.tar").exists()
    bad = CliRunner().invoke(main, ["export", str(h5), str(tmp_path / "x"), "--format", "parquet"])
    assert bad.exit_code == 2 and "imagefolder" in bad.output
    with tarfile.open(out / "train-000000.tar") as archive:
        png = archive.extractfile("train-0000000.png").read()
    assert np.array_equal(cv2.imdecode(np.frombuffer(png, np.uint8), 0), split.images[0])
