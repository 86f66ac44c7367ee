import numpy as np
import pytest

from fer_synth.core.dataset import Split
from fer_synth.data.readers import read_dataset
from fer_synth.data.stats import dataset_stats, duplicate_stats, split_stats
from tests.conftest import SHARED, make_split

FER2013_CSV = SHARED / "data" / "fer2013" / "fer2013.csv.gz"


def test_split_stats_deficits_and_ratio():
    split = Split(np.zeros((10, 48, 48), np.uint8), [0, 0, 0, 0, 1, 2, 3, 4, 5, 6])
    s = split_stats(split)
    assert s.deficits == {"angry": 0, "disgust": 3, "fear": 3, "happy": 3, "sad": 3, "surprise": 3, "neutral": 3}
    assert s.needed == 18 and s.imbalance_ratio == 4.0 and s.largest == "angry"


def test_duplicates_across_splits_and_labels():
    train, test = make_split(14, 0), make_split(7, 1)
    train.images[1] = train.images[0]  # same label? make it conflicting
    train.labels[1] = (train.labels[0] + 1) % 7
    test.images[2] = train.images[5]  # leakage
    test.labels[2] = train.labels[5]
    test.images[3] = 0
    d = duplicate_stats({"train": train, "test": test})
    assert d.duplicate_groups == 2 and d.extra_copies == 2
    assert d.cross_split_groups == 1 and d.conflicting_label_groups == 1
    assert d.constant_images == 1
    assert d.examples["cross_split"] == [["train:5", "test:2"]]


@pytest.mark.skipif(not FER2013_CSV.exists(), reason="the real FER2013 is not beside the repository")
def test_real_fer2013_matches_its_documented_figures():
    data = read_dataset(FER2013_CSV)
    report = dataset_stats(data.splits)
    splits = report["splits"]
    assert {k: v["num_images"] for k, v in splits.items()} == {
        "Training": 28709,
        "PublicTest": 3589,
        "PrivateTest": 3589,
    }
    assert splits["Training"]["counts"]["disgust"] == 436 and splits["Training"]["counts"]["happy"] == 7215
    assert splits["Training"]["needed"] == 21796  # the seed's train figure
    # Kaggle's test folder is PublicTest + PrivateTest: largest class happy 1,774 -> the seed's 5,240 images
    kaggle_test = split_stats(Split.concat([data["PublicTest"], data["PrivateTest"]]))
    assert kaggle_test.counts["happy"] == 1774 and kaggle_test.needed == 5240
    d = report["duplicates"]
    assert (
        d["duplicate_groups"],
        d["extra_copies"],
        d["cross_split_groups"],
        d["conflicting_label_groups"],
        d["constant_images"],
    ) == (1516, 1853, 557, 57, 12)
