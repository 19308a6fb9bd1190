"""Mini-batches drawn from a split that sits on the training device.

The data sets are small, so copying the selected examples to the device once (as uint8) and
slicing batches there avoids a DataLoader's worker processes and host-to-device copies per step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

from nasforge.data.augment import Augment
from nasforge.data.batching import check_indices, epoch_seed, normalisation
from nasforge.data.datasets import FolderSplit, Split

__all__ = ["Batches", "make_batches"]

# Options only FolderBatches understands; in-memory splits ignore them.
FOLDER_ONLY_OPTIONS = ("image_size", "train", "num_workers", "jitter")


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
            indices = check_indices(indices, len(split))
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


def make_batches(split: Split | FolderSplit, batch_size: int, **kwargs: Any) -> Any:
    """``Batches`` for an in-memory split, ``FolderBatches`` for one read from image files.

    The keyword arguments are those of ``Batches``; the folder-only options
    (:data:`FOLDER_ONLY_OPTIONS`) are dropped for in-memory splits, so a loop can pass them always.
    """
    if isinstance(split, FolderSplit):
        from nasforge.data.folders import FolderBatches  # only folder splits need it

        return FolderBatches(split, batch_size, **kwargs)
    for name in FOLDER_ONLY_OPTIONS:
        kwargs.pop(name, None)
    return Batches(split, batch_size, **kwargs)
