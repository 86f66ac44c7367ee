import numpy as np
import pytest

from fer_synth.data.readers import DatasetError, read_dataset
from fer_synth.data.splits import protocol_splits
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, write_csv, write_kaggle, write_pool


@pytest.fixture
def rows():
    return fer_rows(DEFAULT_COUNTS)


@pytest.mark.parametrize("gz", [False, True])
def test_csv_splits_counts_and_origin(tmp_path, rows, gz):
    path = write_csv(tmp_path / ("f.csv.gz" if gz else "f.csv"), rows, gz=gz)
    ds = read_dataset(path)
    assert list(ds) == ["Training", "PublicTest", "PrivateTest"]
    for usage, counts in DEFAULT_COUNTS.items():
        assert ds[usage].counts().tolist() == counts
    # rows keep file order and their row number
    training = [r for r in rows if r[2] == "Training"]
    np.testing.assert_array_equal(ds["Training"].images[3], training[3][1])
    assert ds["PublicTest"].origin[0] == str(sum(DEFAULT_COUNTS["Training"]))


def test_csv_bad_rows_are_skipped_and_named(tmp_path, rows):
    path = write_csv(
        tmp_path / "f.csv", rows, extra_lines=("9," + " ".join(["0"] * 2304) + ",Training", "3,1 2 3,Training")
    )
    ds = read_dataset(path)
    reasons = dict(ds.attrs["skipped"])
    assert len(reasons) == 2 and "outside 0..6" in " ".join(reasons.values())


def test_not_a_fer_csv(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="not a FER2013 CSV"):
        read_dataset(tmp_path / "x.csv")


def test_kaggle_prefixes_recover_official_splits(tmp_path, rows):
    root = write_kaggle(tmp_path / "fer2013", rows, ext=".jpg")
    ds = read_dataset(root)
    assert list(ds) == ["test", "train"]
    protocol = protocol_splits(ds)
    assert protocol.train.counts().tolist() == DEFAULT_COUNTS["Training"]
    assert protocol.val.counts().tolist() == DEFAULT_COUNTS["PublicTest"]
    assert protocol.test.counts().tolist() == DEFAULT_COUNTS["PrivateTest"]


def test_kaggle_without_prefixes_holds_out_stratified_val(tmp_path, rows):
    root = write_kaggle(tmp_path / "k", rows, prefixes=False)
    protocol = protocol_splits(read_dataset(root), val_fraction=0.25, seed=3)
    n_train = sum(DEFAULT_COUNTS["Training"])
    assert len(protocol.train) + len(protocol.val) == n_train
    assert len(protocol.test) == len(rows) - n_train
    assert set(protocol.val.labels.tolist()) >= {0, 2, 3, 6}  # stratified: every sizeable class held out
    again = protocol_splits(read_dataset(root), val_fraction=0.25, seed=3)
    assert list(again.val.origin) == list(protocol.val.origin)
    other = protocol_splits(read_dataset(root), val_fraction=0.25, seed=4)
    assert list(other.val.origin) != list(protocol.val.origin)


def test_unusable_files_are_counted_and_skipped(tmp_path, rows):
    root = write_kaggle(tmp_path / "k", rows)
    (root / "train" / "fear" / "corrupt.png").write_bytes(b"not a png")
    (root / "train" / "fear" / "notes.txt").write_text("hello")
    import cv2

    cv2.imwrite(str(root / "train" / "fear" / "big.png"), np.zeros((64, 64), np.uint8))
    ds = read_dataset(root)
    reasons = dict(ds.attrs["skipped"])
    assert reasons == {
        "train/fear/big.png": "size 64x64, expected 48x48",
        "train/fear/corrupt.png": "unreadable image",
        "train/fear/notes.txt": "not an image file",
    }
    assert len(ds["train"]) == sum(DEFAULT_COUNTS["Training"])


def test_class_folders_with_aliases_resize_and_manifest(tmp_path):
    root = write_pool(tmp_path / "pool", [1, 0, 3, 0, 0, 0, 2])
    (root / "fear").rename(root / "fearful")
    ds = read_dataset(root, resize=True, synthetic=True)
    split = ds["images"]
    assert split.images.shape == (6, 48, 48)
    assert split.counts().tolist() == [1, 0, 3, 0, 0, 0, 2]
    assert split.n_synthetic == 6
    assert split.prompt[0] == "a angry face" and split.seed[0] == 1000


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        read_dataset(tmp_path / "empty")
    (tmp_path / "odd" / "contempt").mkdir(parents=True)
    with pytest.raises(DatasetError, match="unknown class folder 'contempt'.*angry, disgust"):
        read_dataset(tmp_path / "odd")
