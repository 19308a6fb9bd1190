"""What both batchers check and draw alike: arguments, normalisation, per-epoch seeds, indices.

Shared by :class:`~nasforge.data.loader.Batches` (in-memory splits), ``FolderBatches``
(image folders) and the SNN frame batcher, so each rejects the same bad input and replays
the same batches after a resume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from nasforge.errors import NasforgeError

__all__ = ["check_indices", "epoch_seed", "normalisation"]


def normalisation(batch_size: int, mean: Sequence[float], std: Sequence[float], channels: int,
                  device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a batcher's arguments; return ``(scale, shift)``: x/255 normalised = x*scale-shift.

    Shared by :class:`Batches` and ``FolderBatches`` so both reject the same bad input.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise NasforgeError(f"batch size {batch_size!r} is not allowed: use an integer >= 1")
    if len(mean) != channels or len(std) != channels:
        raise NasforgeError(
            f"mean {tuple(mean)} / std {tuple(std)} need one value per channel ({channels})"
        )
    if any(float(s) <= 0 for s in std):
        raise NasforgeError(f"std {tuple(std)} is not allowed: every value must be > 0")
    stats = dict(dtype=torch.float32, device=device)
    std_t = torch.tensor([float(s) for s in std], **stats).view(1, -1, 1, 1)
    mean_t = torch.tensor([float(m) for m in mean], **stats).view(1, -1, 1, 1)
    return 1.0 / (255.0 * std_t), mean_t / std_t  # (x/255 - mean) / std


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit generator seed fixed by ``(seed, epoch)`` alone, so resumed runs replay batches."""
    digest = hashlib.blake2b(f"nasforge.batches:{seed}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def check_indices(indices: torch.Tensor, size: int) -> torch.Tensor:
    """``indices`` as a 1-D int64 CPU tensor, each in ``0..size-1`` (else a one-line error)."""
    indices = torch.as_tensor(indices).to("cpu")
    if indices.dim() != 1 or indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise NasforgeError(
            f"indices must be a 1-D integer tensor, got {indices.dtype} {tuple(indices.shape)}"
        )
    indices = indices.long()
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= size):
        bad = int(indices.min()) if int(indices.min()) < 0 else int(indices.max())
        raise NasforgeError(f"index {bad} is out of range: the split has indices 0..{size - 1}")
    return indices
