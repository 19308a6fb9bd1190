"""Index files: the subset of a split a search trains on, as plain text anyone can inspect.

Proxy-data selection writes them and searches read them, so a bad file must fail early with a
message that points at the offending line.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch

from nasforge.errors import NasforgeError
from nasforge.outputs import record

__all__ = ["read_index_file", "split_weight_arch", "write_index_file"]

_INTEGER = re.compile(r"[+-]?[0-9]+")


def read_index_file(path: str | os.PathLike[str], num_examples: int) -> torch.Tensor:
    """Read one index per line (blank lines and ``#`` comments ignored), in file order, as int64."""
    path = Path(path)
    if not path.is_file():
        raise NasforgeError(f"index file {path} not found; it needs one example index per line")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NasforgeError(f"cannot read index file {path}: {' '.join(str(exc).split())}") from exc
    indices: list[int] = []
    first_line: dict[int, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        item = line.split("#", 1)[0].strip()
        if not item:
            continue
        if not _INTEGER.fullmatch(item):
            raise NasforgeError(f"{path}:{lineno}: {item[:80]!r} is not an integer index")
        index = int(item)
        if not 0 <= index < num_examples:
            raise NasforgeError(
                f"{path}:{lineno}: index {index} is out of range; allowed 0..{num_examples - 1}"
            )
        if index in first_line:
            raise NasforgeError(
                f"{path}:{lineno}: duplicate index {index} (first on line {first_line[index]})"
            )
        first_line[index] = lineno
        indices.append(index)
    if not indices:
        raise NasforgeError(f"index file {path} lists no indices; put one example index per line")
    return torch.tensor(indices, dtype=torch.int64)


def write_index_file(
    path: str | os.PathLike[str],
    indices: torch.Tensor | Iterable[int],
    *,
    comment: str | None = None,
) -> None:
    """Write indices one per line, atomically, so a crash never leaves a half-written subset.

    ``comment`` (possibly several lines) goes first as ``#`` lines, e.g. how the subset was chosen.
    """
    path = Path(path)
    if isinstance(indices, torch.Tensor):
        values = [int(i) for i in indices.reshape(-1).tolist()]
    else:
        values = [int(i) for i in indices]
    if any(v < 0 for v in values) or len(set(values)) != len(values):
        raise ValueError("indices to write must be distinct and non-negative")
    lines = [f"# {c}".rstrip() for c in comment.splitlines()] if comment else []
    lines.extend(str(v) for v in values)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    record(path)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the platform allows opening directories."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def split_weight_arch(indices: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle with ``seed`` and halve: (weight half, architecture half), as DARTS does.

    With an odd count the weight half gets the extra example. The shuffle uses a CPU generator so
    the halves do not depend on the device the indices sit on.
    """
    indices = torch.as_tensor(indices)
    if indices.dim() != 1:
        raise NasforgeError(f"indices must be 1-D, got shape {tuple(indices.shape)}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(indices.numel(), generator=generator).to(indices.device)
    shuffled = indices[order]
    cut = (indices.numel() + 1) // 2
    return shuffled[:cut], shuffled[cut:]
