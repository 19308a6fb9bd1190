"""Loss and accuracy curves from the CSV logs every training loop writes."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nasforge.runtime import read_csv  # noqa: E402


def plot_curves(logs: dict[str, str | Path], path: str | Path) -> Path:
    """One figure, loss (left) and accuracy (right) per epoch, one line pair per log.

    ``logs`` maps a label (``"search"``, ``"train"``) to a CSV with the columns
    epoch, train_loss, train_acc, val_loss, val_acc.
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, log in logs.items():
        rows = read_csv(log)
        if not rows:
            continue
        epochs = [int(r["epoch"]) + 1 for r in rows]
        for key, style in (("train", "-"), ("val", "--")):
            ax_loss.plot(
                epochs,
                [float(r[f"{key}_loss"]) for r in rows],
                style,
                marker=".",
                label=f"{label} {key}",
            )
            ax_acc.plot(
                epochs,
                [float(r[f"{key}_acc"]) for r in rows],
                style,
                marker=".",
                label=f"{label} {key}",
            )
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
