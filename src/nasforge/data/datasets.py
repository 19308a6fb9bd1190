"""Image-classification data sets, loaded whole into memory as uint8 tensors.

Every data set here is small enough to hold in (device) memory, so the rest of nasforge works on
plain tensors instead of per-example file reads. Only ``digits`` ships with a library
(scikit-learn); the others are read from the official archives extracted under the data root.
Data sets too big for memory (ImageNet) are lists of image files instead: a :class:`FolderSplit`,
registered in :mod:`nasforge.data.folders` and batched by its ``FolderBatches``.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nasforge.errors import NasforgeError
from nasforge.registry import Registry

__all__ = [
    "DATASETS",
    "Dataset",
    "FolderSplit",
    "Split",
    "data_root",
    "dataset_info",
    "load_dataset",
]

# Fixed so the digits train/val/test split never depends on a run's seed.
DIGITS_SPLIT_SEED = 20240601
_ROOT_HINT = "extracted under the data root (--data-root or NASFORGE_DATA)"
_CIFAR10_SOURCE = (
    "CIFAR-10 'python version' from https://www.cs.toronto.edu/~kriz/cifar.html, " + _ROOT_HINT
)
_CIFAR100_SOURCE = (
    "CIFAR-100 'python version' from https://www.cs.toronto.edu/~kriz/cifar.html, " + _ROOT_HINT
)
_SVHN_SOURCE = (
    "SVHN 'format 2' (cropped digits) from http://ufldl.stanford.edu/housenumbers/, "
    "placed under the data root's svhn/ folder (--data-root or NASFORGE_DATA)"
)


@dataclass
class Split:
    """One split of a data set: raw pixels and labels, kept compact as uint8 until batching."""

    x: torch.Tensor  # uint8 [N, C, H, W], 0..255
    y: torch.Tensor  # int64 [N]

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise ValueError(
                f"Split.x must be uint8 [N, C, H, W], got {self.x.dtype} {self.x.shape}"
            )
        if self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise ValueError(f"Split.y must be int64 [N], got {self.y.dtype} {self.y.shape}")

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class FolderSplit:
    """One split kept on disk: image paths and labels, decoded batch by batch when training.

    ``size`` is the side of the square images the transforms produce and ``policy`` picks the
    transforms (see :class:`nasforge.data.image_transforms.ImageTransform`). ``mean`` and
    ``std`` are the data set's published statistics, since measuring them would mean decoding
    every image.
    """

    paths: list[str]
    y: torch.Tensor  # int64 [N]
    classes: list[str]
    size: int
    policy: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int = 3

    def __post_init__(self) -> None:
        if self.y.dtype != torch.int64 or self.y.shape != (len(self.paths),):
            raise ValueError(
                f"FolderSplit.y must be int64 [{len(self.paths)}], got {self.y.dtype} "
                f"{tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class Dataset:
    """A loaded data set with the per-channel statistics used to normalise it."""

    name: str
    train: Split | FolderSplit
    val: Split | FolderSplit | None
    test: Split | FolderSplit
    num_classes: int
    classes: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        if isinstance(self.train, FolderSplit):
            return self.train.channels
        return int(self.train.x.shape[1])

    @property
    def size(self) -> int:
        if isinstance(self.train, FolderSplit):
            return self.train.size
        return int(self.train.x.shape[-1])


AnySplit = Split | FolderSplit
RawSplits = tuple[AnySplit, AnySplit | None, AnySplit, list[str]]
DATASETS: Registry[Callable[[Path], RawSplits]] = Registry("dataset")


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where data files live: explicit root, else ``$NASFORGE_DATA``, else ``~/.nasforge/data``."""
    if root is not None and str(root) != "":
        return Path(root).expanduser()
    env = os.environ.get("NASFORGE_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".nasforge" / "data"


def load_dataset(
    name: str, root: str | os.PathLike[str] | None = None, *, upscale: int | None = None
) -> Dataset:
    """Load a registered data set, optionally resized to ``upscale`` × ``upscale`` pixels."""
    loader = DATASETS.get(name)
    train, val, test, classes = loader(data_root(root))
    if upscale is not None:
        native = train.size if isinstance(train, FolderSplit) else int(train.x.shape[-1])
        if isinstance(upscale, bool) or not isinstance(upscale, int) or upscale < native:
            raise NasforgeError(
                f"upscale {upscale!r} is not allowed for {name}: use an integer >= {native} "
                f"(its native size)"
            )
        if upscale != native:
            train, test = _resize(train, upscale), _resize(test, upscale)
            val = None if val is None else _resize(val, upscale)
    if isinstance(train, FolderSplit):
        mean, std = train.mean, train.std
    else:
        mean, std = channel_stats(train.x)
    return Dataset(name, train, val, test, len(classes), classes, mean, std)


def dataset_info(
    name: str, root: str | os.PathLike[str] | None = None, *, upscale: int | None = None
) -> dict[str, Any]:
    """A JSON-ready summary of a data set (what ``nasforge data info`` prints)."""
    ds = load_dataset(name, root, upscale=upscale)
    return {
        "name": ds.name,
        "num_classes": ds.num_classes,
        "classes": list(ds.classes),
        "channels": ds.channels,
        "size": ds.size,
        "train": len(ds.train),
        "val": None if ds.val is None else len(ds.val),
        "test": len(ds.test),
        "mean": list(ds.mean),
        "std": list(ds.std),
    }


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std in [0, 1] units, exact integer sums in chunks."""
    channels = int(x.shape[1])
    total = torch.zeros(channels, dtype=torch.int64)
    squares = torch.zeros(channels, dtype=torch.int64)
    for start in range(0, int(x.shape[0]), 4096):
        chunk = x[start : start + 4096].to(device="cpu", dtype=torch.int64)
        total += chunk.sum(dim=(0, 2, 3))
        squares += (chunk * chunk).sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    if count == 0:
        raise NasforgeError("cannot compute normalisation statistics of an empty train split")
    means, stds = [], []
    for c in range(channels):
        mean = int(total[c]) / count
        var = max(int(squares[c]) / count - mean * mean, 0.0)
        means.append(mean / 255.0)
        stds.append(math.sqrt(var) / 255.0)
    return tuple(means), tuple(stds)


def _resize(split: AnySplit, size: int) -> AnySplit:
    """Bilinear resize, rounded back to uint8; chunked to bound the float32 working memory."""
    if isinstance(split, FolderSplit):
        return replace(split, size=size)  # its transforms resize while batching
    parts = []
    for start in range(0, len(split), 4096):
        chunk = split.x[start : start + 4096].float()
        out = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False)
        parts.append(out.round().clamp(0, 255).to(torch.uint8))
    return Split(torch.cat(parts), split.y.clone())


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8)),
        torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
    )


# --- digits -------------------------------------------------------------------------------------


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Split indices so every class is spread over the parts in proportion, ±1 per class.

    Part sizes are ``round(fraction * N)`` (the last part takes the rest); per-class counts use
    largest remainders so the totals come out exact. ``RandomState`` is used because its stream is
    frozen across numpy versions, keeping the split stable.
    """
    rng = np.random.RandomState(seed)
    classes = np.unique(labels)
    counts = np.array([(labels == c).sum() for c in classes])
    per_class = np.zeros((len(fractions) + 1, len(classes)), dtype=np.int64)
    left = counts.copy()
    for p, frac in enumerate(fractions):
        target = int(round(frac * len(labels)))
        quota = counts * frac
        take = np.minimum(np.floor(quota).astype(np.int64), left)
        order = np.argsort(-(quota - np.floor(quota)), kind="stable")
        for c in order:
            if take.sum() >= target:
                break
            if take[c] < left[c]:
                take[c] += 1
        per_class[p] = take
        left -= take
    per_class[-1] = left
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for k, c in enumerate(classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        bounds = np.cumsum(per_class[:, k])[:-1]
        for p, chunk in enumerate(np.split(members, bounds)):
            parts[p].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


@DATASETS.register("digits")
def _load_digits(root: Path) -> RawSplits:
    """scikit-learn's embedded 8×8 digits: a real data set that needs no download (tests, demos)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    y = bunch.target.astype(np.int64)
    test, val, train = stratified_split(y, (0.2, 0.1), DIGITS_SPLIT_SEED)
    classes = [str(c) for c in range(10)]
    return _split(x[train], y[train]), _split(x[val], y[val]), _split(x[test], y[test]), classes


NOISY_DIGITS_SIGMA = 64.0
"""Std of the Gaussian pixel noise of ``noisy-digits``, in 0–255 units (a quarter of the range)."""
NOISY_DIGITS_COPIES = {"train": 2, "val": 32, "test": 32}
"""Noisy copies of each digits image per split: more train data, and evaluation over 11,488
test images instead of 359, so one image moves the accuracy by 0.009 points, not 0.28."""
NOISY_DIGITS_SEEDS = {"train": 1, "val": 2, "test": 3}


def _noisy_copies(split: Split, copies: int, seed: int) -> Split:
    """``copies`` noisy versions of every image, copy-major; fixed by ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    xs = []
    for _ in range(copies):
        x = split.x.float() + NOISY_DIGITS_SIGMA * torch.randn(split.x.shape, generator=gen)
        xs.append(x.round().clamp(0, 255).to(torch.uint8))
    return Split(torch.cat(xs), split.y.repeat(copies))


@DATASETS.register("noisy-digits")
def _load_noisy_digits(root: Path) -> RawSplits:
    """Digits under fixed Gaussian pixel noise: a harder 8×8 task whose accuracy depends on the
    architecture far more than on the training seed (the ``tabular-noisy-digits`` benchmark).

    The same stratified split as ``digits``, so no noisy copy of a test image is in train.
    """
    train, val, test, classes = _load_digits(root)
    return (
        _noisy_copies(train, NOISY_DIGITS_COPIES["train"], NOISY_DIGITS_SEEDS["train"]),
        _noisy_copies(val, NOISY_DIGITS_COPIES["val"], NOISY_DIGITS_SEEDS["val"]),
        _noisy_copies(test, NOISY_DIGITS_COPIES["test"], NOISY_DIGITS_SEEDS["test"]),
        classes,
    )


# --- CIFAR ----------------------------------------------------------------------------------------


def _numpy_global(module: str, name: str) -> Any:
    import importlib

    for mod in (module.replace("numpy.core", "numpy._core"), module):
        try:
            return getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"cannot resolve {module}.{name}")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and numpy arrays, so a tampered file cannot run code."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "_codecs":
            import codecs

            return codecs.encode
        return _numpy_global(module, name)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _read_pickle(path: Path, source: str) -> dict[bytes, Any]:
    if not path.is_file():
        raise NasforgeError(f"missing data file {path}; get the {source}")
    try:
        with path.open("rb") as fh:
            obj = _ArrayUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # any failure here means a damaged or foreign file
        raise NasforgeError(
            f"cannot read data file {path} ({_one_line(exc)}); re-download the {source}"
        ) from exc
    if not isinstance(obj, dict):
        raise NasforgeError(f"data file {path} is not a pickled dict; re-download the {source}")
    return obj


def _cifar_batch(path: Path, label_key: bytes, num_classes: int, source: str) -> Split:
    batch = _read_pickle(path, source)
    try:
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"b'data' is {data.dtype} {data.shape}, expected uint8 [N, 3072]")
        if labels.shape[0] != data.shape[0]:
            raise ValueError(f"{labels.shape[0]} labels for {data.shape[0]} images")
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"labels outside 0..{num_classes - 1}")
    except (KeyError, TypeError, ValueError) as exc:
        raise NasforgeError(
            f"data file {path} has an unexpected layout ({_one_line(exc)}); "
            f"re-download the {source}"
        ) from exc
    return _split(data.reshape(-1, 3, 32, 32), labels)


