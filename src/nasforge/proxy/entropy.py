"""Per-example scores of a training split and the plain files that carry them (thesis §3.2).

Entropy (Eq. 3.1) ranks examples from easy to hard; forgetting events (Toneva et al., 2019)
and penultimate features (for k-center) are the other existing selectors' inputs. The entropy
list uses the authors' published format, ``index<TAB>entropy<TAB>label`` one example per line
in dataset order, so lists computed elsewhere can be selected from and ours can be shared.
Readers reject damaged files with one line naming the file and line, because a silently
misread score picks a different proxy set.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nasforge.checkpoint import atomic_write_bytes, atomic_write_text
from nasforge.errors import NasforgeError

__all__ = [
    "EntropyList",
    "ForgettingCounter",
    "count_forgetting",
    "entropy_from_logits",
    "load_features",
    "read_entropy_list",
    "read_forgetting",
    "save_features",
    "write_entropy_list",
    "write_forgetting",
]

PathLike = str | os.PathLike[str]
_INTEGER = re.compile(r"[+-]?[0-9]+")


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """H = −Σ p log p over the last dimension, in nats.

    ``log_softmax`` keeps log p finite for any finite logit, and terms with p = 0 count as 0
    (their limit), so masked ``-inf`` logits are safe too. Computed in at least float32.
    """
    if not logits.dtype.is_floating_point:
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()
    log_p = F.log_softmax(logits, dim=-1)
    p = log_p.exp()
    terms = torch.where(p > 0, p * log_p, torch.zeros((), dtype=p.dtype, device=p.device))
    return -terms.sum(dim=-1)


# --- forgetting events ----------------------------------------------------------------------------


class ForgettingCounter:
    """Forgetting events per example, updated batch by batch on the training device.

    A forgetting event is a presentation where an example is misclassified after being
    classified correctly at its previous presentation. Examples never classified correctly get
    the number of times they were presented (Toneva et al.'s convention: maximally forgettable).
    Updates are tensor ops only, so they add no host synchronisation to the training step.
    """

    def __init__(self, num_examples: int, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.events = torch.zeros(num_examples, dtype=torch.int64, device=self.device)
        self.presented = torch.zeros(num_examples, dtype=torch.int64, device=self.device)
        self.previous = torch.zeros(num_examples, dtype=torch.bool, device=self.device)
        self.learned = torch.zeros(num_examples, dtype=torch.bool, device=self.device)

    def update(self, indices: torch.Tensor, correct: torch.Tensor) -> None:
        """Record one presentation of the (distinct) examples ``indices``."""
        correct = correct.to(torch.bool)
        self.events[indices] += (self.previous[indices] & ~correct).long()
        self.presented[indices] += 1
        self.previous[indices] = correct
        self.learned[indices] |= correct

    def counts(self) -> torch.Tensor:
        """Events per example; never-learned examples get their presentation count."""
        return torch.where(self.learned, self.events, self.presented)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).clone() for k in ("events", "presented", "previous",
                                                       "learned")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            current = getattr(self, key)
            if value.shape != current.shape:
                raise ValueError(f"forgetting state '{key}' has shape {tuple(value.shape)}, "
                                 f"expected {tuple(current.shape)}")
            setattr(self, key, value.to(device=self.device, dtype=current.dtype))


def count_forgetting(correct: torch.Tensor) -> torch.Tensor:
    """Forgetting counts from a ``[presentations, N]`` history of correctness (reference form)."""
    correct = torch.as_tensor(correct, dtype=torch.bool)
    counter = ForgettingCounter(correct.shape[1])
    everyone = torch.arange(correct.shape[1])
    for row in correct:
        counter.update(everyone, row)
    return counter.counts()


# --- text tables ------------------------------------------------------------------------------


@dataclass
class EntropyList:
    """An entropy list sorted by index: int64 ``index``, float64 ``entropy``, int64 ``label``."""

    index: torch.Tensor
    entropy: torch.Tensor
    label: torch.Tensor

    def __len__(self) -> int:
        return int(self.index.shape[0])


def _format_float(value: float) -> str:
    """Shortest text that reads back to the same double (Python's repr)."""
    return repr(float(value))


def write_entropy_list(path: PathLike, entropy: torch.Tensor | np.ndarray,
                       labels: torch.Tensor | np.ndarray) -> Path:
    """Write ``index<TAB>entropy<TAB>label`` rows for examples 0..N−1, atomically."""
    values = np.asarray(torch.as_tensor(entropy).detach().cpu(), dtype=np.float64).reshape(-1)
    classes = np.asarray(torch.as_tensor(labels).detach().cpu(), dtype=np.int64).reshape(-1)
    if values.shape != classes.shape:
        raise ValueError(f"{values.size} entropies but {classes.size} labels")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("entropies must be finite and non-negative")
    rows = (f"{i}\t{_format_float(h)}\t{int(y)}\n"
            for i, (h, y) in enumerate(zip(values.tolist(), classes.tolist(), strict=True)))
    return atomic_write_text(path, "".join(rows))


def write_forgetting(path: PathLike, counts: torch.Tensor | np.ndarray) -> Path:
    """Write ``index<TAB>count`` rows for examples 0..N−1, atomically."""
    values = np.asarray(torch.as_tensor(counts).detach().cpu(), dtype=np.int64).reshape(-1)
    if np.any(values < 0):
        raise ValueError("forgetting counts must be non-negative")
    return atomic_write_text(path, "".join(f"{i}\t{c}\n" for i, c in enumerate(values.tolist())))


def _rows(path: Path, what: str, columns: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """Non-blank lines split on whitespace, with line numbers; an optional header is skipped."""
    if not path.is_file():
        raise NasforgeError(f"{what} {path} not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NasforgeError(f"cannot read {what} {path}: {' '.join(str(exc).split())}") from exc
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if not rows and not _INTEGER.fullmatch(fields[0]) and not fields[0][0].isdigit():
            rows.append((lineno, []))  # header line, e.g. "index entropy label"
            continue
        if len(fields) != len(columns):
            raise NasforgeError(
                f"{path}:{lineno}: expected {len(columns)} columns ({' '.join(columns)}), "
                f"got {len(fields)}"
            )
        rows.append((lineno, fields))
    rows = [r for r in rows if r[1]]
    if not rows:
        raise NasforgeError(f"{what} {path} has no rows; expected '{' '.join(columns)}' lines")
    return rows


def _int(path: Path, lineno: int, name: str, text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise NasforgeError(f"{path}:{lineno}: {name} {text[:40]!r} is not an integer")
    value = int(text)
    if value < 0:
        raise NasforgeError(f"{path}:{lineno}: {name} {value} is negative")
    return value


def _entropy(path: Path, lineno: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise NasforgeError(f"{path}:{lineno}: entropy {text[:40]!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise NasforgeError(
            f"{path}:{lineno}: entropy {text[:40]} is not allowed; it must be finite and >= 0"
        )
    return value


def _check_indices(path: Path, indices: list[int], linenos: list[int],
                   num_examples: int | None) -> None:
    """Reject duplicates, and with ``num_examples`` anything but exactly 0..N−1."""
    first: dict[int, int] = {}
    for index, lineno in zip(indices, linenos, strict=True):
        if num_examples is not None and index >= num_examples:
            raise NasforgeError(f"{path}:{lineno}: index {index} is out of range; the training "
                                f"split has indices 0..{num_examples - 1}")
        if index in first:
            raise NasforgeError(
                f"{path}:{lineno}: duplicate index {index} (first on line {first[index]})"
            )
        first[index] = lineno
    if num_examples is not None and len(first) != num_examples:
        missing = next(i for i in range(num_examples) if i not in first)
        raise NasforgeError(f"{path}: index {missing} is missing; the file must list every "
                            f"example 0..{num_examples - 1} ({len(first)} listed)")


def read_entropy_list(path: PathLike, num_examples: int | None = None) -> EntropyList:
    """Read an entropy list (tabs or spaces, optional header), sorted by index.

    With ``num_examples`` the list must cover exactly the indices 0..N−1 of the split.
    """
    path = Path(path)
    rows = _rows(path, "entropy list", ("index", "entropy", "label"))
    indices, values, labels, linenos = [], [], [], []
    for lineno, (index, value, label) in rows:
        indices.append(_int(path, lineno, "index", index))
        values.append(_entropy(path, lineno, value))
        labels.append(_int(path, lineno, "label", label))
        linenos.append(lineno)
    _check_indices(path, indices, linenos, num_examples)
    index = torch.tensor(indices, dtype=torch.int64)
    order = torch.argsort(index)
    return EntropyList(index[order], torch.tensor(values, dtype=torch.float64)[order],
                       torch.tensor(labels, dtype=torch.int64)[order])


def read_forgetting(path: PathLike, num_examples: int | None = None) -> torch.Tensor:
    """Forgetting counts indexed by example (the file must cover 0..N−1), as int64."""
    path = Path(path)
    rows = _rows(path, "forgetting file", ("index", "count"))
    indices = [_int(path, lineno, "index", f[0]) for lineno, f in rows]
    counts = [_int(path, lineno, "count", f[1]) for lineno, f in rows]
    _check_indices(path, indices, [lineno for lineno, _ in rows],
                   len(rows) if num_examples is None else num_examples)
    out = torch.zeros(len(rows), dtype=torch.int64)
    out[torch.tensor(indices)] = torch.tensor(counts, dtype=torch.int64)
    return out


# --- features ---------------------------------------------------------------------------------


def save_features(path: PathLike, features: torch.Tensor | np.ndarray) -> Path:
    """Save penultimate features ``[N, D]`` in dataset order as float32 ``.npy``, atomically."""
    array = np.asarray(torch.as_tensor(features).detach().float().cpu(), dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"features must be [N, D], got shape {array.shape}")
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return atomic_write_bytes(path, buffer.getvalue())


def load_features(path: PathLike, num_examples: int | None = None) -> torch.Tensor:
    """Load a ``[N, D]`` feature file; with ``num_examples`` the row count must match."""
    path = Path(path)
    if not path.is_file():
        raise NasforgeError(f"features file {path} not found")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise NasforgeError(
            f"cannot read features file {path} ({' '.join(str(exc).split())[:120]}); "
            "expected a .npy array [N, D]"
        ) from exc
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise NasforgeError(f"features file {path} holds {array.dtype} {array.shape}; "
                            "expected a numeric array [N, D]")
    if num_examples is not None and array.shape[0] != num_examples:
        raise NasforgeError(f"features file {path} has {array.shape[0]} rows but the training "
                            f"split has {num_examples} examples")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
