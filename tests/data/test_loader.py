"""Device-resident batches: reproducible per (seed, epoch), complete, and correctly normalised."""

import pytest
import torch

from nasforge.data import Augment, Batches, Split
from nasforge.errors import NasforgeError

N = 53
MEAN = (0.5, 0.4, 0.3)
STD = (0.25, 0.2, 0.1)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def split() -> Split:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (N, 3, 6, 6), generator=g).to(torch.uint8)
    return Split(x, torch.arange(N))  # label == example index, so batches reveal their members


def make(split: Split, **kwargs) -> Batches:
    kwargs.setdefault("mean", MEAN)
    kwargs.setdefault("std", STD)
    return Batches(split, kwargs.pop("batch_size", 8), **kwargs)


def normalised(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, -1, 1, 1)
    std = torch.tensor(STD).view(1, -1, 1, 1)
    return (x.float() / 255 - mean) / std


def collect(batches: Batches, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.cpu(), y.cpu()) for x, y in batches.epoch(epoch)]


def same(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True)
    )


def test_length_and_drop_last(split):
    assert len(make(split)) == 7 and make(split).num_examples == N
    assert len(make(split, drop_last=True)) == 6
    assert [len(y) for _, y in make(split).epoch(0)] == [8] * 6 + [5]
    ys = torch.cat([y for _, y in make(split, drop_last=True).epoch(0)])
    assert len(ys) == 48 and len(ys.unique()) == 48


@pytest.mark.parametrize("device", DEVICES)
def test_epoch_is_a_permutation_of_the_indices(split, device):
    indices = torch.tensor([50, 3, 17, 4, 8, 9, 22, 31, 0, 44, 45, 12, 13])
    batches = make(split, indices=indices, batch_size=4, device=device)
    assert batches.num_examples == 13 and len(batches) == 4
    for x, y in batches.epoch(2):
        assert x.device.type == device and y.device.type == device
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.allclose(x.cpu(), normalised(split.x[y.cpu()]), atol=1e-5)
    ys = torch.cat([y.cpu() for _, y in batches.epoch(2)])
    assert sorted(ys.tolist()) == sorted(indices.tolist())


def test_same_seed_and_epoch_replays_exactly(split):
    augment = Augment(crop_pad=2, flip=True, cutout=3)
    a = make(split, augment=augment, seed=7)
    b = make(split, augment=augment, seed=7)
    for epoch in range(3):  # a resumed run: b jumps straight to epoch 4
        collect(a, epoch)
    assert same(collect(a, 4), collect(b, 4))
    assert not same(collect(a, 4), collect(a, 5))
    assert not same(collect(a, 4), collect(make(split, augment=augment, seed=8), 4))
    orders = [torch.cat([y for _, y in collect(a, e)]) for e in range(3)]
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[1], orders[2])


def test_evaluation_order_is_sequential_and_unaugmented(split):
    indices = torch.tensor([9, 2, 40, 7, 11])
    plain = make(split, indices=indices, shuffle=False, batch_size=2)
    augmented = make(
        split, indices=indices, shuffle=False, batch_size=2, augment=Augment(4, True, 3)
    )
    got = collect(plain, 0)
    assert same(got, collect(augmented, 0)) and same(got, collect(plain, 9))
    assert torch.cat([y for _, y in got]).tolist() == indices.tolist()
    x = torch.cat([x for x, _ in got])
    assert torch.allclose(x, normalised(split.x[indices]), atol=1e-5)


def test_flip_augmentation_acts_before_normalisation(split):
    batches = make(split, augment=Augment(flip=True), seed=3)
    flipped = kept = 0
    for x, y in batches.epoch(0):
        want = normalised(split.x[y])
        for xi, wi in zip(x, want, strict=True):
            if torch.allclose(xi, wi, atol=1e-5):
                kept += 1
            else:
                assert torch.allclose(xi, wi.flip(-1), atol=1e-5)
                flipped += 1
    assert flipped > 0 and kept > 0


def test_cutout_sets_normalised_zero(split):
    batches = make(split, augment=Augment(cutout=2), seed=1)
    for x, y in batches.epoch(0):
        want = normalised(split.x[y])
        changed = ~torch.isclose(x, want, atol=1e-5)
        assert torch.all(x[changed] == 0)
        assert changed.flatten(1).any(dim=1).float().mean() > 0.5  # most images lost pixels


def test_channels_last(split):
    x, _ = next(iter(make(split, channels_last=True, augment=Augment(cutout=2)).epoch(0)))
    assert x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(iter(make(split, channels_last=True, shuffle=False).epoch(0)))
    assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"batch_size": 0}, "batch size 0"),
        ({"mean": (0.5,)}, "one value per channel"),
        ({"std": (0.2, 0.0, 0.1)}, "must be > 0"),
        ({"indices": torch.tensor([1, N])}, f"index {N}"),
        ({"indices": torch.tensor([-1, 2])}, "index -1"),
        ({"indices": torch.tensor([0.5])}, "1-D integer"),
    ],
)
def test_bad_arguments(split, kwargs, text):
    with pytest.raises(NasforgeError, match=text) as excinfo:
        make(split, **kwargs)
    assert "\n" not in str(excinfo.value)
