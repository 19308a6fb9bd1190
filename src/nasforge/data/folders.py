"""ImageNet and Tiny-ImageNet: class-folder data sets read image by image while training.

They do not fit in memory, so a split is a :class:`FolderSplit` (paths and labels, found by
listing folders without decoding anything) and :class:`FolderBatches` decodes JPEGs with Pillow
in DataLoader worker processes. Its interface matches :class:`nasforge.data.loader.Batches`, so
the training loops use either through :func:`nasforge.data.loader.make_batches`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from nasforge.data.augment import Augment
from nasforge.data.batching import check_indices, epoch_seed, normalisation
from nasforge.data.datasets import DATASETS, FolderSplit, RawSplits
from nasforge.data.image_transforms import ImageTransform, decode_image
from nasforge.errors import NasforgeError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "FolderBatches",
    "default_num_workers",
    "load_imagenet",
    "load_tiny_imagenet",
]

# The usual ImageNet train-set statistics (RGB, [0, 1] units); Tiny-ImageNet is a downsampled
# 200-class subset of ImageNet, so it uses them too.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_ROOT_HINT = "(--data-root or NASFORGE_DATA)"
_IMAGENET_SOURCE = (
    "ImageNet (ILSVRC2012 train and val images) from https://image-net.org/download.php, "
    f"extracted under the data root's imagenet/ folder {_ROOT_HINT}"
)
_TINY_SOURCE = (
    "CS231n Tiny-ImageNet zip (http://cs231n.stanford.edu/tiny-imagenet-200.zip), "
    f"extracted under the data root {_ROOT_HINT}"
)


# --- finding the files ----------------------------------------------------------------------------


def _require_dir(path: Path, source: str) -> Path:
    if not path.is_dir():
        raise NasforgeError(f"missing data folder {path}; get the {source}")
    return path


def _require_file(path: Path, source: str, why: str = "") -> Path:
    if not path.is_file():
        raise NasforgeError(f"missing data file {path}{why}; get the {source}")
    return path


def _images_in(folder: Path) -> list[str]:
    """Image files directly in ``folder``, sorted by name so the order never depends on the OS."""
    names = sorted(
        n for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES) and n[0] != "."
    )
    return [os.path.join(folder, n) for n in names]


def _subfolders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and e.name[0] != ".")


def _labelled(
    groups: Sequence[tuple[int, list[str]]], classes: list[str], size: int, policy: str
) -> FolderSplit:
    paths = [p for _, files in groups for p in files]
    labels = np.repeat(
        np.array([c for c, _ in groups], dtype=np.int64), [len(f) for _, f in groups]
    )
    return FolderSplit(
        paths, torch.from_numpy(labels), list(classes), size, policy,
        IMAGENET_MEAN, IMAGENET_STD,
    )


def _non_empty(split: FolderSplit, folder: Path, source: str) -> FolderSplit:
    if len(split) == 0:
        raise NasforgeError(f"no images found under {folder}; get the {source}")
    return split


# --- ImageNet -------------------------------------------------------------------------------------


def _imagenet_val_folders(val: Path, classes: list[str]) -> list[tuple[int, list[str]]]:
    index = {c: k for k, c in enumerate(classes)}
    groups = []
    for wnid in _subfolders(val):
        if wnid not in index:
            raise NasforgeError(f"val folder {val / wnid} is not a class of the train split")
        groups.append((index[wnid], _images_in(val / wnid)))
    return groups


def _read_val_solution(path: Path) -> dict[str, str]:
    """``ImageId`` → wnid from ``LOC_val_solution.csv`` (the first token of PredictionString)."""
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        return {r["ImageId"].strip(): r["PredictionString"].split()[0] for r in rows}
    except (KeyError, IndexError, AttributeError, UnicodeDecodeError, csv.Error) as exc:
        raise NasforgeError(
            f"data file {path} is not an ImageId,PredictionString table ({type(exc).__name__}); "
            f"re-download the {_IMAGENET_SOURCE}"
        ) from exc


def _imagenet_val_flat(val: Path, folder: Path, classes: list[str]) -> list[tuple[int, list[str]]]:
    solution = _require_file(
        folder / "LOC_val_solution.csv", _IMAGENET_SOURCE,
        f" (labels for the flat layout {val}/*.JPEG; or sort val/ into val/<wnid>/ folders)",
    )
    wnids = _read_val_solution(solution)
    index = {c: k for k, c in enumerate(classes)}
    by_class: list[list[str]] = [[] for _ in classes]
    for path in _images_in(val):
        image_id = Path(path).stem
        if image_id not in wnids:
            raise NasforgeError(f"{solution} has no label for {path}")
        wnid = wnids[image_id]
        if wnid not in index:
            raise NasforgeError(f"{solution} labels {image_id} as {wnid}, not a train class")
        by_class[index[wnid]].append(path)
    return list(enumerate(by_class))


@DATASETS.register("imagenet")
def load_imagenet(root: Path) -> RawSplits:
    """ILSVRC2012: ``imagenet/train/<wnid>/``; ``val/<wnid>/`` or flat ``val/`` + solution CSV.

    The labelled val images are the test split (there is no separate val split).
    """
    folder = _require_dir(Path(root) / "imagenet", _IMAGENET_SOURCE)
    train_dir = _require_dir(folder / "train", _IMAGENET_SOURCE)
    val_dir = _require_dir(folder / "val", _IMAGENET_SOURCE)
    classes = _subfolders(train_dir)
    if not classes:
        raise NasforgeError(f"no class folders in {train_dir}; get the {_IMAGENET_SOURCE}")
    train = _labelled(
        [(k, _images_in(train_dir / c)) for k, c in enumerate(classes)], classes, 224, "inception"
    )
    if _subfolders(val_dir):
        groups = _imagenet_val_folders(val_dir, classes)
    else:
        groups = _imagenet_val_flat(val_dir, folder, classes)
    test = _labelled(groups, classes, 224, "inception")
    return (
        _non_empty(train, train_dir, _IMAGENET_SOURCE), None,
        _non_empty(test, val_dir, _IMAGENET_SOURCE), classes,
    )


# --- Tiny-ImageNet --------------------------------------------------------------------------------


def _tiny_val_labels(path: Path) -> dict[str, str]:
    """File name → wnid from ``val_annotations.txt`` (tab-separated: file, wnid, box)."""
    labels = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise NasforgeError(
                f"{path} line {number} is not 'file<TAB>wnid<TAB>box'; re-download the "
                f"{_TINY_SOURCE}"
            )
        labels[fields[0].strip()] = fields[1].strip()
    return labels


@DATASETS.register("tiny-imagenet")
def load_tiny_imagenet(root: Path) -> RawSplits:
    """Tiny-ImageNet-200 (64 × 64): ``train/<wnid>/images/``, ``val/images/`` + annotations.

    Classes are the sorted ``wnids.txt``; the labelled val images are the test split.
    """
    folder = _require_dir(Path(root) / "tiny-imagenet-200", _TINY_SOURCE)
    wnids_file = _require_file(folder / "wnids.txt", _TINY_SOURCE)
    classes = sorted({w.strip() for w in wnids_file.read_text().splitlines() if w.strip()})
    if not classes:
        raise NasforgeError(f"{wnids_file} lists no classes; re-download the {_TINY_SOURCE}")
    train_dir = _require_dir(folder / "train", _TINY_SOURCE)
    train = _labelled(
        [
            (k, _images_in(_require_dir(train_dir / c / "images", _TINY_SOURCE)))
            for k, c in enumerate(classes)
        ],
        classes, 64, "fixed",
    )
    val_dir = _require_dir(folder / "val", _TINY_SOURCE)
    images = _require_dir(val_dir / "images", _TINY_SOURCE)
    notes = _require_file(val_dir / "val_annotations.txt", _TINY_SOURCE)
    wnids = _tiny_val_labels(notes)
    index = {c: k for k, c in enumerate(classes)}
    by_class: list[list[str]] = [[] for _ in classes]
    for path in _images_in(images):
        wnid = wnids.get(os.path.basename(path))
        if wnid is None:
            raise NasforgeError(f"{notes} has no label for {path}")
        if wnid not in index:
            raise NasforgeError(f"{notes} labels {path} as {wnid}, which is not in {wnids_file}")
        by_class[index[wnid]].append(path)
    test = _labelled(list(enumerate(by_class)), classes, 64, "fixed")
    return (
        _non_empty(train, train_dir, _TINY_SOURCE), None,
        _non_empty(test, images, _TINY_SOURCE), classes,
    )


# --- batches --------------------------------------------------------------------------------------


def default_num_workers() -> int:
    """One decoding process per core, at most 8 (more rarely helps and costs memory)."""
    return min(8, os.cpu_count() or 1)


# uint8 images, labels, cutout centres, error message ("" when all images decoded)
_RawBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]


class _BatchReader(torch.utils.data.Dataset):
    """Decodes and transforms one whole batch per call, in a worker or the main process.

    Per-image randomness comes from ``(epoch key, split index)``, so results do not depend on
    which worker reads the image. A bad file is returned as an error message, not raised,
    because DataLoader re-raises worker errors with a multi-line traceback in the message.
    """

    def __init__(
        self, paths: np.ndarray, labels: np.ndarray, index: np.ndarray,
        transform: ImageTransform, key: int, cutout: int,
    ) -> None:
        self.paths, self.labels, self.index = paths, labels, index
        self.transform, self.key, self.cutout = transform, key, cutout

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, positions: list[int]) -> _RawBatch:
        size = self.transform.size
        x = torch.empty((len(positions), 3, size, size), dtype=torch.uint8)
        holes = torch.zeros((len(positions), 2), dtype=torch.int64)
        for k, p in enumerate(positions):
            try:
                image = decode_image(os.fsdecode(self.paths[p]))
            except NasforgeError as exc:
                return x[:0], torch.zeros(0, dtype=torch.int64), holes[:0], str(exc)
            rng = None
            if self.transform.train:
                rng = np.random.default_rng([self.key, int(self.index[p])])
            x[k] = self.transform(image, rng)
            if self.cutout > 0 and rng is not None:
                holes[k] = torch.from_numpy(rng.integers(0, size, size=2))
        return x, torch.from_numpy(self.labels[positions]), holes, ""


def _cutout_at(x: torch.Tensor, centres: torch.Tensor, length: int) -> torch.Tensor:
    """Zero a ``length`` square per image at the given ``(row, col)`` centres (DARTS cutout)."""
    top = centres[:, 0] - length // 2
    left = centres[:, 1] - length // 2
    rows = torch.arange(x.shape[-2], device=x.device)[None, :]
    cols = torch.arange(x.shape[-1], device=x.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + length)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + length)
    return x.masked_fill((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0)


class FolderBatches:
    """Mini-batches of a :class:`FolderSplit`, decoded by DataLoader workers each epoch.

    Same interface and guarantees as :class:`~nasforge.data.loader.Batches`: epoch e's order
    and augmentation depend only on ``(seed, e)`` (and each image's index), never on the
    number of workers or the device. ``train`` picks the random training transforms; by
    default it is on when shuffling with an active ``augment`` (see ``docs/data.md``).
    """

    def __init__(
        self,
        split: FolderSplit,
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
        image_size: int | None = None,
        train: bool | None = None,
        num_workers: int | None = None,
        jitter: float = 0.4,
    ) -> None:
        self.device = torch.device(device)
        self._scale, self._shift = normalisation(batch_size, mean, std, split.channels,
                                                 self.device)
        workers = default_num_workers() if num_workers is None else num_workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise NasforgeError(f"num_workers {workers!r} is not allowed: use an integer >= 0")
        index = torch.arange(len(split)) if indices is None else check_indices(indices, len(split))
        self._index = index.numpy().astype(np.int64)
        # One bytes array instead of a list of str: forked workers then share it without
        # touching per-object reference counts (which would copy the pages into every worker).
        self._paths = np.array(
            [os.fsencode(split.paths[i]) for i in self._index.tolist()], dtype=np.bytes_
        )
        self._labels = split.y.numpy()[self._index].astype(np.int64)
        self.augment = augment if augment is not None and augment.active else None
        self.train = bool(shuffle and self.augment is not None) if train is None else bool(train)
        self.transform = ImageTransform(
            split.size if image_size is None else image_size, split.policy, train=self.train,
            flip=True if self.augment is None else self.augment.flip,
            crop_pad=0 if self.augment is None else self.augment.crop_pad, jitter=jitter,
        )
        self._cutout = self.augment.cutout if self.augment is not None and self.train else 0
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.channels_last = channels_last
        self.num_workers = workers
        self.pin_memory = self.device.type == "cuda"

    def __len__(self) -> int:
        n = self.num_examples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_examples(self) -> int:
        return int(self._labels.shape[0])

    @property
    def image_size(self) -> int:
        return self.transform.size

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)``: float32 normalised ``[B, 3, H, W]`` and int64 labels, on the device."""
        yield from self._load(epoch, self._chunks(epoch))

    def epoch_parts(self, epoch: int, dist: Any, train: bool = True
                    ) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
        """``(batch number, (x, y))`` of this data-parallel rank's part of each batch, the
        rules of :meth:`nasforge.distributed.Dist.enumerate_shards`; only the part is decoded,
        with the transforms it gets in the whole batch."""
        steps, parts = [], []
        for step, chunk in enumerate(self._chunks(epoch)):
            if train and len(chunk) < dist.world:
                continue
            start, end = dist.bounds(len(chunk))
            if end > start:
                steps.append(step)
                parts.append(chunk[start:end])
        yield from zip(steps, self._load(epoch, parts), strict=True)

    def _chunks(self, epoch: int) -> list[list[int]]:
        """The positions of each batch of ``epoch``."""
        key = epoch_seed(self.seed, epoch)
        if self.shuffle:
            order = torch.randperm(self.num_examples, generator=torch.Generator().manual_seed(key))
        else:
            order = torch.arange(self.num_examples)
        return [
            order[s : s + self.batch_size].tolist()
            for s in range(0, len(self) * self.batch_size, self.batch_size)
        ]

    def _load(self, epoch: int, chunks: list[list[int]]
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        key = epoch_seed(self.seed, epoch)
        reader = _BatchReader(
            self._paths, self._labels, self._index, self.transform, key, self._cutout
        )
        loader = DataLoader(
            reader, batch_size=None, sampler=chunks, num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            generator=torch.Generator().manual_seed(key),  # leaves the global RNG untouched
        )
        for x, y, holes, error in loader:
            if error:
                raise NasforgeError(error)
            yield self._finish(x, holes), y.to(self.device, non_blocking=True)

    def _finish(self, x: torch.Tensor, holes: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).float() * self._scale - self._shift
        if self._cutout > 0:
            x = _cutout_at(x, holes.to(self.device), self._cutout)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x
