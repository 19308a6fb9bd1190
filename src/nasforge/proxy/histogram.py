"""The log10-entropy histogram that the probabilistic selectors weigh examples by (§3.3).

Conventions, fixed here so every selector and plot agrees:

* Values: ``log10(entropy)``. An entropy of exactly 0 (a softmax saturated in float32)
  means "below the auxiliary model's precision", so it is floored to the smallest
  *positive* entropy in the data rather than to the smallest float64, which would open a
  bin hundreds of decades away and give those examples a bin of their own. If every
  entropy is 0, all values become log10(1) = 0.
* Edges: integer multiples of the bin width, ``edges[j] = (i0 + j) * width`` rounded to
  12 decimals (so decimal edges such as 0.6 are the same doubles a user types). The first
  edge is the largest multiple <= min, the last the smallest multiple >= max, and there
  is always at least one bin.
* Bins are half-open ``[e_j, e_{j+1})`` except the last, which is closed, so every value
  (the minimum, the maximum and values exactly on an edge included) falls in exactly one
  bin. Bin indices are computed by division and then corrected against the stored edges,
  so float error in the division can never put a value in a bin whose edges exclude it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nasforge.errors import NasforgeError

__all__ = [
    "DEFAULT_BIN_WIDTH",
    "FALLBACK_BIN_WIDTH",
    "EntropyHistogram",
    "bin_width_for",
    "entropy_histogram",
    "log10_entropy",
    "log_histogram",
]

#: Bin widths of the thesis's histograms (Figure 3.9), per data set.
DEFAULT_BIN_WIDTH: dict[str, float] = {
    "cifar10": 0.5,
    "cifar100": 0.25,
    "svhn": 0.2,
    "imagenet": 0.25,
}

#: Width for any other data set (digits, Tiny-ImageNet, ...): the thesis's main CIFAR-10
#: width; §3.4.3 shows the selection is insensitive to widths between 0.25 and 1.
FALLBACK_BIN_WIDTH = 0.5

_EDGE_DECIMALS = 12
_MAX_BINS = 100_000


def _canonical(dataset: str) -> str:
    return dataset.lower().replace("-", "").replace("_", "")


def bin_width_for(dataset: str | None, override: float | None = None) -> float:
    """The bin width to use: ``override`` if given, else the data set's default or the fallback."""
    if override is not None:
        width = float(override)
        if not math.isfinite(width) or width <= 0:
            raise NasforgeError(f"bin width {override!r} is invalid; it must be a number > 0")
        return width
    if dataset is None:
        return FALLBACK_BIN_WIDTH
    return DEFAULT_BIN_WIDTH.get(_canonical(dataset), FALLBACK_BIN_WIDTH)


@dataclass(frozen=True)
class EntropyHistogram:
    """A log10-entropy histogram and the bin of every example."""

    edges: torch.Tensor  # float64 [B + 1], multiples of ``width``
    counts: torch.Tensor  # int64 [B], examples per bin (interior bins may be empty)
    bin_of: torch.Tensor  # int64 [N], bin index of each example
    log_entropy: torch.Tensor  # float64 [N], the binned values
    width: float

    @property
    def num_bins(self) -> int:
        return int(self.counts.numel())


def log10_entropy(entropy: torch.Tensor) -> torch.Tensor:
    """``log10`` of the entropies in float64, zeros floored to the smallest positive entropy."""
    values = torch.as_tensor(entropy).detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    if values.numel() == 0:
        raise NasforgeError("cannot build an entropy histogram of zero examples")
    if not bool(torch.isfinite(values).all()):
        bad = int((~torch.isfinite(values)).nonzero()[0])
        raise NasforgeError(f"entropy of example {bad} is {values[bad].item()}; must be finite")
    if bool((values < 0).any()):
        bad = int((values < 0).nonzero()[0])
        raise NasforgeError(f"entropy of example {bad} is {values[bad].item()}; must be >= 0")
    positive = values[values > 0]
    floor = float(positive.min()) if positive.numel() else 1.0
    return torch.log10(values.clamp_min(floor))


def _edge(i: int, width: float) -> float:
    return round(i * width, _EDGE_DECIMALS)


def _edge_range(lo: float, hi: float, width: float) -> tuple[int, int]:
    """Multiples (first, last): edge(first) <= lo < edge(first + 1) and edge(last) >= hi."""
    first = math.floor(lo / width)
    while _edge(first, width) > lo:
        first -= 1
    while _edge(first + 1, width) <= lo:
        first += 1
    last = max(math.ceil(hi / width), first + 1)
    while _edge(last, width) < hi:
        last += 1
    while last - 1 > first and _edge(last - 1, width) >= hi:
        last -= 1
    return first, last


def _assign_bins(values: torch.Tensor, edges: torch.Tensor, width: float) -> torch.Tensor:
    """Bin index of each value: a division guess, then fixed up against the actual edges."""
    num_bins = edges.numel() - 1
    guess = torch.floor((values - edges[0]) / width).to(torch.int64).clamp_(0, num_bins - 1)
    while True:
        below = values < edges[guess]
        above = (guess < num_bins - 1) & (values >= edges[guess + 1])
        if not bool(below.any() or above.any()):
            return guess
        guess = guess - below.to(torch.int64) + above.to(torch.int64)


def entropy_histogram(entropy: torch.Tensor, bin_width: float) -> EntropyHistogram:
    """Histogram of ``log10(entropy)`` with edges on multiples of ``bin_width`` (see module doc)."""
    return log_histogram(log10_entropy(entropy), bin_width)


def log_histogram(values: torch.Tensor, bin_width: float) -> EntropyHistogram:
    """Histogram of values that are already log10 entropies (finite, float64 after casting)."""
    width = bin_width_for(None, bin_width)
    values = torch.as_tensor(values).detach().to(device="cpu", dtype=torch.float64).reshape(-1)
    if values.numel() == 0 or not bool(torch.isfinite(values).all()):
        raise NasforgeError("a log-entropy histogram needs at least one value, all finite")
    lo, hi = float(values.min()), float(values.max())
    if (hi - lo) / width > _MAX_BINS:
        raise NasforgeError(
            f"bin width {width} splits log10 entropies {lo:.3g}..{hi:.3g} into more than "
            f"{_MAX_BINS} bins; use a larger width"
        )
    first, last = _edge_range(lo, hi, width)
    edges = torch.tensor([_edge(i, width) for i in range(first, last + 1)], dtype=torch.float64)
    bin_of = _assign_bins(values, edges, width)
    counts = torch.bincount(bin_of, minlength=edges.numel() - 1)
    return EntropyHistogram(edges=edges, counts=counts, bin_of=bin_of, log_entropy=values,
                            width=width)
