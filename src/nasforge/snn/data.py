"""Data for spiking networks: static images (direct encoding) or DVS frames, on the device.

Static sets come from the foundation's registry (digits, CIFAR-10/100, SVHN, Tiny-ImageNet)
and are batched as images [N, C, H, W]; the network repeats the stem current over T.
Neuromorphic sets (CIFAR10-DVS, DVS128-Gesture) are integrated to T frames once and
batched as [T, N, 2, H, W] event counts. Both batchers replay the same batches for the
same ``(seed, epoch)``, so resumed runs continue exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nasforge.data import Augment, load_dataset, make_batches
from nasforge.data.batching import check_indices, epoch_seed
from nasforge.data.datasets import DATASETS, FolderSplit, Split, data_root, stratified_split
from nasforge.data.dvs import DVS_DATASETS, DVSSplit, load_dvs_dataset
from nasforge.errors import NasforgeError

AnySplit = Split | FolderSplit | DVSSplit


@dataclass
class SNNData:
    """A data set as a spiking network sees it: splits plus the input geometry."""

    name: str
    train: AnySplit
    val: AnySplit | None
    test: AnySplit
    num_classes: int
    in_channels: int
    in_size: int
    frames: bool  # True: DVS frames [T, N, 2, H, W]; False: static images
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @staticmethod
    def labels(split: AnySplit) -> np.ndarray:
        return split.y.numpy()


def snn_dataset_names() -> list[str]:
    return [*DATASETS.names(), *DVS_DATASETS]


def load_snn_data(name: str, root: str | None = None, *, timesteps: int = 8,
                  upscale: int | None = None) -> SNNData:
    """Load a static or neuromorphic data set; DVS events are integrated to ``timesteps``."""
    if name in DVS_DATASETS:
        ds = load_dvs_dataset(name, data_root(root), timesteps)
        size = int(ds.train.x.shape[-1])
        return SNNData(name, ds.train, None, ds.test, ds.num_classes, 2, size, True)
    if name not in DATASETS.names():
        raise NasforgeError(
            f"unknown dataset '{name}' for SNNs; choose from: {', '.join(snn_dataset_names())}"
        )
    ds = load_dataset(name, root, upscale=upscale)
    return SNNData(name, ds.train, ds.val, ds.test, ds.num_classes, ds.channels, ds.size, False,
                   ds.mean, ds.std)


def snn_dataset_info(name: str, root: str | None = None, *,
                     timesteps: int = 8) -> dict[str, Any]:
    """What ``nasforge data info`` shows of any data set: for a neuromorphic one (DVS events
    integrated to ``timesteps`` frames of 2 channels) as :func:`nasforge.data.dataset_info`
    shows a static one."""
    if name not in DVS_DATASETS:
        from nasforge.data import dataset_info

        return dataset_info(name, root)
    data = load_snn_data(name, root, timesteps=timesteps)
    return {"name": data.name, "num_classes": data.num_classes, "channels": 2,
            "size": data.in_size, "timesteps": timesteps, "train": len(data.train),
            "val": None, "test": len(data.test)}


def holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, validation) indices, ``fraction`` held out per class (the super-network's 8:2)."""
    if not 0.0 < fraction < 1.0:
        raise NasforgeError(f"validation fraction {fraction} is not allowed: use 0 < f < 1")
    val, train = stratified_split(labels, (fraction,), seed)
    if len(val) == 0 or len(train) == 0:
        raise NasforgeError(f"{len(labels)} examples are too few to hold out {fraction:.0%}")
    return torch.from_numpy(train).long(), torch.from_numpy(val).long()


class FrameBatches:
    """Mini-batches of DVS frames held on the device as uint8 event counts.

    Yields float32 ``[T, B, 2, H, W]`` (time first, as multi-step SpikingJelly layers expect)
    and int64 labels. No augmentation: the thesis applies it to static data only.
    """

    batch_dims = (1, 0)  # where a data-parallel rank cuts its part of (frames, labels)

    def __init__(self, split: DVSSplit, batch_size: int, *, device: str | torch.device = "cpu",
                 indices: torch.Tensor | None = None, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise NasforgeError(f"batch size {batch_size!r} is not allowed: use an integer >= 1")
        self.device = torch.device(device)
        x, y = split.x, split.y
        if indices is not None:
            indices = check_indices(indices, len(split))
            x, y = x[indices], y[indices]
        self._x = x.to(self.device)
        self._y = y.to(self.device)
        self.batch_size, self.shuffle, self.seed, self.drop_last = (
            batch_size, shuffle, seed, drop_last)

    @property
    def num_examples(self) -> int:
        return int(self._y.shape[0])

    def __len__(self) -> int:
        n = self.num_examples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.shuffle:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(epoch_seed(self.seed, epoch))
            order = torch.randperm(self.num_examples, generator=generator, device=self.device)
        else:
            order = torch.arange(self.num_examples, device=self.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            take = order[start : start + self.batch_size]
            yield self._x[take].transpose(0, 1).float(), self._y[take]


def snn_batches(data: SNNData, split: AnySplit, batch_size: int, *, device: torch.device,
                indices: torch.Tensor | None = None, shuffle: bool = True, seed: int = 0,
                augment: Augment | None = None) -> Any:
    """A batcher for ``split``: :class:`FrameBatches` for DVS, the image batchers otherwise."""
    if data.frames:
        return FrameBatches(split, batch_size, device=device, indices=indices,  # type: ignore[arg-type]
                            shuffle=shuffle, seed=seed)
    return make_batches(split, batch_size, mean=data.mean, std=data.std, device=device,
                        indices=indices, shuffle=shuffle, seed=seed,
                        augment=augment if shuffle else None)


def static_augment(data: SNNData, crop_pad: int, flip: bool, cutout: int) -> Augment | None:
    """Pad-crop, flip and cutout for static images (§5.4.1); none for event frames."""
    if data.frames:
        return None
    return Augment(crop_pad, flip, min(cutout, data.in_size))
