"""Thesis Fig. 4.2 for a quality study: (a) test accuracy per space, (b) error EDF per space."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nasforge.analysis.figures import save_figure


def _by_space(rows: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Test accuracies grouped by space, spaces in first-seen order."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(str(row["space"]), []).append(float(row["test_acc"]))
    return groups


def plot_quality(rows: Sequence[dict[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """Box plots of test accuracy (%) and the EDF of test error (%) per space, as a PNG.

    The EDF at error e is the fraction of a space's nets with error <= e; a curve nearer the
    top-left corner means a better space.
    """
    from nasforge.analysis.edf import error_edf

    groups = _by_space(rows)
    names = list(groups)
    fig, (ax_box, ax_edf) = plt.subplots(1, 2, figsize=(11, 4.2))
    if names:
        ax_box.boxplot([groups[n] for n in names])
        ax_box.set_xticks(range(1, len(names) + 1), names, rotation=20)
    ax_box.set_ylabel("test accuracy (%)")
    ax_box.set_title("(a) test accuracy")
    ax_box.grid(alpha=0.3, axis="y")
    for name in names:
        xs, ys = error_edf([100.0 - a for a in groups[name]])
        ax_edf.step([xs[0], *xs], [0.0, *ys], where="post", label=f"{name} (n={len(xs)})")
    ax_edf.set_xlabel("test error (%)")
    ax_edf.set_ylabel("fraction of nets with error <= e")
    ax_edf.set_ylim(0, 1.02)
    ax_edf.set_title("(b) error EDF")
    ax_edf.grid(alpha=0.3)
    if names:
        ax_edf.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
