"""Neuromorphic data sets: CIFAR10-DVS and DVS128-Gesture, read from the raw event files.

Both are recordings of a 128 × 128 dynamic vision sensor. Each sample's events are integrated
into ``T`` frames *split by event number* (as the thesis did with SpikingJelly): the events,
in file order, are cut into ``T`` consecutive chunks of ``N // T`` events, the last chunk
taking the remainder, and frame ``t`` counts the events of chunk ``t`` per polarity and pixel.
A sample becomes a uint8 tensor ``[T, 2, 128, 128]`` (index ``[t, p, y, x]``); counts above
255 saturate at 255.

Integration reads every event file once, so the frames are cached under the data root as
``frames_T{T}.pt`` and later loads read only that file. SpikingJelly's data set classes
import torchvision, which cannot import beside the CPU torch used here, hence these readers.

File formats as implemented (see ``docs/data.md``):

- CIFAR10-DVS (``.aedat``, AEDAT 2.0 / jAER): ASCII header lines starting with ``#``, then
  big-endian pairs of a 32-bit address and a 32-bit timestamp (µs). DVS128 address bits:
  bit 0 polarity bit, bits 1–7 raw x, bits 8–14 raw y. Like SpikingJelly (and tonic), the
  sample is turned upright with ``x = 127 - raw_y``, ``y = 127 - raw_x`` and the polarity
  channel is ``1 - bit0`` (jAER's DVS128 convention: bit 0 clear is an ON event).
- DVS128-Gesture (``.aedat``, AEDAT 3.1 / libcaer): ASCII header lines starting with ``#``
  up to ``#!END-HEADER``, then packets, each a 28-byte little-endian header (int16
  eventType, int16 eventSource, int32 eventSize, eventTSOffset, eventTSOverflow,
  eventCapacity, eventNumber, eventValid) and ``eventCapacity × eventSize`` bytes of events.
  Polarity events (eventType 1, 8 bytes): uint32 data (bit 0 valid mark, bit 1 polarity,
  bits 2–16 y, bits 17–31 x) and int32 timestamp (µs), extended by ``eventTSOverflow << 31``.
  Events whose valid mark is clear are dropped; other event types are skipped.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from nasforge.data.datasets import data_root
from nasforge.errors import NasforgeError

__all__ = [
    "CIFAR10_DVS_CLASSES",
    "DEFAULT_T",
    "DVS_DATASETS",
    "GESTURE_CLASSES",
    "DVSDataset",
    "DVSSplit",
    "Events",
    "integrate_frames",
    "load_cifar10_dvs",
    "load_dvs128_gesture",
    "load_dvs_dataset",
    "read_aedat2",
    "read_aedat31",
    "read_cifar10_dvs_file",
    "read_gesture_labels",
    "read_trials",
    "split_by_number",
]

# The thesis's SNNs run T = 8 time steps (Figures 5.4–5.7; docs/snn.md); frames must match.
DEFAULT_T = 8
SIZE = 128
CACHE_VERSION = 1

CIFAR10_DVS_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# Labels 1..11 of the release's gesture_mapping.csv, in order.
GESTURE_CLASSES = (
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
)

_ROOT_HINT = "under the data root (--data-root or NASFORGE_DATA)"
_CIFAR10_DVS_SOURCE = (
    "CIFAR10-DVS release (Li et al. 2017, https://figshare.com/articles/dataset/"
    "CIFAR10-DVS_New/4724671): one folder of .aedat files per class, extracted into "
    f"cifar10-dvs/ {_ROOT_HINT}"
)
_GESTURE_SOURCE = (
    "DVS128 Gesture release (IBM, https://research.ibm.com/interactive/dvsgesture/): "
    f"DvsGesture.tar.gz extracted {_ROOT_HINT}"
)


# --- events -----------------------------------------------------------------------------------


@dataclass
class Events:
    """One recording's events in file order: x, y in 0..127, p in {0, 1}, t in µs."""

    x: np.ndarray  # int64 [N]
    y: np.ndarray  # int64 [N]
    p: np.ndarray  # int64 [N]
    t: np.ndarray  # int64 [N]

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def select(self, mask: np.ndarray) -> Events:
        return Events(self.x[mask], self.y[mask], self.p[mask], self.t[mask])


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]


def _require_file(path: Path, source: str) -> Path:
    if not path.is_file():
        raise NasforgeError(f"missing data file {path}; get the {source}")
    return path


