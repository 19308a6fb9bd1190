"""Atomic files: a run killed at any moment leaves either the old file or the new one.

Every write goes to a temporary file in the same directory, is fsynced, then renamed over
the target. Checkpoints keep the previous good copy as ``NAME.prev`` so a checkpoint that
is found corrupt (disk trouble, a foreign file) can fall back to it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from nasforge.errors import NasforgeError


def _atomic_write(path: str | Path, write: Callable[[BinaryIO], None], *,
                  keep_previous: bool = False) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if keep_previous and path.exists():
            os.replace(path, path.with_name(path.name + ".prev"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` atomically, keeping the previous checkpoint as ``PATH.prev``."""
    return _atomic_write(path, lambda fh: torch.save(state, fh), keep_previous=True)


def _try_load(path: Path) -> dict | None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:
        return None
    return state if isinstance(state, dict) else None


def has_checkpoint(path: str | Path) -> bool:
    """True when ``path`` or its ``.prev`` fallback exists."""
    path = Path(path)
    return path.exists() or path.with_name(path.name + ".prev").exists()


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint, falling back to ``PATH.prev`` when the latest is unreadable."""
    path = Path(path)
    prev = path.with_name(path.name + ".prev")
    if not path.exists() and not prev.exists():
        raise NasforgeError(f"no checkpoint at {path}")
    state = _try_load(path) if path.exists() else None
    if state is not None:
        return state
    state = _try_load(prev) if prev.exists() else None
    if state is None:
        raise NasforgeError(f"checkpoint {path} is corrupt and no readable {prev.name} exists")
    import warnings

    warnings.warn(f"checkpoint {path} is corrupt; resuming from {prev.name}", stacklevel=2)
    return state
