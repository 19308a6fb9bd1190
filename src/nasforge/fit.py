"""A lean in-memory training loop for studies that train many small networks.

``nasforge train`` writes a run directory, a checkpoint per epoch and a log; a study that trains
hundreds of networks (the tabular benchmark, the search-space quality study) needs none of that,
only the loop. Both use :func:`fit` so they train under the same code path; with every optional
feature off (no auxiliary head, drop-path, label smoothing or mixed precision) it performs exactly
the operations of a plain SGD loop, so tables built before it existed keep their numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.errors import NumericalError
from nasforge.runtime import autocast, weights_finite


class EpochBatches(Protocol):
    """Anything that yields an epoch's ``(x, y)`` batches (``Batches``, ``FolderBatches``)."""

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def fit(
    model: nn.Module,
    batches: EpochBatches,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    lr_at: Callable[[int], float],
    grad_clip: float = 0.0,
    aux_weight: float = 0.0,
    drop_path: float = 0.0,
    label_smoothing: float = 0.0,
    dtype: torch.dtype | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    hint: str | None = None,
) -> float:
    """Train ``model`` (returning ``(logits, aux_logits)``) for ``epochs``; mean last-epoch loss.

    ``lr_at(epoch)`` sets every group's learning rate at the start of an epoch; drop-path ramps
    linearly from 0 to ``drop_path`` as in DARTS and is only touched when non-zero; the auxiliary
    loss is added when the model returns auxiliary logits and ``aux_weight > 0``. ``on_epoch``
    receives (epoch, mean loss) after each epoch, e.g. to advance a progress bar. With
    ``hint`` given, a NaN/inf epoch loss or weight raises
    :class:`~nasforge.errors.NumericalError` (one line ending with ``hint``); the tabular
    benchmark's builder leaves it out, keeping its numbers and its one sync per epoch.
    """
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)  # fp16 is CUDA-only
    mean_loss = float("nan")
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch)
        if drop_path > 0:
            model.drop_path_prob = drop_path * epoch / epochs
        model.train()
        total: torch.Tensor | float = 0.0
        count = 0
        for x, y in batches.epoch(epoch):
            optimizer.zero_grad(set_to_none=True)
            with autocast(x.device, dtype):
                logits, aux = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=label_smoothing)
                if aux is not None and aux_weight > 0:
                    loss = loss + aux_weight * F.cross_entropy(
                        aux.float(), y, label_smoothing=label_smoothing)
            scaler.scale(loss).backward()
            if grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            total = total + loss.detach() * len(y)
            count += len(y)
        mean_loss = float(total) / max(count, 1)
        if hint is not None and (not math.isfinite(mean_loss) or not weights_finite(model)):
            what = "loss" if not math.isfinite(mean_loss) else "weights"
            raise NumericalError(f"non-finite {what} at epoch {epoch}; {hint}")
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)
    return mean_loss

