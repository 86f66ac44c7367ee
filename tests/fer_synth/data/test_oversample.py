"""`balance --method ros|smote|smote-tomek|smote-enn|adasyn`: train only, after the split, val/test untouched byte for
byte, every added row traced to its parents, cleaning counted, seeded, --target as for generated faces."""

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from fer_synth.cli import main
from fer_synth.core import store
from fer_synth.core.dataset import REAL, SYNTHETIC
from fer_synth.core.errors import FerError
from fer_synth.data.balance import BalanceConfig, PackConfig, balance, pack
from fer_synth.data.oversample import METHODS, oversample
from tests.fer_synth.data_helpers import fer_rows, write_csv

COUNTS = {
    "Training": [12, 7, 10, 30, 9, 8, 14],
    "PublicTest": [2, 1, 2, 3, 2, 1, 2],
    "PrivateTest": [2, 1, 1, 3, 2, 2, 2],
}
CLEANING = ("smote-tomek", "smote-enn")


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    return write_csv(tmp_path_factory.mktemp("src") / "fer2013.csv", fer_rows(COUNTS))


def _groups(path, names=("val", "test")) -> dict[str, bytes]:
    """Every dataset of the named split groups, as raw bytes."""
    with h5py.File(path) as f:
        return {
            f"{g}/{k}": f[g][k][()].tobytes() if f[g][k].dtype.kind != "O" else repr(f[g][k][()]).encode()
            for g in names
            for k in f[g]
        }


def _on_parents_segment(image: np.ndarray, parents: list[np.ndarray]) -> bool:
    """A copy of its one parent, or within rounding (0.5 per pixel) of the segment between its two parents."""
    v = image.astype(float).ravel()
    a = parents[0].astype(float).ravel()
    if len(parents) == 1:
        return np.array_equal(v, a)
    d = parents[1].astype(float).ravel() - a
    lam = np.clip((d @ (v - a)) / (d @ d), 0, 1) if d @ d else 0.0
    return np.linalg.norm(a + lam * d - v) <= 0.5 * np.sqrt(v.size) + 1e-9


@pytest.mark.parametrize("method", METHODS.names())
def test_method_rebalances_train_only_with_traced_rows(tmp_path, csv, method):
    packed = pack(PackConfig(csv, tmp_path / "real.h5")).out
    out = balance(BalanceConfig(csv, tmp_path / f"{method}.h5", method=method, seed=3)).out
    assert _groups(out) == _groups(packed)  # val and test byte for byte as without balancing
    real, ds = store.read(packed), store.read(out)
    train = ds["train"]
    added = train.source == SYNTHETIC
    assert added.any() and ds.attrs["method"] == method and not ds.attrs["synthetic_in_eval"]
    assert set(train.origin[added]) == {method.split("-")[0]}
    assert (train.seed[added] == 3).all() and all("imbalanced-learn" in m for m in train.model[added])
    # the real rows kept are the real train rows, unchanged, in their order
    kept = train.origin[~added]
    position = {o: i for i, o in enumerate(real["train"].origin)}
    assert np.array_equal(train.images[~added], real["train"].images[[position[o] for o in kept]])
    assert (train.parents[~added] == "").all()
    for image, label, parents in zip(train.images[added], train.labels[added], train.parents[added]):
        rows = [position[o] for o in json.loads(parents)]  # every parent is a real train row of the same class
        assert len(rows) == (1 if method == "ros" else 2)
        assert (real["train"].labels[rows] == label).all()
        assert _on_parents_segment(image, [real["train"].images[r] for r in rows])
    if method in CLEANING:
        removed = ds.attrs["removed"]
        real_counts = np.array(COUNTS["Training"])
        gone = np.array([removed["real"][c] for c in train.classes])
        assert np.array_equal(np.bincount(train.labels[~added], minlength=7), real_counts - gone)
        assert len(removed["first_real"]) == min(5, gone.sum())
        assert any("removed" in note for note in ds.attrs["notes"])
    else:
        assert train.counts().tolist() == [30] * 7 or method == "adasyn"  # ADASYN's rounding may miss by a few
        assert (train.counts()[np.arange(7) != 3] > np.array(COUNTS["Training"])[np.arange(7) != 3]).all()


