"""The data path: splits as tensors, exact test views, augmentation, the class-balanced sampler."""

from __future__ import annotations

import pytest
import torch

from fer_models.data import (
    GRAY_MEAN,
    GRAY_STD,
    Augment,
    augment_batch,
    batches,
    epoch_order,
    load_split,
    mix_batch,
    render,
    view_thetas,
)
from fer_synth.core.errors import FerError


def _pixels(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 0] * GRAY_STD + GRAY_MEAN) * 255


@pytest.fixture
def faces():
    return torch.randint(0, 256, (5, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_load_split_reads_the_store(tiny_h5):
    train = load_split(tiny_h5, "train")
    assert train.images.dtype == torch.uint8 and train.images.shape == (70, 48, 48)
    assert len(train) == 70 and train.n_synthetic == 14 and int(train.counts().sum()) == 70


def test_test_views_are_exact_crops_and_mirrors(faces):
    full = render(faces, view_thetas(5, "none", 48, 48, "cpu")[0], 48, 1)
    assert torch.allclose(_pixels(full), faces.float(), atol=0.01)
    ten = view_thetas(5, "ten-crop", 40, 48, "cpu")
    assert len(ten) == 10
    centre, centre_flipped, top_left = (_pixels(render(faces, ten[i], 40, 1)) for i in (0, 1, 2))
    assert torch.allclose(centre, faces[:, 4:44, 4:44].float(), atol=0.01)
    assert torch.allclose(centre_flipped, faces[:, 4:44, 4:44].flip(-1).float(), atol=0.01)
    assert torch.allclose(top_left, faces[:, :40, :40].float(), atol=0.01)
    assert len(view_thetas(5, "flip", 224, 48, "cpu")) == 2
    with pytest.raises(FerError, match="unknown TTA"):
        view_thetas(5, "five-crop", 40, 48, "cpu")


def test_gray_becomes_three_channels_at_the_model_size(faces):
    x = render(faces, view_thetas(5, "none", 64, 48, "cpu")[0], 64, 3)
    assert x.shape == (5, 3, 64, 64)
    assert torch.allclose(x[:, 0] * 0.229 + 0.485, x[:, 1] * 0.224 + 0.456, atol=1e-5)


def test_augmentation_is_seeded_and_changes_images(faces):
    aug = Augment(scale=(0.8, 1.2), translate=0.2, rotate=10, hflip=True, erasing=0.5, noise=0.05)
    a = augment_batch(faces, aug, 40, 1, torch.Generator().manual_seed(1))
    b = augment_batch(faces, aug, 40, 1, torch.Generator().manual_seed(1))
    c = augment_batch(faces, aug, 40, 1, torch.Generator().manual_seed(2))
    assert a.shape == (5, 1, 40, 40) and torch.equal(a, b) and not torch.equal(a, c)
    identity = augment_batch(faces, Augment(), 48, 1, torch.Generator().manual_seed(1))
    assert torch.allclose(_pixels(identity), faces.float(), atol=0.01)


def test_mixup_and_cutmix_give_soft_targets(faces):
    x = render(faces, view_thetas(5, "none", 48, 48, "cpu")[0], 48, 1)
    labels = torch.tensor([0, 1, 2, 3, 4])
    for aug in (Augment(mixup=0.4), Augment(cutmix=1.0)):
        mixed, targets = mix_batch(x, labels, aug, torch.Generator().manual_seed(0))
        assert mixed.shape == x.shape and targets.shape == (5, 7)
        assert torch.allclose(targets.sum(1), torch.ones(5))


def test_balanced_sampler_evens_out_classes():
    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    order = epoch_order(labels, torch.Generator().manual_seed(0), balanced=True)
    counts = torch.bincount(labels[order], minlength=3).float()
    assert len(order) == 1000 and counts.min() > 250 and counts.max() < 420
    permutation = epoch_order(labels, torch.Generator().manual_seed(0))
    assert sorted(permutation.tolist()) == list(range(1000))


def test_batches_split_ranks_evenly_and_disjointly():
    order = torch.randperm(103, generator=torch.Generator().manual_seed(0))
    ranks = [batches(order, 10, rank, 2) for rank in (0, 1)]
    assert [len(b) for b in ranks] == [5, 5]
    seen = torch.cat([torch.cat(b) for b in ranks])
    assert len(set(seen.tolist())) == len(seen) == 100


def _smooth_faces(n: int = 16) -> torch.Tensor:
    """Faces with structure (a gradient and a bright disc), so that blur and JPEG have something to change."""
    ys, xs = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    disc = ((ys - 24) ** 2 + (xs - 20) ** 2 < 100).float() * 120
    base = (xs * 2 + disc + 40).clamp(0, 255)
    return (base + torch.arange(n).view(-1, 1, 1) * 3).clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize("photo", [{"downscale": 1.0}, {"blur": 1.0}, {"jpeg": 1.0}, {"gamma": 1.0}])
def test_photo_domain_augmentations_are_seeded_bounded_and_off_at_zero(photo):
    images = _smooth_faces()
    plain = augment_batch(images, Augment(), 48, 1, torch.Generator().manual_seed(0))
    aug = Augment(**photo)
    first = augment_batch(images, aug, 48, 1, torch.Generator().manual_seed(0))
    again = augment_batch(images, aug, 48, 1, torch.Generator().manual_seed(0))
    assert torch.equal(first, again) and first.shape == plain.shape
    pixels = _pixels(first)
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3  # still 0..255 gray before normalisation
    changed = (pixels - _pixels(plain)).abs().mean()
    assert changed > 0.3, f"{photo} changed the faces by {changed:.3f} grey levels on average"
    off = augment_batch(images, Augment(**{k: 0.0 for k in photo}), 48, 1, torch.Generator().manual_seed(0))
    assert torch.equal(off, plain)


def test_blur_and_downscale_remove_detail():
    images = _smooth_faces()

    def detail(x: torch.Tensor) -> float:  # mean absolute horizontal gradient, the edges' share
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    plain = detail(augment_batch(images, Augment(), 48, 1, torch.Generator().manual_seed(0)))
    for photo in ({"blur": 1.0}, {"downscale": 1.0}):
        assert detail(augment_batch(images, Augment(**photo), 48, 1, torch.Generator().manual_seed(0))) < plain
