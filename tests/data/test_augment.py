"""Batched augmentation: every output must be a legal transform of its own input image."""

import pytest
import torch
import torch.nn.functional as F

from nasforge.data import Augment, cutout, random_crop, random_flip
from nasforge.errors import NasforgeError

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gen(seed: int, device: str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g


def images(b: int = 64, c: int = 3, h: int = 8, w: int = 10, device: str = "cpu") -> torch.Tensor:
    # values 1..255, so padded zeros are distinguishable from image content
    return torch.randint(1, 256, (b, c, h, w), generator=gen(99)).to(torch.uint8).to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_crop_outputs_are_shifted_windows_of_the_padded_input(device):
    pad = 2
    x = images(device=device)
    out = random_crop(x, pad, gen(0, device))
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    padded = F.pad(x, (pad,) * 4).cpu()
    out = out.cpu()
    offsets = set()
    for i in range(x.shape[0]):
        hits = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.equal(out[i], padded[i, :, dy : dy + x.shape[2], dx : dx + x.shape[3]])
        ]
        assert len(hits) == 1
        offsets.add(hits[0])
    assert len(offsets) > 10  # per-image offsets, not one shift for the whole batch


def test_crop_is_seeded_and_pad_zero_is_identity():
    x = images()
    assert torch.equal(random_crop(x, 3, gen(5)), random_crop(x, 3, gen(5)))
    assert not torch.equal(random_crop(x, 3, gen(5)), random_crop(x, 3, gen(6)))
    assert torch.equal(random_crop(x, 0, gen(5)), x)


@pytest.mark.parametrize("device", DEVICES)
def test_flip_mirrors_exactly_the_chosen_half(device):
    x = images(b=400, device=device)
    out = random_flip(x, gen(1, device))
    chosen = torch.rand(400, generator=gen(1, device), device=device) < 0.5
    assert torch.equal(out[chosen], x[chosen].flip(-1))
    assert torch.equal(out[~chosen], x[~chosen])
    flipped = sum(
        bool(torch.equal(o, i.flip(-1)) and not torch.equal(o, i))
        for o, i in zip(out, x, strict=True)
    )
    assert flipped == int(chosen.sum())
    assert 150 <= flipped <= 250


def bounds(mask: torch.Tensor) -> tuple[int, int, int, int]:
    rows = mask.any(dim=1).nonzero().flatten()
    cols = mask.any(dim=0).nonzero().flatten()
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@pytest.mark.parametrize("length", [4, 5])
@pytest.mark.parametrize("device", DEVICES)
def test_cutout_zeroes_one_clipped_square(length, device):
    h = w = 12
    x = torch.ones(300, 2, h, w, device=device)
    out = cutout(x, length, gen(3, device)).cpu()
    assert out.shape == x.shape
    full = clipped = 0
    for img in out:
        hole = img == 0
        assert torch.equal(hole[0], hole[1])  # the same square in every channel
        top, bottom, left, right = bounds(hole[0])
        assert hole[0].sum() == (bottom - top) * (right - left)  # a filled rectangle
        for lo, hi, size in ((top, bottom, h), (left, right, w)):
            assert 0 < hi - lo <= length
            assert hi - lo == length or lo == 0 or hi == size  # shorter only when clipped
        if (bottom - top, right - left) == (length, length):
            full += 1
        else:
            clipped += 1
    assert full > 0 and clipped > 0
    # the centre is uniform over the image, so corner holes happen
    corners = [bounds(img[0] == 0) for img in out]
    assert any(t == 0 and lf == 0 for t, _, lf, _ in corners)
    assert any(b == h and r == w for _, b, _, r in corners)


def test_cutout_matches_darts_rule():
    x = torch.ones(50, 1, 10, 10)
    out = cutout(x, 4, gen(8))
    g = gen(8)
    cy = torch.randint(0, 10, (50,), generator=g)
    cx = torch.randint(0, 10, (50,), generator=g)
    for i in range(50):
        want = torch.ones(10, 10)
        want[max(cy[i] - 2, 0) : min(cy[i] + 2, 10), max(cx[i] - 2, 0) : min(cx[i] + 2, 10)] = 0
        assert torch.equal(out[i, 0], want)


def test_augment_config_and_steps():
    assert not Augment().active
    aug = Augment(crop_pad=2, flip=True, cutout=3)
    assert aug.active
    x = images()
    raw = aug.raw(x, gen(4))
    assert raw.shape == x.shape and raw.dtype == torch.uint8
    g = gen(4)  # crop then flip, drawing from one shared generator
    assert torch.equal(raw, random_flip(random_crop(x, 2, g), g))
    normalised = aug.normalised(torch.ones(8, 3, 8, 10), gen(4))
    assert int((normalised == 0).any(dim=1).flatten(1).any(dim=1).sum()) == 8


@pytest.mark.parametrize(
    "kwargs", [{"crop_pad": -1}, {"cutout": -2}, {"crop_pad": 1.5}, {"flip": 1}]
)
def test_bad_augment_values(kwargs):
    with pytest.raises(NasforgeError) as excinfo:
        Augment(**kwargs)
    assert "\n" not in str(excinfo.value)
    assert repr(next(iter(kwargs.values()))) in str(excinfo.value)