def _class_names(path: Path, key: bytes, num_classes: int, source: str) -> list[str]:
    meta = _read_pickle(path, source)
    names = meta.get(key)
    if not isinstance(names, list) or len(names) != num_classes:
        raise NasforgeError(
            f"data file {path} lacks {num_classes} class names under {key!r}; "
            f"re-download the {source}"
        )
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


def _concat(splits: list[Split]) -> Split:
    return Split(torch.cat([s.x for s in splits]), torch.cat([s.y for s in splits]))


@DATASETS.register("cifar10")
def _load_cifar10(root: Path) -> RawSplits:
    folder = root / "cifar-10-batches-py"
    classes = _class_names(folder / "batches.meta", b"label_names", 10, _CIFAR10_SOURCE)
    train = _concat(
        [
            _cifar_batch(folder / f"data_batch_{i}", b"labels", 10, _CIFAR10_SOURCE)
            for i in range(1, 6)
        ]
    )
    test = _cifar_batch(folder / "test_batch", b"labels", 10, _CIFAR10_SOURCE)
    return train, None, test, classes


@DATASETS.register("cifar100")
def _load_cifar100(root: Path) -> RawSplits:
    folder = root / "cifar-100-python"
    classes = _class_names(folder / "meta", b"fine_label_names", 100, _CIFAR100_SOURCE)
    train = _cifar_batch(folder / "train", b"fine_labels", 100, _CIFAR100_SOURCE)
    test = _cifar_batch(folder / "test", b"fine_labels", 100, _CIFAR100_SOURCE)
    return train, None, test, classes


