import json

import pytest
from click.testing import CliRunner

from fer_synth.cli import main
from fer_synth.core import store
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, write_csv, write_kaggle, write_pool


@pytest.fixture
def runner():
    return CliRunner()


def test_every_command_has_help(runner):
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in main.commands:
        assert runner.invoke(main, [name, "--help"]).exit_code == 0


def test_stats_json_kaggle_totals(runner, tmp_path):
    root = write_kaggle(tmp_path / "fer2013", fer_rows(DEFAULT_COUNTS))
    result = runner.invoke(main, ["stats", str(root), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    train_counts = DEFAULT_COUNTS["Training"]
    assert report["splits"]["train"]["needed"] == 7 * max(train_counts) - sum(train_counts)
    test_counts = [a + b for a, b in zip(DEFAULT_COUNTS["PublicTest"], DEFAULT_COUNTS["PrivateTest"])]
    assert report["splits"]["test"]["needed"] == 7 * max(test_counts) - sum(test_counts)


def test_stats_table_and_warning(runner, tmp_path):
    root = write_kaggle(tmp_path / "fer2013", fer_rows(DEFAULT_COUNTS))
    (root / "train" / "fear" / "broken.jpg").write_bytes(b"xx")
    result = runner.invoke(main, ["stats", str(root)])
    assert result.exit_code == 0
    assert "skipped 1 unusable row(s) or file(s): train/fear/broken.jpg (unreadable image)" in result.output
    assert "deficit" in result.output and "Identical images" in result.output


def test_balance_short_form_defaults(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_kaggle(tmp_path / "fer2013", fer_rows(DEFAULT_COUNTS))
    write_pool(tmp_path / "generated", [10] * 7)
    result = runner.invoke(main, ["balance", "fer2013/"])
    assert result.exit_code == 0, result.output
    ds = store.read(tmp_path / "fer2013_balanced.h5")
    assert ds["train"].counts().tolist() == [9] * 7
    assert "official FER2013 splits recovered" in result.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["balance", "missing.csv"], "missing.csv: no such file"),
        (["balance", "f.csv", "--splits", "train,test"], "--force-synthetic-eval"),
        (["balance", "f.csv", "--splits", "train,holdout"], "unknown split(s) holdout"),
        (["balance", "f.csv", "--pool", "nowhere"], "pool folder nowhere not found"),
        (["balance", "f.csv", "--target", "most"], "unknown target 'most'"),
        (["stats", "f.txt"], "unknown dataset file type"),
        (["pack", "f.csv"], "Missing option '--out'"),
    ],
)
def test_errors_are_one_line_and_non_zero(runner, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "f.csv", fer_rows(DEFAULT_COUNTS))
    (tmp_path / "f.txt").write_text("x")
    write_pool(tmp_path / "generated", [10] * 7)
    result = runner.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("*.h5"))


def test_shortfall_error_and_dry_run(runner, tmp_path):
    csv = write_csv(tmp_path / "f.csv", fer_rows(DEFAULT_COUNTS))
    pool = write_pool(tmp_path / "p", [10, 1, 10, 10, 10, 10, 10])
    out = tmp_path / "o.h5"
    result = runner.invoke(main, ["balance", str(csv), "--pool", str(pool), "--out", str(out)])
    assert result.exit_code == 2 and "disgust short by 6" in result.output and not out.exists()
    result = runner.invoke(
        main, ["balance", str(csv), "--pool", str(pool), "--out", str(out), "--dry-run", "--allow-shortfall"]
    )
    assert result.exit_code == 0 and "Top-up plan" in result.output and not out.exists()


def test_pack_writes_contract(runner, tmp_path):
    csv = write_csv(tmp_path / "f.csv.gz", fer_rows(DEFAULT_COUNTS), gz=True)
    result = runner.invoke(main, ["pack", str(csv), "--out", str(tmp_path / "d.h5")])
    assert result.exit_code == 0, result.output
    ds = store.read(tmp_path / "d.h5")
    assert [len(ds[s]) for s in ("train", "val", "test")] == [sum(DEFAULT_COUNTS[u]) for u in DEFAULT_COUNTS]