def _body_offset(data: bytes, end_marker: bytes | None) -> int:
    """Byte offset after the '#' header lines (or after the line holding ``end_marker``)."""
    pos = 0
    while pos < len(data) and data[pos : pos + 1] == b"#":
        newline = data.find(b"\n", pos)
        line_end = len(data) if newline < 0 else newline + 1
        line = data[pos:line_end]
        pos = line_end
        if end_marker is not None and line.startswith(end_marker):
            break
    return pos


def read_aedat2(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Raw AEDAT 2.0 records: (address uint32 [N], timestamp int64 [N]), both big-endian."""
    data = Path(path).read_bytes()
    body = data[_body_offset(data, None) :]
    if len(body) % 8:
        raise ValueError(f"{len(body)} data bytes is not a whole number of 8-byte events")
    records = np.frombuffer(body, dtype=">u4").reshape(-1, 2)
    return records[:, 0].astype(np.uint32), records[:, 1].astype(np.int64)


def read_cifar10_dvs_file(path: str | os.PathLike[str]) -> Events:
    """One CIFAR10-DVS recording, oriented as SpikingJelly/tonic do (see the module notes)."""
    addr, t = read_aedat2(path)
    addr = addr.astype(np.int64)
    raw_x = (addr >> 1) & 0x7F
    raw_y = (addr >> 8) & 0x7F
    bit0 = addr & 1
    return Events(127 - raw_y, 127 - raw_x, 1 - bit0, t)


_PACKET_HEADER = np.dtype(
    [
        ("type", "<i2"),
        ("source", "<i2"),
        ("size", "<i4"),
        ("ts_offset", "<i4"),
        ("ts_overflow", "<i4"),
        ("capacity", "<i4"),
        ("number", "<i4"),
        ("valid", "<i4"),
    ]
)
POLARITY_EVENT = 1


def read_aedat31(path: str | os.PathLike[str]) -> Events:
    """Polarity events of an AEDAT 3.1 file (DVS128-Gesture), valid ones only, in file order."""
    data = Path(path).read_bytes()
    pos = _body_offset(data, b"#!END-HEADER")
    xs, ys, ps, ts = [], [], [], []
    while pos < len(data):
        if pos + 28 > len(data):
            raise ValueError(f"truncated packet header at byte {pos}")
        head = np.frombuffer(data, dtype=_PACKET_HEADER, count=1, offset=pos)[0]
        size, capacity, number = int(head["size"]), int(head["capacity"]), int(head["number"])
        if size <= 0 or capacity < 0 or not 0 <= number <= capacity:
            raise ValueError(f"bad packet header at byte {pos}")
        start, pos = pos + 28, pos + 28 + capacity * size
        if pos > len(data):
            raise ValueError(f"truncated packet at byte {start - 28}")
        if int(head["type"]) != POLARITY_EVENT or number == 0:
            continue
        if size != 8 or int(head["ts_offset"]) != 4:
            raise ValueError(f"polarity packet with eventSize {size}, expected 8")
        rec = np.frombuffer(data, dtype="<u4", count=2 * number, offset=start).reshape(-1, 2)
        word = rec[:, 0].astype(np.int64)
        stamp = rec[:, 1].astype(np.int32).astype(np.int64)  # the timestamp is an int32
        keep = (word & 1) == 1
        xs.append((word[keep] >> 17) & 0x7FFF)
        ys.append((word[keep] >> 2) & 0x7FFF)
        ps.append((word[keep] >> 1) & 1)
        ts.append(stamp[keep] | (int(head["ts_overflow"]) << 31))
    if not ts:
        empty = np.zeros(0, dtype=np.int64)
        return Events(empty, empty.copy(), empty.copy(), empty.copy())
    return Events(np.concatenate(xs), np.concatenate(ys), np.concatenate(ps), np.concatenate(ts))


def read_gesture_labels(path: str | os.PathLike[str]) -> list[tuple[int, int, int]]:
    """Rows of a ``*_labels.csv``: (class 0..10, startTime_usec, endTime_usec)."""
    rows = []
    with Path(path).open(newline="") as fh:
        for row in csv.reader(fh):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or not cells[0].lstrip("-").isdigit():
                continue  # the header line and blank lines
            label, start, end = (int(c) for c in cells[:3])
            if not 1 <= label <= len(GESTURE_CLASSES):
                raise ValueError(f"class {label} outside 1..{len(GESTURE_CLASSES)}")
            rows.append((label - 1, start, end))
    return rows


def read_trials(path: str | os.PathLike[str]) -> list[str]:
    """File names listed in ``trials_to_train.txt`` / ``trials_to_test.txt``."""
    return [s for s in (line.strip() for line in Path(path).read_text().splitlines()) if s]


# --- frames -----------------------------------------------------------------------------------


def split_by_number(n: int, T: int) -> np.ndarray:
    """Chunk bounds [T + 1]: chunk i is events [b[i], b[i+1]); N // T each, the last the rest."""
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise NasforgeError(f"T must be a positive integer number of frames, got {T!r}")
    T = int(T)
    bounds = np.arange(T + 1, dtype=np.int64) * (n // T)
    bounds[-1] = n
    return bounds


def integrate_frames(events: Events, T: int, size: int = SIZE) -> np.ndarray:
    """uint8 [T, 2, size, size]: per-chunk event counts at [t, p, y, x], saturated at 255."""
    bounds = split_by_number(len(events), T)
    frame = np.repeat(np.arange(T, dtype=np.int64), np.diff(bounds))
    if ((events.x < 0) | (events.x >= size) | (events.y < 0) | (events.y >= size)).any():
        raise ValueError(f"event coordinates outside 0..{size - 1}")
    flat = ((frame * 2 + events.p) * size + events.y) * size + events.x
    counts = np.bincount(flat, minlength=T * 2 * size * size)
    return np.minimum(counts, 255).astype(np.uint8).reshape(T, 2, size, size)


# --- data sets ----------------------------------------------------------------------------------


@dataclass
class DVSSplit:
    """One split of frames: ``x`` uint8 [N, T, 2, H, W] event counts, ``y`` int64 [N]."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 5 or self.x.shape[2] != 2:
            raise ValueError(f"DVSSplit.x must be uint8 [N, T, 2, H, W], got {self.x.shape}")
        if self.y.dtype != torch.int64 or self.y.shape != (self.x.shape[0],):
            raise ValueError(f"DVSSplit.y must be int64 [N], got {self.y.dtype} {self.y.shape}")

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class DVSDataset:
    """A neuromorphic data set integrated to ``T`` frames (no validation split)."""

    name: str
    train: DVSSplit
    test: DVSSplit
    classes: list[str]
    T: int

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _frames_split(
    items: list[tuple[Path, int]], T: int, frames_of: Callable[[Path], list[np.ndarray]]
) -> DVSSplit:
    """Fill a preallocated [N, T, 2, H, W] array file by file (one file may hold many samples)."""
    labels = [label for _, label in items]
    x = np.zeros((len(labels), T, 2, SIZE, SIZE), dtype=np.uint8)
    i = 0
    for path in dict.fromkeys(p for p, _ in items):  # distinct files, in order
        for frames in frames_of(path):
            x[i] = frames
            i += 1
    if i != len(labels):
        raise AssertionError(f"{i} samples integrated for {len(labels)} labels")
    return DVSSplit(torch.from_numpy(x), torch.tensor(labels, dtype=torch.int64))


def _cached(
    cache: Path, name: str, T: int, use_cache: bool, build: Callable[[], tuple[DVSSplit, DVSSplit]]
) -> tuple[DVSSplit, DVSSplit]:
    if use_cache and cache.is_file():
        try:
            obj = torch.load(cache, map_location="cpu", weights_only=True)
            if obj.get("version") == CACHE_VERSION and obj.get("T") == T:
                return (
                    DVSSplit(obj["train_x"], obj["train_y"]),
                    DVSSplit(obj["test_x"], obj["test_y"]),
                )
        except Exception as exc:  # a damaged cache: say so instead of silently rebuilding
            raise NasforgeError(
                f"cannot read frame cache {cache} ({_one_line(exc)}); delete it to rebuild"
            ) from exc
    train, test = build()
    if use_cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp")
        payload = {
            "version": CACHE_VERSION,
            "name": name,
            "T": T,
            "train_x": train.x,
            "train_y": train.y,
            "test_x": test.x,
            "test_y": test.y,
        }
        torch.save(payload, tmp)
        tmp.replace(cache)
    return train, test


_R = TypeVar("_R")


def _read_or_fail(reader: Callable[[Path], _R], path: Path, source: str) -> _R:
    _require_file(path, source)
    try:
        return reader(path)
    except (OSError, ValueError) as exc:
        raise NasforgeError(
            f"cannot read data file {path} ({_one_line(exc)}); re-download the {source}"
        ) from exc


def cifar10_dvs_files(folder: Path) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """(train, test) file lists: per class, the first 90% of its sorted file names train."""
    if not folder.is_dir():
        raise NasforgeError(f"missing data folder {folder}; get the {_CIFAR10_DVS_SOURCE}")
    train, test = [], []
    for label, name in enumerate(CIFAR10_DVS_CLASSES):
        sub = folder / name
        files = sorted(p.name for p in sub.glob("*.aedat")) if sub.is_dir() else []
        if not files:
            raise NasforgeError(
                f"missing data folder {sub} (no .aedat files); get the {_CIFAR10_DVS_SOURCE}"
            )
        cut = len(files) * 9 // 10
        train += [(sub / f, label) for f in files[:cut]]
        test += [(sub / f, label) for f in files[cut:]]
    return train, test


def load_cifar10_dvs(
    root: str | os.PathLike[str] | None = None, T: int = DEFAULT_T, *, cache: bool = True
) -> DVSDataset:
    """CIFAR10-DVS from ``<root>/cifar10-dvs/<class>/*.aedat``; frames cached as frames_T{T}.pt."""
    split_by_number(0, T)  # validates T
    folder = data_root(root) / "cifar10-dvs"

    def frames_of(path: Path) -> list[np.ndarray]:
        def read(p: Path) -> list[np.ndarray]:
            return [integrate_frames(read_cifar10_dvs_file(p), T)]

        return _read_or_fail(read, path, _CIFAR10_DVS_SOURCE)

    def build() -> tuple[DVSSplit, DVSSplit]:
        train, test = cifar10_dvs_files(folder)
        return _frames_split(train, T, frames_of), _frames_split(test, T, frames_of)

    train, test = _cached(folder / f"frames_T{T}.pt", "cifar10-dvs", T, cache, build)
    return DVSDataset("cifar10-dvs", train, test, list(CIFAR10_DVS_CLASSES), T)


def gesture_windows(folder: Path, trials_file: str) -> list[tuple[Path, int, int, int]]:
    """(trial .aedat, class, start, end) for each labelled window of each listed trial.

    Reads only the trial lists and label files; every listed ``.aedat`` must exist.
    """
    windows = []
    for trial in _read_or_fail(read_trials, folder / trials_file, _GESTURE_SOURCE):
        aedat = _require_file(folder / trial, _GESTURE_SOURCE)
        labels = folder / (Path(trial).stem + "_labels.csv")
        for label, start, end in _read_or_fail(read_gesture_labels, labels, _GESTURE_SOURCE):
            windows.append((aedat, label, start, end))
    return windows


def _gesture_split(windows: list[tuple[Path, int, int, int]], T: int) -> DVSSplit:
    def read(path: Path) -> list[np.ndarray]:
        events = read_aedat31(path)
        return [
            integrate_frames(events.select((events.t >= start) & (events.t < end)), T)
            for aedat, _, start, end in windows
            if aedat == path
        ]

    def frames_of(path: Path) -> list[np.ndarray]:
        return _read_or_fail(read, path, _GESTURE_SOURCE)

    return _frames_split([(aedat, label) for aedat, label, _, _ in windows], T, frames_of)


def load_dvs128_gesture(
    root: str | os.PathLike[str] | None = None, T: int = DEFAULT_T, *, cache: bool = True
) -> DVSDataset:
    """DVS128-Gesture from ``<root>/DvsGesture/``, official trials split; 11 classes."""
    split_by_number(0, T)
    base = data_root(root)
    folder = base / "DvsGesture"

    def build() -> tuple[DVSSplit, DVSSplit]:
        if not folder.is_dir():
            raise NasforgeError(f"missing data folder {folder}; get the {_GESTURE_SOURCE}")
        train = gesture_windows(folder, "trials_to_train.txt")
        test = gesture_windows(folder, "trials_to_test.txt")
        return _gesture_split(train, T), _gesture_split(test, T)

    cache_file = base / "dvs128-gesture" / f"frames_T{T}.pt"
    train, test = _cached(cache_file, "dvs128-gesture", T, cache, build)
    return DVSDataset("dvs128-gesture", train, test, list(GESTURE_CLASSES), T)


DVS_DATASETS: dict[str, Callable[..., DVSDataset]] = {
    "cifar10-dvs": load_cifar10_dvs,
    "dvs128-gesture": load_dvs128_gesture,
}


def load_dvs_dataset(
    name: str, root: str | os.PathLike[str] | None = None, T: int = DEFAULT_T, *, cache: bool = True
) -> DVSDataset:
    """Load ``cifar10-dvs`` or ``dvs128-gesture`` integrated to ``T`` frames."""
    if name not in DVS_DATASETS:
        raise NasforgeError(
            f"unknown DVS data set '{name}'; choose from: {', '.join(DVS_DATASETS)}"
        )
    return DVS_DATASETS[name](root, T, cache=cache)
