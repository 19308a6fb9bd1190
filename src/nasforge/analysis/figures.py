"""Saving figures: one place for the format every nasforge picture shares."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nasforge.checkpoint import atomic_write_bytes  # noqa: E402


def save_figure(fig: Figure, path: str | Path, *, tight: bool = True, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (parent folders are created), close it."""
    buf = io.BytesIO()
    if tight:
        fig.tight_layout()
    try:
        fig.savefig(buf, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
