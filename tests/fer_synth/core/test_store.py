import h5py
import numpy as np
import pytest

from fer_synth.core import store
from fer_synth.core.classes import CLASSES
from fer_synth.core.errors import FerError
from tests.conftest import make_split


def test_round_trip(tmp_path):
    splits = {"train": make_split(30, 0, synthetic=5), "val": make_split(7, 1), "test": make_split(7, 2)}
    path = store.write(tmp_path / "d.h5", splits, attrs={"seed": 3, "plan": {"fear": 4}})
    ds = store.read(path)
    assert list(ds) == ["train", "val", "test"]
    for name, split in splits.items():
        got = ds[name]
        np.testing.assert_array_equal(got.images, split.images)
        np.testing.assert_array_equal(got.labels, split.labels)
        np.testing.assert_array_equal(got.source, split.source)
        assert list(got.origin) == list(split.origin)
        assert list(got.prompt) == list(split.prompt)
        np.testing.assert_array_equal(got.seed, split.seed)
    assert ds.attrs["classes"] == list(CLASSES)
    assert ds.attrs["plan"] == {"fear": 4}
    assert ds.attrs["seed"] == 3
    assert ds.attrs["synthetic_in_eval"] is False or ds.attrs["synthetic_in_eval"] == 0


def test_schema_and_legacy_links(tiny_h5):
    with h5py.File(tiny_h5, "r") as f:
        assert f["train/images"].dtype == np.uint8 and f["train/images"].shape == (70, 48, 48)
        assert f["train/images"].chunks is not None
        assert f["train/labels"].dtype == np.int64
        assert h5py.check_enum_dtype(f["train/source"].dtype) == {"real": 0, "synthetic": 1}
        assert f.attrs["format_version"] == store.FORMAT_VERSION
        for link, target in store.LEGACY_LINKS.items():
            assert isinstance(f.get(link, getlink=True), h5py.SoftLink)
            np.testing.assert_array_equal(f[link][()], f[target][()])


def test_synthetic_in_eval_is_recorded(tmp_path):
    path = store.write(tmp_path / "d.h5", {"train": make_split(14), "test": make_split(14, synthetic=3)})
    assert store.read_attrs(path)["synthetic_in_eval"]


def test_atomic_write_leaves_old_file_on_failure(tmp_path, tiny_h5):
    before = tiny_h5.read_bytes()
    with pytest.raises(ValueError):
        store.write(tiny_h5, {"train": make_split(7), "bogus": make_split(7)})
    assert tiny_h5.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [tiny_h5.name]


def test_rejects_other_files_and_versions(tmp_path, tiny_h5):
    with h5py.File(tiny_h5, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(store.FormatError, match="version 99"):
        store.read(tiny_h5)
    plain = tmp_path / "plain.h5"
    h5py.File(plain, "w").close()
    with pytest.raises(store.FormatError, match="not a fer_synth"):
        store.read(plain)
    junk = tmp_path / "junk.h5"
    junk.write_text("hello")
    with pytest.raises(store.FormatError, match="not an HDF5"):
        store.read(junk)


def test_fingerprint_tracks_content():
    a = {"train": make_split(10)}
    b = {"train": make_split(10)}
    assert store.fingerprint(a) == store.fingerprint(b)
    b["train"].labels[0] = (b["train"].labels[0] + 1) % 7
    assert store.fingerprint(a) != store.fingerprint(b)


@pytest.mark.parametrize("compression", ["gzip", "lzf"])
def test_optional_compression(tmp_path, compression):
    split = make_split(20)
    path = store.write(tmp_path / "c.h5", {"train": split}, compression=compression)
    with h5py.File(path, "r") as f:
        assert f["train/images"].compression == compression
    np.testing.assert_array_equal(store.read_split(path, "train", provenance=False).images, split.images)
    with pytest.raises(FerError, match="unknown compression"):
        store.write(tmp_path / "d.h5", {"train": split}, compression="zstd")
