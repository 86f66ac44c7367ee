"""Datasets carry their class list: FER2013's seven by default, FER+'s eight; the HDF5 file stores it."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fer_synth.core import store
from fer_synth.core.classes import CLASSES, FER2013, FERPLUS, NUM_CLASSES, UnknownClassError, class_list, known_list
from fer_synth.core.dataset import Split
from fer_synth.data.balance import BalanceConfig, balance
from fer_synth.data.readers import DatasetError, read_dataset
from tests.conftest import make_split
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, write_csv, write_pool


def eight_class_split(n: int, seed: int = 0, soft: bool = False) -> Split:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 8
    soft_labels = rng.dirichlet(np.ones(8), n).astype(np.float32) if soft else None
    return Split(rng.integers(0, 256, (n, 48, 48), dtype=np.uint8), labels, soft_labels=soft_labels, classes=FERPLUS)


def test_the_public_constants_stay_fer2013s():
    assert FER2013.names == CLASSES and NUM_CLASSES == 7
    assert FERPLUS.names[:7] == CLASSES and FERPLUS[7] == "contempt"  # indices 0-6 mean the same in both
    assert FERPLUS.index("Contemptuous") == 7 and FERPLUS.resolve("anger") == "angry"
    with pytest.raises(UnknownClassError, match="ferplus class list"):
        FER2013.resolve("contempt")
    assert class_list(list(FERPLUS)) is FERPLUS and class_list(["cat", "dog"]).name == "custom"
    assert known_list("ferplus") is FERPLUS
    with pytest.raises(UnknownClassError, match="fer2013, ferplus"):
        known_list("affectnet")


def test_an_eight_class_file_with_soft_labels_round_trips(tmp_path):
    splits = {
        "train": eight_class_split(16, 0, soft=True),
        "val": eight_class_split(8, 1, soft=True),
        "test": eight_class_split(8, 2),
    }
    path = store.write(tmp_path / "plus.h5", splits)
    attrs = store.read_attrs(path)
    assert attrs["format_version"] == 1 and attrs["classes"] == list(FERPLUS)  # older readers refuse it by its list
    assert store.classes_of(path) == FERPLUS
    back = store.read(path)
    assert back.classes == FERPLUS and back["train"].counts().tolist() == [2] * 8
    assert np.array_equal(back["train"].soft_labels, splits["train"].soft_labels)
    assert back["test"].soft_labels is None
    chunks = list(store.iter_split(path, "train", rows=5))
    assert [len(c) for c in chunks] == [5, 5, 5, 1]
    assert np.array_equal(np.concatenate([c.soft_labels for c in chunks]), splits["train"].soft_labels)
    with pytest.raises(ValueError, match="class list"):
        store.write(tmp_path / "mixed.h5", {"train": eight_class_split(8), "val": make_split(7)})


def test_a_file_without_soft_labels_reads_as_before(tmp_path):
    path = store.write(tmp_path / "old.h5", {"train": make_split(14), "val": make_split(7, 1)})
    with h5py.File(path, "r") as f:
        assert "soft_labels" not in f["train"]
    train = store.read(path)["train"]
    assert train.classes == FER2013 and train.soft_labels is None
    with h5py.File(path, "r+") as f:
        f.attrs["classes"] = '["happy", "happy"]'
    with pytest.raises(store.FormatError, match="not a list of distinct names"):
        store.read_attrs(path)


def test_splits_relabel_by_name_and_concatenate_soft_labels():
    plus = eight_class_split(16, soft=True)
    seven, kept = plus.with_classes(FER2013)
    assert len(seven) == 14 and not kept[plus.labels == 7].any()
    assert [FER2013[y] for y in seven.labels] == [FERPLUS[y] for y in plus.labels[kept]]
    mixed = Split.concat([plus, eight_class_split(8)])
    assert mixed.soft_labels.shape == (24, 8)
    assert np.array_equal(mixed.soft_labels[16:], np.eye(8, dtype=np.float32)[mixed.labels[16:]])


def test_folders_take_their_class_list(tmp_path):
    rows = fer_rows(DEFAULT_COUNTS)
    root = tmp_path / "pool"
    write_pool(root, [2, 2, 2, 2, 2, 2, 2])
    (root / "contempt").mkdir()
    with pytest.raises(DatasetError, match="unknown class folder 'contempt'"):
        read_dataset(root)
    ds = read_dataset(root, classes=FERPLUS, resize=True)
    assert ds.classes == FERPLUS and ds["images"].counts().tolist() == [2] * 7 + [0]
    # A pool made for FER+ (with contempt) still balances FER2013: contempt faces are left out, and said so.
    csv = write_csv(tmp_path / "fer2013.csv", rows)
    pool = write_pool(tmp_path / "gen", [9] * 7)
    (pool / "contempt").mkdir()
    (pool / "contempt" / "x.png").write_bytes((pool / "happy" / "00000.png").read_bytes())
    result = balance(BalanceConfig(csv, tmp_path / "out.h5", pool=pool, allow_shortfall=True))
    assert any("left out 1 pool faces of contempt" in note for note in result.notes)
    assert store.classes_of(result.out) == FER2013
