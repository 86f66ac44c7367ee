"""FER+ votes: the reference protocol's labels, row alignment with fer2013.csv, eight classes end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fer_synth.cli import main
from fer_synth.core import store
from fer_synth.core.classes import FERPLUS
from fer_synth.core.errors import FerError
from fer_synth.data.balance import BalanceConfig, PackConfig, balance, pack
from fer_synth.data.ferplus import FerPlusError, label_votes, read_votes
from fer_synth.data.readers import read_dataset
from tests.conftest import SHARED
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, write_csv, write_pool

HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
# FER+ column order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
VOTES = {
    "clear happy": [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],
    "majority after dropping single votes": [5, 1, 1, 1, 1, 1, 0, 0, 0, 0],  # 5 of 5 left
    "tie": [4, 0, 0, 4, 2, 0, 0, 0, 0, 0],
    "plurality only": [4, 0, 0, 3, 2, 0, 0, 0, 1, 0],  # 4 of 9 left: no strict majority
    "unknown majority": [0, 2, 0, 0, 0, 0, 0, 0, 8, 0],
    "not a face": [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],
    "contempt": [2, 0, 0, 0, 0, 0, 0, 7, 1, 0],
}


def ferplus_votes(votes: list[list[int]]) -> np.ndarray:
    """FER+ column order -> read_votes' order (FERPLUS classes, then unknown, NF)."""
    fer_order = ["neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt"]
    votes = np.asarray(votes)
    return np.concatenate([votes[:, [fer_order.index(c) for c in FERPLUS]], votes[:, 8:]], axis=1)


def test_majority_follows_the_reference_protocol():
    keep, labels, dist, reasons = label_votes(ferplus_votes(list(VOTES.values())), "majority")
    got = {name: (FERPLUS[label] if k else reason) for name, k, label, reason in zip(VOTES, keep, labels, reasons)}
    assert got == {
        "clear happy": "happy",
        "majority after dropping single votes": "neutral",
        "tie": "no majority",
        "plurality only": "no majority",
        "unknown majority": "unknown",
        "not a face": "not a face",
        "contempt": "contempt",
    }
    # Distributions over the eight emotions after the single votes are dropped.
    assert dist[list(VOTES).index("contempt")].tolist() == pytest.approx([0, 0, 0, 0, 0, 0, 2 / 9, 7 / 9])


def test_distribution_mode_keeps_ties_and_drops_non_faces():
    keep, labels, dist, reasons = label_votes(ferplus_votes(list(VOTES.values())), "distribution")
    kept = {name for name, k in zip(VOTES, keep) if k}
    assert kept == {"clear happy", "majority after dropping single votes", "tie", "plurality only", "contempt"}
    tie = dist[list(VOTES).index("tie")]
    assert tie[FERPLUS.index("neutral")] == pytest.approx(0.4) and tie[FERPLUS.index("sad")] == pytest.approx(0.4)
    assert dict(zip(VOTES, reasons))["unknown majority"] == "unknown"


