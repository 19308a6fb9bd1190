"""TensorBoard event files that mirror a per-epoch CSV log (``tensorboard`` is optional).

Each row's numeric columns become scalars at step = ``epoch``; ``train_loss``/``val_loss``
are grouped as ``loss/train``/``loss/val`` (``*_acc`` as ``acc/*``), other columns keep
their names. Without the ``tensorboard`` package, or with ``NASFORGE_TENSORBOARD=0`` in the
environment, nothing is written and nothing fails. View with ``tensorboard --logdir runs``.
"""

from __future__ import annotations

import math
import os
import weakref
from pathlib import Path
from typing import Any

from nasforge.outputs import record

ENV = "NASFORGE_TENSORBOARD"
EVENTS_PREFIX = "events.out.tfevents."


def tensorboard_enabled() -> bool:
    """False when ``NASFORGE_TENSORBOARD`` is 0/false/no/off."""
    return os.environ.get(ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


def scalar_tag(column: str) -> str:
    """``train_loss`` -> ``loss/train``, ``val_acc`` -> ``acc/val``; others unchanged."""
    split, _, metric = column.rpartition("_")
    if split and metric in {"loss", "acc"}:
        return f"{metric}/{split}"
    return column


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


class TensorBoardMirror:
    """Writes CSV-log rows to TensorBoard event files in ``log_dir``.

    ``resume_after``: the last epoch kept by a resumed run; events of later epochs from the
    killed run are discarded by TensorBoard (``purge_step``). A fresh mirror (None) deletes
    earlier event files in ``log_dir``. The writer opens on the first row (so importing
    TensorBoard costs nothing until a row is written) and closes with the object.
    """

    def __init__(self, log_dir: str | Path, *, resume_after: int | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.purge_step = None if resume_after is None else resume_after + 1
        self._writer: Any = None
        self._disabled = not tensorboard_enabled()
        if resume_after is None and not self._disabled and self.log_dir.is_dir():
            for old in self.log_dir.glob(EVENTS_PREFIX + "*"):
                old.unlink(missing_ok=True)

    def _open(self) -> Any:
        if self._writer is None and not self._disabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard absent or broken: the CSV log is enough
                self._disabled = True
                return None
            self._writer = SummaryWriter(str(self.log_dir), purge_step=self.purge_step)
            record(self.log_dir.parent, directory=True)  # tb/: event files are nasforge's
            weakref.finalize(self, self._writer.close)
        return self._writer

    def write(self, row: dict[str, Any]) -> None:
        """Add one row's numeric columns at step ``row["epoch"]`` and flush."""
        writer = self._open()
        if writer is None or "epoch" not in row:
            return
        step = int(row["epoch"])
        for column, value in row.items():
            number = _number(value)
            if column != "epoch" and number is not None:
                writer.add_scalar(scalar_tag(column), number, step)
        writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


__all__ = ["TensorBoardMirror", "scalar_tag", "tensorboard_enabled"]
