"""Mini-batches drawn from a split that sits on the training device.

The data sets are small, so copying the selected examples to the device once (as uint8) and
slicing batches there avoids a DataLoader's worker processes and host-to-device copies per step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from nasforge.data.augment import Augment
from nasforge.data.datasets import FolderSplit, Split
from nasforge.errors import NasforgeError

__all__ = ["Batches", "epoch_seed", "make_batches", "normalisation"]

# Options only FolderBatches understands; in-memory splits ignore them.
FOLDER_ONLY_OPTIONS = ("image_size", "train", "num_workers", "jitter")


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


class Batches:
    """Mini-batches of one split held on the device.

    Epoch e's order and augmentation depend only on ``(seed, e)``, so a resumed run replays the
    exact same batches. With ``shuffle=False`` (evaluation) examples come in order and are never
    augmented. The random stream is the device's, so the same seed gives different batches on CPU
    and on CUDA.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        device: str | torch.device = "cpu",
        indices: torch.Tensor | None = None,
        augment: Augment | None = None,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self._scale, self._shift = normalisation(batch_size, mean, std, int(split.x.shape[1]),
                                                 self.device)
        x, y = split.x, split.y
        if indices is not None:
            indices = _check_indices(indices, len(split))
            x, y = x[indices], y[indices]
        self._x = x.to(self.device, dtype=torch.uint8)
        self._y = y.to(self.device, dtype=torch.int64)
        self.batch_size = batch_size
        self.augment = augment if augment is not None and augment.active else None
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.channels_last = channels_last

    def __len__(self) -> int:
        n = self.num_examples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self) -> int:
        return int(self._y.shape[0])

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)``: float32 normalised ``[B, C, H, W]`` and int64 labels, on the device."""
        if not self.shuffle:
            for start in range(0, len(self) * self.batch_size, self.batch_size):
                end = start + self.batch_size
                yield self._finish(self._x[start:end]), self._y[start:end]
            return
        generator = torch.Generator(device=self.device)
        generator.manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(self.num_examples, generator=generator, device=self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            take = order[start : start + self.batch_size]
            x = self._x[take]
            if self.augment is None:
                yield self._finish(x), self._y[take]
                continue
            x = self._normalise(self.augment.raw(x, generator))
            yield self._layout(self.augment.normalised(x, generator)), self._y[take]

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return x.float() * self._scale - self._shift

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        return self._layout(self._normalise(x))


def _check_indices(indices: torch.Tensor, size: int) -> torch.Tensor:
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


def make_batches(split: Split | FolderSplit, batch_size: int, **kwargs: Any) -> Any:
    """``Batches`` for an in-memory split, ``FolderBatches`` for one read from image files.

    The keyword arguments are those of ``Batches``; the folder-only options
    (:data:`FOLDER_ONLY_OPTIONS`) are dropped for in-memory splits, so a loop can pass them always.
    """
    if isinstance(split, FolderSplit):
        from nasforge.data.folders import FolderBatches  # folders imports this module

        return FolderBatches(split, batch_size, **kwargs)
    for name in FOLDER_ONLY_OPTIONS:
        kwargs.pop(name, None)
    return Batches(split, batch_size, **kwargs)