# --- SVHN -----------------------------------------------------------------------------------------


def _svhn_split(path: Path) -> Split:
    if not path.is_file():
        raise NasforgeError(f"missing data file {path}; get the {_SVHN_SOURCE}")
    try:
        from scipy.io import loadmat

        mat = loadmat(str(path))
        x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).reshape(-1).astype(np.int64)
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
            raise ValueError(f"X is {x.dtype} {x.shape}, expected uint8 [32, 32, 3, N]")
        if y.shape[0] != x.shape[3]:
            raise ValueError(f"{y.shape[0]} labels for {x.shape[3]} images")
        if y.size and (y.min() < 1 or y.max() > 10):
            raise ValueError("labels outside 1..10")
    except Exception as exc:  # scipy raises many types for damaged files
        raise NasforgeError(
            f"cannot read data file {path} ({_one_line(exc)}); re-download the {_SVHN_SOURCE}"
        ) from exc
    y[y == 10] = 0  # SVHN stores the digit 0 as label 10
    return _split(x.transpose(3, 2, 0, 1), y)


@DATASETS.register("svhn")
def _load_svhn(root: Path) -> RawSplits:
    folder = root / "svhn"
    train = _svhn_split(folder / "train_32x32.mat")
    test = _svhn_split(folder / "test_32x32.mat")
    return train, None, test, [str(c) for c in range(10)]
