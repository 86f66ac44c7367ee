"""Near duplicates by perceptual hash: found when re-encoded, brightened or nudged; counted within and across
splits; dropped from train on request; refused from a balancing pool by default."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import data

from fer_synth.cli import main
from fer_synth.core import store
from fer_synth.core.dataset import Split
from fer_synth.data.balance import BalanceConfig, PackConfig, balance, pack
from fer_synth.data.near_duplicates import DEFAULT_MAX_DISTANCE, close_pairs, near_duplicate_stats, near_mask, phash
from tests.fer_synth.data_helpers import DEFAULT_COUNTS, fer_rows, write_csv, write_pool

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "page", "horse", "retina", "clock")


def gray48(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY)
    return cv2.resize(image.astype(np.uint8), (48, 48), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """Eleven different real photographs as 48x48 gray faces would be."""
    return np.stack([gray48(getattr(data, name)()) for name in PHOTOS])


def variants(image: np.ndarray) -> list[np.ndarray]:
    """What re-uploads do to a photo: brighter, flatter contrast, JPEG at quality 70, softened, nudged a quarter
    pixel (whole-pixel shifts of a 48x48 face move pHash 2-9 bits: often past the default distance)."""
    brighter = np.clip(image.astype(int) + 25, 0, 255).astype(np.uint8)
    flatter = np.clip((image.astype(float) - 128) * 0.85 + 128, 0, 255).astype(np.uint8)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])[1], cv2.IMREAD_GRAYSCALE)
    softened = cv2.GaussianBlur(image, (3, 3), 0.6)
    nudged = cv2.warpAffine(image, np.float32([[1, 0, 0.25], [0, 1, 0]]), (48, 48), borderMode=cv2.BORDER_REPLICATE)
    return [brighter, flatter, jpeg, softened, nudged]


def test_altered_copies_are_near_and_different_photos_are_not(photos):
    hashes = phash(photos)
    for image, h in zip(photos, hashes):
        altered = phash(np.stack(variants(image)))
        assert near_mask(altered, h[None]).all()
    i, j, _ = close_pairs(hashes, None, DEFAULT_MAX_DISTANCE)
    assert len(i) == 0  # eleven different photographs: no pair is near
    i, j, d = close_pairs(hashes, None, 64)
    assert len(i) == len(photos) * (len(photos) - 1) // 2 and (i < j).all()  # each pair once
    a, b, d = close_pairs(hashes[:3], hashes, 0)
    assert a.tolist() == [0, 1, 2] and b.tolist() == [0, 1, 2]


def test_groups_within_and_across_splits(photos):
    jpeg = [variants(p)[2] for p in photos]
    splits = {
        "train": Split(np.stack([photos[0], jpeg[0], photos[1], photos[2], photos[3]]), [0, 0, 1, 2, 3]),
        "val": Split(np.stack([jpeg[2], photos[4]]), [2, 4]),
        "test": Split(np.stack([photos[3], jpeg[4], photos[5]]), [3, 4, 5]),
    }
    stats = near_duplicate_stats(splits)
    # photo 0: within train; photo 2: train~val; photo 3: train~test (identical); photo 4: val~test
    assert stats.groups == 4 and stats.extra_images == 4
    assert stats.within_split_groups == 1 and stats.cross_split_groups == 3
    assert stats.cross_split_not_identical == 2  # photo 3's copies are pixel-identical
    assert stats.split_pairs == {"train~test": 1, "train~val": 1, "val~test": 1}
    assert stats.pairs == 4 and stats.pairs_not_identical == 3


def near_copy_sources(tmp_path, photos):
    """A FER2013 CSV whose Training rows include a brightened copy of a PrivateTest photo."""
    rows = fer_rows(DEFAULT_COUNTS)
    private = next(k for k, row in enumerate(rows) if row[2] == "PrivateTest")
    rows[private] = (rows[private][0], photos[0], "PrivateTest")
    rows[0] = (rows[private][0], variants(photos[0])[0], "Training")
    return write_csv(tmp_path / "fer2013.csv", rows)


def test_drop_near_duplicates_drops_what_exact_matching_misses(tmp_path, photos):
    csv = near_copy_sources(tmp_path, photos)
    exact = pack(PackConfig(csv, tmp_path / "exact.h5", drop_duplicates=True))
    near = pack(PackConfig(csv, tmp_path / "near.h5", drop_near_duplicates=True))
    assert len(near.splits["train"]) == len(exact.splits["train"]) - 1
    assert "0" not in set(near.splits["train"].origin) and "0" in set(exact.splits["train"].origin)
    assert any("nearly identical" in note for note in store.read_attrs(near.out)["notes"])


def test_pool_faces_near_a_test_face_are_refused_unless_allowed(tmp_path, photos):
    csv = write_csv(tmp_path / "fer2013.csv", fer_rows(DEFAULT_COUNTS))
    test_face = store.read(pack(PackConfig(csv, tmp_path / "p.h5")).out)["test"].images[0]
    pool = write_pool(tmp_path / "generated", [20] * 7, size=48)
    leak = np.clip(test_face.astype(int) + 20, 0, 255).astype(np.uint8)  # a cropped real photo, re-encoded
    cv2.imwrite(str(pool / "disgust" / "00000.png"), leak)
    refused = balance(BalanceConfig(csv, tmp_path / "b.h5", pool=pool, target=3, allow_shortfall=True))
    assert any(note.startswith("refused 1 pool faces") and "disgust/00000.png" in note for note in refused.notes)
    assert "disgust/00000.png" not in set(store.read(refused.out)["train"].origin)
    allowed = balance(
        BalanceConfig(csv, tmp_path / "c.h5", pool=pool, target=3, allow_shortfall=True, allow_pool_leakage=True)
    )
    assert any(note.startswith("WARNING: used 1 pool faces") for note in allowed.notes)
    assert "WARNING: used 1" in " ".join(store.read_attrs(allowed.out)["notes"])


def test_stats_reports_near_duplicates(tmp_path, photos):
    csv = near_copy_sources(tmp_path, photos)
    result = CliRunner().invoke(main, ["stats", str(csv)])
    assert result.exit_code == 0, result.output
    assert "Nearly identical images (pHash distance <= 4" in result.output
    assert "Training and PrivateTest 1" in result.output
    report = json.loads(CliRunner().invoke(main, ["stats", str(csv), "--json", "--near-distance", "64"]).output)
    n = sum(s["num_images"] for s in report["splits"].values())
    assert report["near_duplicates"]["groups"] == 1 and report["near_duplicates"]["extra_images"] == n - 1