def test_methods_are_seeded(tmp_path, csv):
    first = store.read_attrs(balance(BalanceConfig(csv, tmp_path / "a.h5", method="smote", seed=1)).out)["fingerprint"]
    again = store.read_attrs(balance(BalanceConfig(csv, tmp_path / "b.h5", method="smote", seed=1)).out)["fingerprint"]
    other = store.read_attrs(balance(BalanceConfig(csv, tmp_path / "c.h5", method="smote", seed=2)).out)["fingerprint"]
    assert first == again != other


def test_target_works_as_for_generated_faces(tmp_path, csv):
    median = store.read_split(
        balance(BalanceConfig(csv, tmp_path / "m.h5", method="ros", target="median")).out, "train"
    )
    assert median.counts().tolist() == [12, 10, 10, 30, 10, 10, 14]  # median 10; nothing removed above it
    fixed = store.read_split(balance(BalanceConfig(csv, tmp_path / "f.h5", method="smote", target=15)).out, "train")
    assert fixed.counts().tolist() == [15, 15, 15, 30, 15, 15, 15]


def test_bad_requests_are_one_line_errors(tmp_path, csv):
    with pytest.raises(FerError, match="train split only"):
        balance(
            BalanceConfig(csv, tmp_path / "x.h5", method="smote", splits=("train", "val"), force_synthetic_eval=True)
        )
    with pytest.raises(FerError, match="unknown balance method"):
        balance(BalanceConfig(csv, tmp_path / "x.h5", method="smoat"))
    few = write_csv(tmp_path / "few.csv", fer_rows({**COUNTS, "Training": [12, 3, 10, 30, 9, 8, 14]}))
    with pytest.raises(FerError, match=r"disgust \(3\).*--method ros"):
        balance(BalanceConfig(few, tmp_path / "x.h5", method="smote"))
    assert not (tmp_path / "x.h5").exists()


def test_an_empty_class_stays_empty_and_is_said(tmp_path):
    csv = write_csv(tmp_path / "gap.csv", fer_rows({**COUNTS, "Training": [12, 0, 10, 30, 9, 8, 14]}))
    result = balance(BalanceConfig(csv, tmp_path / "gap.h5", method="ros"))
    assert result.splits["train"].counts()[1] == 0
    assert any("disgust" in note and "empty" in note for note in result.notes)


def test_cleaning_removal_counts_add_up():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), [30, 8, 25, 40, 20, 15, 35])
    from fer_synth.core.dataset import Split

    train = Split(
        rng.integers(0, 256, (len(labels), 48, 48), dtype=np.uint8), labels, origin=[str(i) for i in range(len(labels))]
    )
    result = oversample(train, "smote-enn", 40, seed=0)
    made = np.array([40, 40, 40, 40, 40, 40, 40]) - train.counts()
    assert np.array_equal(result.split.counts(), train.counts() + made - result.removed_real - result.removed_synthetic)
    assert np.array_equal(result.added, made - result.removed_synthetic)
    assert (result.split.source[: len(train) - result.removed_real.sum()] == REAL).all()


def test_cli_names_the_method_and_what_cleaning_removed(tmp_path, csv):
    result = CliRunner().invoke(main, ["balance", str(csv), "--method", "smote-enn", "--out", str(tmp_path / "e.h5")])
    assert result.exit_code == 0, result.output
    assert "cleaning step removed" in result.output and "added" in result.output
    bad = CliRunner().invoke(
        main, ["balance", str(csv), "--method", "smote", "--judged", "--out", str(tmp_path / "j.h5")]
    )
    assert bad.exit_code == 2 and "train split only" in bad.output


def test_files_without_parents_still_read(tmp_path, csv):
    """Files written before the ``parents`` column existed read with it empty; readers that do not know it ignore it."""
    path = balance(BalanceConfig(csv, tmp_path / "r.h5", method="ros")).out
    with h5py.File(path, "a") as f:
        for split in ("train", "val", "test"):
            del f[split]["parents"]
    train = store.read_split(path, "train")
    assert (train.parents == "").all() and train.n_synthetic > 0


def test_dry_run_plans_and_writes_nothing(tmp_path, csv):
    result = CliRunner().invoke(
        main,
        ["balance", str(csv), "--method", "adasyn", "--target", "20", "--dry-run", "--out", str(tmp_path / "d.h5")],
    )
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "d.h5").exists() and "Top-up plan" in result.output
    plan = balance(BalanceConfig(csv, None, method="ros", target=20, dry_run=True)).plan
    assert plan.take["train"] == [8, 13, 10, 0, 11, 12, 6] and plan.total_shortfall == 0
