import numpy as np
import pytest

from fer_synth.core import store
from fer_synth.core.dataset import SYNTHETIC
from fer_synth.core.errors import FerError
from fer_synth.data.balance import BalanceConfig, ShortfallError, balance, default_output, plan_topup
from fer_synth.data.readers import read_dataset
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, tree_digest, write_csv, write_kaggle, write_pool


def test_plan_is_a_pure_function_of_counts():
    plan = plan_topup({"train": np.array([5, 1, 3, 9, 9, 0, 2])}, np.array([10, 10, 1, 0, 0, 10, 10]))
    assert plan.targets["train"] == [9] * 7
    assert plan.take["train"] == [4, 8, 1, 0, 0, 9, 7]
    assert plan.shortfall["train"] == [0, 0, 5, 0, 0, 0, 0]
    median = plan_topup({"t": np.array([5, 1, 3, 9, 9, 0, 2])}, np.full(7, 99), "median")
    assert median.take["t"] == [0, 2, 0, 0, 0, 3, 1]  # median 3; nothing removed above it
    fixed = plan_topup({"t": np.array([5, 1, 3, 9, 9, 0, 2])}, np.full(7, 99), 6)
    assert fixed.targets["t"] == [6, 6, 6, 9, 9, 6, 6]


def test_plan_serves_splits_in_order_from_one_pool():
    plan = plan_topup(
        {"train": np.array([0, 4, 4, 4, 4, 4, 4]), "val": np.array([0, 2, 2, 2, 2, 2, 2])},
        np.array([5, 0, 0, 0, 0, 0, 0]),
    )
    assert plan.take["train"][0] == 4 and plan.take["val"][0] == 1 and plan.shortfall["val"][0] == 1


@pytest.fixture
def sources(tmp_path):
    csv = write_csv(tmp_path / "fer2013.csv", fer_rows(DEFAULT_COUNTS))
    pool = write_pool(tmp_path / "generated", [10] * 7)
    return csv, pool


def test_balance_tops_up_train_only_and_records_provenance(tmp_path, sources):
    csv, pool = sources
    before = tree_digest(tmp_path)
    result = balance(BalanceConfig(csv, tmp_path / "out" / "b.h5", pool=pool, seed=0))
    ds = store.read(result.out)
    assert ds["train"].counts().tolist() == [9] * 7
    assert ds["val"].n_synthetic == 0 and ds["test"].n_synthetic == 0
    assert ds["val"].counts().tolist() == DEFAULT_COUNTS["PublicTest"]
    synthetic = ds["train"].source == SYNTHETIC
    assert synthetic.sum() == 63 - sum(DEFAULT_COUNTS["Training"])
    assert all(p.startswith("a ") for p in ds["train"].prompt[synthetic])
    assert (ds["train"].seed[synthetic] >= 1000).all()
    assert len(set(ds["train"].origin[synthetic])) == synthetic.sum()  # no pool image used twice
    assert ds.attrs["plan"]["take"]["train"][1] == 7
    assert not ds.attrs["synthetic_in_eval"]
    # neither input was modified (the output lives in a new folder)
    (tmp_path / "out" / "b.h5").unlink()
    (tmp_path / "out").rmdir()
    assert tree_digest(tmp_path) == before


def test_balance_is_deterministic_and_seeded(tmp_path, sources):
    csv, pool = sources
    a = store.read(balance(BalanceConfig(csv, tmp_path / "a.h5", pool=pool, seed=1)).out)
    b = store.read(
        balance(BalanceConfig(csv, tmp_path / "a.h5", pool=pool, seed=1)).out
    )  # run again over its own output
    c = store.read(balance(BalanceConfig(csv, tmp_path / "c.h5", pool=pool, seed=2)).out)
    assert a.attrs["fingerprint"] == b.attrs["fingerprint"]
    assert list(a["train"].origin) == list(b["train"].origin)
    assert list(a["train"].origin) != list(c["train"].origin)


def test_shortfall_is_an_error_naming_classes(tmp_path, sources):
    csv, _ = sources
    pool = write_pool(tmp_path / "small", [10, 2, 10, 0, 10, 10, 0])
    with pytest.raises(ShortfallError, match=r"disgust short by 5.*neutral short by 2"):
        balance(BalanceConfig(csv, tmp_path / "x.h5", pool=pool))
    assert not (tmp_path / "x.h5").exists()
    result = balance(BalanceConfig(csv, tmp_path / "x.h5", pool=pool, allow_shortfall=True))
    assert store.read(result.out)["train"].counts().tolist() == [9, 4, 9, 9, 9, 9, 7]


def test_synthetic_in_eval_needs_force_and_is_recorded(tmp_path, sources):
    csv, pool = sources
    with pytest.raises(FerError, match="--force-synthetic-eval"):
        balance(BalanceConfig(csv, tmp_path / "x.h5", pool=pool, splits=("train", "test")))
    result = balance(
        BalanceConfig(csv, tmp_path / "x.h5", pool=pool, splits=("train", "test"), force_synthetic_eval=True)
    )
    ds = store.read(result.out)
    assert ds["test"].n_synthetic > 0 and ds.attrs["synthetic_in_eval"] and ds.attrs["forced_synthetic_eval"]
    assert any(n.startswith("WARNING") for n in result.notes)


def test_dry_run_writes_nothing(tmp_path, sources):
    csv, pool = sources
    result = balance(BalanceConfig(csv, tmp_path / "x.h5", pool=pool, dry_run=True))
    assert result.plan.total_take == 63 - sum(DEFAULT_COUNTS["Training"])
    assert not (tmp_path / "x.h5").exists()


def test_folder_output_round_trips_with_provenance(tmp_path, sources):
    csv, pool = sources
    out = balance(BalanceConfig(csv, tmp_path / "balanced", pool=pool)).out
    ds = read_dataset(out)
    assert list(ds) == ["test", "train", "val"]
    assert ds["train"].counts().tolist() == [9] * 7
    assert ds["train"].n_synthetic == 63 - sum(DEFAULT_COUNTS["Training"])
    assert ds["val"].n_synthetic == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_kaggle_source_and_missing_pool(tmp_path):
    root = write_kaggle(tmp_path / "fer2013", fer_rows(DEFAULT_COUNTS))
    with pytest.raises(FileNotFoundError, match="fer-synth generate"):
        balance(BalanceConfig(root, tmp_path / "x.h5", pool=tmp_path / "generated"))
    assert default_output(root) == default_output(tmp_path / "fer2013.csv.gz")
    assert str(default_output(root)) == "fer2013_balanced.h5"
    # Named after what the user typed: a link's name, not its target's.
    (tmp_path / "mine").symlink_to(root)
    assert str(default_output(tmp_path / "mine")) == "mine_balanced.h5"


def test_drop_duplicates_removes_leaked_train_images(tmp_path):
    rows = fer_rows(DEFAULT_COUNTS)
    leaked = rows[40]  # a PublicTest row, copied into Training
    rows.insert(0, (leaked[0], leaked[1].copy(), "Training"))
    csv = write_csv(tmp_path / "f.csv", rows)
    pool = write_pool(tmp_path / "pool", [20] * 7)
    kept = store.read(balance(BalanceConfig(csv, tmp_path / "a.h5", pool=pool, drop_duplicates=True)).out)
    plain = store.read(balance(BalanceConfig(csv, tmp_path / "b.h5", pool=pool)).out)
    assert (plain["train"].source == 0).sum() - (kept["train"].source == 0).sum() == 1
