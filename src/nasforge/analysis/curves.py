"""Loss and accuracy curves from the CSV logs every training loop writes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nasforge.analysis.figures import save_figure
from nasforge.runtime import read_csv  # noqa: E402

SPLITS = (("train", "-"), ("val", "--"), ("test", ":"))
"""Column prefixes drawn (``{split}_loss``, ``{split}_acc``) and their line styles."""


def _number(text: object) -> float:
    """A CSV cell as a float; empty or non-numeric cells (an epoch without the value) are NaN."""
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def plot_curves(logs: Mapping[str, str | Path | Sequence[Mapping[str, str]]],
                path: str | Path) -> Path:
    """One figure, loss (left) and accuracy (right) per epoch, one line per log and split.

    ``logs`` maps a label (``"search"``, ``"train"``) to a CSV log, or to its rows as dicts,
    with an ``epoch`` column and any of ``train_loss``, ``train_acc``, ``val_loss``,
    ``val_acc``, ``test_loss``, ``test_acc``; absent columns and empty cells are skipped.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, log in logs.items():
        rows = read_csv(log) if isinstance(log, (str, Path)) else list(log)
        if not rows:
            continue
        epochs = [int(r["epoch"]) + 1 for r in rows]
        for key, style in SPLITS:
            for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
                column = f"{key}_{metric}"
                values = [_number(r.get(column)) for r in rows]
                if all(math.isnan(v) for v in values):
                    continue
                ax.plot(epochs, values, style, marker=".", label=f"{label} {key}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return save_figure(fig, path)
