"""Empirical distribution functions of network errors (Radosavovic et al.'s error EDF).

Used by the search-space quality study (``nasforge quality``) and its plots, and by the SNN
quality plots; kept here, below both, so neither imports the other for it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

__all__ = ["edf_at", "error_edf"]


def error_edf(errors: Sequence[float]) -> tuple[list[float], list[float]]:
    """Steps of the error EDF: sorted errors and the fraction of nets with error <= each."""
    xs = sorted(float(e) for e in errors)
    n = len(xs)
    return xs, [bisect.bisect_right(xs, x) / n for x in xs]


def edf_at(errors: Sequence[float], thresholds: Sequence[float]) -> list[float]:
    """F(e) = fraction of nets whose error is <= e, for each threshold e."""
    xs = sorted(float(e) for e in errors)
    return [bisect.bisect_right(xs, float(t)) / len(xs) for t in thresholds]
