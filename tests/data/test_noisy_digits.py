"""``noisy-digits``: digits under fixed Gaussian pixel noise (the tabular-noisy-digits task)."""

import pytest
import torch

from nasforge.data import load_dataset
from nasforge.data.datasets import NOISY_DIGITS_COPIES, NOISY_DIGITS_SIGMA


@pytest.fixture(scope="module")
def both():
    return load_dataset("digits"), load_dataset("noisy-digits")


def test_every_split_holds_its_copies_of_the_digits_split(both):
    clean, noisy = both
    for name in ("train", "val", "test"):
        c, n = getattr(clean, name), getattr(noisy, name)
        copies = NOISY_DIGITS_COPIES[name]
        assert len(n) == copies * len(c) and n.x.dtype == torch.uint8
        assert torch.equal(n.y, c.y.repeat(copies))  # copy-major, labels unchanged
    assert (len(noisy.train), len(noisy.val), len(noisy.test)) == (2516, 5760, 11488)


def test_noise_is_gaussian_with_the_documented_sigma(both):
    """Where no clipping happened (clean pixel well inside 0..255) the difference is the noise."""
    clean, noisy = both
    base = clean.test.x.repeat(NOISY_DIGITS_COPIES["test"], 1, 1, 1).float()
    diff = noisy.test.x.float() - base
    inside = (base > 96) & (base < 160)  # 1.5 sigma from both ends: few clipped
    noise = diff[inside]
    assert abs(float(noise.mean())) < 2.0
    assert float(noise.std()) == pytest.approx(NOISY_DIGITS_SIGMA, rel=0.08)
    # the copies of one image differ from each other (fresh noise per copy)
    n = len(clean.test)
    assert not torch.equal(noisy.test.x[:n], noisy.test.x[n:2 * n])


def test_noisy_digits_are_fixed(both):
    _, noisy = both
    again = load_dataset("noisy-digits")
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(again, name).x, getattr(noisy, name).x)
    assert again.mean == noisy.mean and again.std == noisy.std
