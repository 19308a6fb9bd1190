import math

import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.proxy.histogram import (
    DEFAULT_BIN_WIDTH,
    FALLBACK_BIN_WIDTH,
    bin_width_for,
    entropy_histogram,
    log10_entropy,
    log_histogram,
)


def assert_well_formed(hist, values):
    """Every value lies in exactly the bin its index names; edges are multiples of the width."""
    edges, last = hist.edges, hist.num_bins - 1
    assert edges[0] <= values.min() and edges[-1] >= values.max()
    assert edges[1] > values.min() and (hist.num_bins == 1 or edges[-2] < values.max())
    multiples = edges / hist.width
    assert torch.allclose(multiples, multiples.round(), atol=1e-9)
    for v, b in zip(values.tolist(), hist.bin_of.tolist(), strict=True):
        inside = [j for j in range(hist.num_bins)
                  if edges[j] <= v and (v < edges[j + 1] or (j == last and v <= edges[j + 1]))]
        assert inside == [b], (v, b, inside)
    assert torch.equal(hist.counts, torch.bincount(hist.bin_of, minlength=hist.num_bins))


def test_bin_widths_follow_the_thesis_with_a_fallback():
    assert bin_width_for("cifar10") == 0.5
    assert bin_width_for("CIFAR-100") == 0.25
    assert bin_width_for("svhn") == 0.2
    assert bin_width_for("ImageNet") == DEFAULT_BIN_WIDTH["imagenet"] == 0.25
    assert bin_width_for("digits") == FALLBACK_BIN_WIDTH == bin_width_for(None)
    assert bin_width_for("cifar10", 0.1) == 0.1
    for bad in (0, -0.5, math.inf, math.nan):
        with pytest.raises(NasforgeError, match="bin width"):
            bin_width_for("cifar10", bad)


def test_values_on_edges_min_and_max_land_in_exactly_one_bin():
    hist = entropy_histogram(torch.tensor([0.01, 0.1, 1.0, 10.0, 100.0], dtype=torch.float64), 0.5)
    assert hist.edges.tolist() == [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert hist.bin_of.tolist() == [0, 2, 4, 6, 7]  # the last bin is closed: 2.0 joins it
    assert hist.counts.tolist() == [1, 0, 1, 0, 1, 0, 1, 1]


@pytest.mark.parametrize("width", [0.2, 0.25, 0.1, 0.3, 0.5, 0.7, 1.0])
def test_decimal_edges_are_exact_and_binning_is_consistent(width):
    on_edges = torch.tensor([round(i * width, 12) for i in range(-25, 6)], dtype=torch.float64)
    between = on_edges[:-1] + width * torch.rand(30, generator=torch.Generator().manual_seed(0))
    values = torch.cat([on_edges, between])
    hist = log_histogram(values, width)
    assert hist.edges.tolist() == on_edges.tolist()
    assert hist.bin_of[: len(on_edges) - 1].tolist() == list(range(len(on_edges) - 1))
    assert hist.bin_of[len(on_edges) - 1] == hist.num_bins - 1
    assert_well_formed(hist, values)


def test_svhn_width_on_point_six():
    hist = log_histogram(torch.tensor([0.4, 0.6, 0.6, 0.8, 1.0]), 0.2)
    assert hist.edges.tolist() == [0.4, 0.6, 0.8, 1.0]
    assert hist.counts.tolist() == [1, 2, 2]


def test_random_entropies_are_binned_consistently():
    gen = torch.Generator().manual_seed(3)
    entropy = 10 ** (torch.randn(200, generator=gen, dtype=torch.float64) * 2 - 1)
    for width in (0.2, 0.25, 0.5, 1.0):
        hist = entropy_histogram(entropy, width)
        assert int(hist.counts.sum()) == 200
        assert_well_formed(hist, hist.log_entropy)


def test_equal_values_give_one_bin():
    for value in (1.0, 0.37):
        hist = entropy_histogram(torch.full((4,), value), 0.5)
        assert hist.num_bins == 1 and hist.counts.tolist() == [4]


def test_zero_entropy_is_floored_to_the_smallest_positive():
    entropy = torch.tensor([0.0, 1e-3, 1.0], dtype=torch.float64)
    assert log10_entropy(entropy).tolist() == [-3.0, -3.0, 0.0]
    assert log10_entropy(torch.zeros(3)).tolist() == [0.0, 0.0, 0.0]
    hist = entropy_histogram(entropy, 0.5)
    assert hist.bin_of[0] == hist.bin_of[1] == 0


@pytest.mark.parametrize("bad", [-1e-3, math.nan, math.inf])
def test_invalid_entropies_are_user_errors(bad):
    with pytest.raises(NasforgeError, match="example 1"):
        entropy_histogram(torch.tensor([0.5, bad]), 0.5)


def test_too_many_bins_is_a_user_error():
    with pytest.raises(NasforgeError, match="larger width"):
        entropy_histogram(torch.tensor([1e-30, 1.0]), 1e-6)
