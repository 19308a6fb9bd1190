"""What every long-running stage shares: device, seeding, mixed precision, run directories
and logs."""

from __future__ import annotations

import contextlib
import csv
import math
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nasforge.checkpoint import atomic_write_json
from nasforge.config import Config, read_config, save_config
from nasforge.errors import NasforgeError, NumericalError


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU; an unavailable device is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise NasforgeError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NasforgeError(f"device '{name}' requested but CUDA is not available; use cpu")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """Autocast dtype for ``amp`` on ``device``; CPU runs in float32."""
    if device.type != "cuda" or amp == "fp32":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_finite(loss: torch.Tensor, where: str, checkpoint: Path | None) -> None:
    """Stop a run on a NaN/inf loss, naming the step and the checkpoint to resume from.

    Called once per epoch on the accumulated loss, so it costs one host sync per epoch.
    """
    value = float(loss)
    if not math.isfinite(value):
        last = f"; last good checkpoint: {checkpoint}" if checkpoint and checkpoint.exists() \
            else ""
        raise NumericalError(
            f"loss became {value} at {where}{last}; resume with a lower learning rate, "
            "e.g. --resume RUN_DIR --set search.w_lr=0.01"
        )


def prepare_run_dir(out: str | Path, cfg: Config, *, force: bool = False) -> Path:
    """Create a fresh run directory holding the resolved config."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise NasforgeError(
                f"run directory {out} already exists; pass --resume {out} to continue it "
                "or --force to overwrite"
            )
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
    except OSError as exc:
        raise NasforgeError(f"cannot write run directory {out}: {exc.strerror}") from exc
    return out


def load_run_config(run_dir: str | Path) -> Config:
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise NasforgeError(f"{run_dir} is not a nasforge run directory (no config.yaml)")
    return read_config(path)


class CsvLog:
    """Append-only CSV of per-epoch metrics; rows past a resumed epoch are dropped."""

    def __init__(self, path: str | Path, *, resume_after: int | None = None) -> None:
        self.path = Path(path)
        if resume_after is not None and self.path.exists():
            rows = [r for r in self.read() if int(r["epoch"]) <= resume_after]
            self.path.unlink()
            for row in rows:
                self.write(row)
        elif self.path.exists():
            self.path.unlink()

    def write(self, row: dict[str, Any]) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def read(self) -> list[dict[str, str]]:
        return read_csv(self.path)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV log as dicts; an absent log has no rows."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def write_results(run_dir: Path, results: dict) -> Path:
    return atomic_write_json(run_dir / "results.json", results)