def write_votes(path: Path, usages: list[str], votes: list[list[int]]) -> Path:
    lines = [HEADER] + [f"{u},fer{i:07d}.png," + ",".join(map(str, v)) for i, (u, v) in enumerate(zip(usages, votes))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def fer_and_votes(tmp_path):
    rows = fer_rows(DEFAULT_COUNTS)
    csv = write_csv(tmp_path / "fer2013.csv", rows)
    cycle = list(VOTES.values())
    votes = write_votes(
        tmp_path / "fer2013new.csv", [u for _, _, u in rows], [cycle[i % len(cycle)] for i in range(len(rows))]
    )
    return csv, votes, rows


def test_relabelled_dataset_has_eight_classes_and_counts_its_drops(fer_and_votes):
    csv, votes, rows = fer_and_votes
    ds = read_dataset(csv, ferplus=votes)
    assert ds.classes == FERPLUS and all(s.classes == FERPLUS for s in ds.values())
    expected_kept = sum(1 for i in range(len(rows)) if i % len(VOTES) in (0, 1, 6))
    assert sum(len(s) for s in ds.values()) == expected_kept
    drops = ds.attrs["label_drops"]
    assert sum(sum(d.values()) for d in drops.values()) == len(rows) - expected_kept
    contempt_rows = [int(o) for s in ds.values() for o, y in zip(s.origin, s.labels) if y == FERPLUS.index("contempt")]
    assert contempt_rows and all(r % len(VOTES) == 6 for r in contempt_rows)  # row order kept: votes pair by row
    assert "FER+ votes" in ds.attrs["notes"][0]


def test_misaligned_files_are_refused(fer_and_votes, tmp_path):
    csv, votes, rows = fer_and_votes
    lines = votes.read_text().splitlines()
    (tmp_path / "short.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(FerPlusError, match="do not align"):
        read_dataset(csv, ferplus=tmp_path / "short.csv")
    usages = [line.split(",")[0] for line in lines[1:]]  # a PublicTest row moved to the top: same count
    first_public = usages.index("PublicTest")
    moved = (
        lines[:1] + lines[first_public + 1 : first_public + 2] + lines[1 : first_public + 1] + lines[first_public + 2 :]
    )
    (tmp_path / "moved.csv").write_text("\n".join(moved) + "\n")
    with pytest.raises(FerPlusError, match="row 0 is Training in the FER2013 CSV but PublicTest"):
        read_dataset(csv, ferplus=tmp_path / "moved.csv")
    (tmp_path / "bad.csv").write_text("Usage,Image name,neutral,happiness\nTraining,a.png,1,2\n")
    with pytest.raises(FerPlusError, match="no column for"):
        read_dataset(csv, ferplus=tmp_path / "bad.csv")
    with pytest.raises(FerError, match="FER2013's CSV"):
        read_dataset(store.write(tmp_path / "x.h5", {}), ferplus=votes)


def test_pack_distribution_mode_writes_soft_labels(fer_and_votes, tmp_path):
    csv, votes, _ = fer_and_votes
    out = pack(PackConfig(csv, tmp_path / "plus.h5", ferplus=votes, label_mode="distribution")).out
    assert store.read_attrs(out)["classes"] == list(FERPLUS) and store.classes_of(out) == FERPLUS
    ds = store.read(out)
    train = ds["train"]
    assert train.soft_labels is not None and train.soft_labels.shape == (len(train), 8)
    assert np.allclose(train.soft_labels.sum(1), 1) and (train.soft_labels.argmax(1) == train.labels).all()
    # val/test: strict-majority rows only, in every mode
    majority = store.read(pack(PackConfig(csv, tmp_path / "maj.h5", ferplus=votes)).out)
    assert len(ds["test"]) == len(majority["test"]) and len(train) > len(majority["train"])
    assert majority["train"].soft_labels is None


def test_balance_tops_up_all_eight_classes_from_a_pool_with_contempt(fer_and_votes, tmp_path):
    csv, votes, _ = fer_and_votes
    pool = write_pool(tmp_path / "generated", [20] * 7)
    (pool / "contempt").mkdir()
    for i in range(20):
        (pool / "contempt" / f"{i}.png").write_bytes((pool / "happy" / f"{i:05d}.png").read_bytes())
    result = balance(BalanceConfig(csv, tmp_path / "plus_balanced.h5", pool=pool, ferplus=votes))
    assert result.plan.classes == FERPLUS.names
    train = store.read(result.out)["train"]
    assert train.classes == FERPLUS and len(set(train.counts().tolist())) == 1  # every class at the largest
    assert train.counts()[FERPLUS.index("contempt")] > 0


def test_cli_stats_and_pack_with_ferplus(fer_and_votes, tmp_path):
    csv, votes, _ = fer_and_votes
    runner = CliRunner()
    stats = runner.invoke(main, ["stats", str(csv), "--ferplus", str(votes)])
    assert stats.exit_code == 0, stats.output
    assert "contempt" in stats.output and "no majority" in stats.output
    bad = runner.invoke(main, ["pack", str(csv), "--ferplus", str(votes), "--label-mode", "vote", "--out", "x.h5"])
    assert bad.exit_code == 2 and "majority" in bad.output


def test_real_ferplus_file_reads_and_its_first_rows_label_as_by_hand():
    path = SHARED / "data" / "fer2013" / "ferplus-fer2013new.csv"
    if not path.exists():
        pytest.skip("shared FER+ file not present")
    usages, votes = read_votes(path)
    assert len(usages) == 35887 and usages[0] == "Training" and usages[-1] == "PrivateTest"
    keep, labels, _, reasons = label_votes(votes[:8], "majority")
    # Rows 0-7 of fer2013new.csv: 4,0,0,1,3,2 (no majority once the single vote goes), 6 neutral of 8, ...,
    # 2 neutral + 8 sadness, 10 happiness.
    assert [FERPLUS[y] if k else r for k, y, r in zip(keep, labels, reasons)][:2] == ["no majority", "neutral"]
    assert [FERPLUS[y] for y in labels[6:8]] == ["sad", "happy"] and keep[6:8].all()
