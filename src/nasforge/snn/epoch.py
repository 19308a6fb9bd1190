"""The training step every AutoSNN stage shares: loss on firing rates, one epoch, evaluation.

The super-network, retraining and the quality study all train with Adam on the voting
layer's firing rates (§5.4.1) and reset every neuron after each batch; only what runs
forward differs (a sampled path, or a fixed network), so it is passed in as ``forward``.
Losses, accuracies and spike counts accumulate on the device and are read once per epoch.
With a data-parallel ``dist`` each rank runs its part of every batch, gradients are averaged
before each step and the epoch's sums are added up over the ranks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.distributed import Dist
from nasforge.errors import NasforgeError
from nasforge.runtime import LossWatch, autocast
from nasforge.snn.energy import energy_counter
from nasforge.snn.neuron import reset_net
from nasforge.snn.spikes import spike_counter

LOSSES = ("mse", "ce")
Forward = Callable[[torch.Tensor, int], torch.Tensor]  # (x, step) -> rates [N, classes]


def rate_loss(rates: torch.Tensor, y: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """``mse``: rates vs one-hot labels (the authors' loss); ``ce``: cross-entropy on rates."""
    if kind == "mse":
        return F.mse_loss(rates, F.one_hot(y, rates.shape[1]).to(rates.dtype))
    if kind == "ce":
        return F.cross_entropy(rates, y)
    raise NasforgeError(f"unknown SNN loss '{kind}'; choose from: {', '.join(LOSSES)}")


@dataclass
class EpochStats:
    """What one pass over a split measured (spikes only when counted)."""

    loss: float
    acc: float
    examples: int
    spikes: float | None = None  # per image, summed over T
    per_layer: dict[str, float] | None = None
    rates: dict[str, float] | None = None
    energy: dict[str, dict[str, float]] | None = None  # per layer: SOPs, MACs per image


def _stats(loss: torch.Tensor, correct: torch.Tensor, n: int, counter, timesteps: int,
           dist: Dist, energy=None) -> EpochStats:  # noqa: ANN001
    loss, correct = dist.sum_([loss, correct.double()])
    if energy is not None and dist.enabled:
        dist.sum_([*energy.sops.values(), *energy.macs.values()])
        (images,) = dist.sum_counts(energy.images)
        energy.images = int(images)
    (n,) = (int(v) for v in dist.sum_counts(n))
    if counter is not None and dist.enabled:
        dist.sum_(counter.sums.values())
        (images,) = dist.sum_counts(counter.images)
        counter.images = int(images)
    stats = EpochStats(float(loss) / max(n, 1), 100.0 * float(correct) / max(n, 1), n)
    if counter is not None:
        spikes = counter.result(timesteps)
        stats.spikes, stats.per_layer, stats.rates = (
            spikes["total"], spikes["per_layer"], spikes["rates"])
    if energy is not None:
        stats.energy = energy.counts()
    return stats


def train_epoch(model: nn.Module, batches, optimizer: torch.optim.Optimizer, epoch: int, *,
                forward: Forward, loss_kind: str = "mse", dtype: torch.dtype | None = None,
                scaler: torch.amp.GradScaler | None = None, count: str | None = None,
                timesteps: int = 1, on_step: Callable[[], None] | None = None,
                dist: Dist | None = None, watch: LossWatch | None = None) -> EpochStats:
    """One epoch of ``forward`` + rate loss + optimizer step, neurons reset after each batch.

    ``count`` (a spike convention) also tallies spikes per image over the epoch, which is
    how the super-network measures N_avg on the paths it samples. ``forward`` gets the global
    batch number as ``step`` (the same on every data-parallel rank).
    """
    dist = dist or Dist()
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    n = 0
    with spike_counter(model, count) if count else contextlib.nullcontext() as counter:
        for step, (x, y) in dist.enumerate_shards(batches, epoch):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                rates = forward(x, step).float()
                loss = rate_loss(rates, y, loss_kind)
            if watch is not None:  # where a NaN appeared, without a host sync
                watch.update(loss)
            if scaler is not None:
                scaler.scale(loss).backward()
                dist.average_grads(model.parameters(), len(y))
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                dist.average_grads(model.parameters(), len(y))
                optimizer.step()
            reset_net(model)
            loss_sum += loss.detach() * len(y)
            correct += (rates.argmax(1) == y).sum()
            n += len(y)
            if on_step is not None:
                on_step()
    return _stats(loss_sum, correct, n, counter, timesteps, dist)


@torch.no_grad()
def evaluate_rates(model: nn.Module, batches, *, forward: Forward, loss_kind: str = "mse",
                   dtype: torch.dtype | None = None, count: str | None = None,
                   timesteps: int = 1, dist: Dist | None = None,
                   energy: bool = False) -> EpochStats:
    """Loss, accuracy (%) and optionally spikes per image over ``batches`` in eval mode
    (data-parallel: each rank evaluates its part of every batch). ``energy`` also counts
    synaptic operations and MACs per layer (:mod:`nasforge.snn.energy`)."""
    dist = dist or Dist()
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    n = 0
    reset_net(model)
    with (spike_counter(model, count) if count else contextlib.nullcontext() as counter,
          energy_counter(model) if energy else contextlib.nullcontext() as ops):
        for step, (x, y) in dist.enumerate_shards(batches, 0, train=False):
            with autocast(device, dtype):
                rates = forward(x, step).float()
            loss_sum += rate_loss(rates, y, loss_kind) * len(y)
            correct += (rates.argmax(1) == y).sum()
            n += len(y)
            reset_net(model)
    return _stats(loss_sum, correct, n, counter, timesteps, dist, ops)


def adam(params: Iterable[nn.Parameter], lr: float, betas: tuple[float, float]
         ) -> torch.optim.Adam:
    """The optimiser of every AutoSNN stage: Adam with a fixed learning rate (§5.4.1)."""
    return torch.optim.Adam(params, lr=lr, betas=betas)


def restore_training(model, optimizer, scaler, state: dict, path, lr: float) -> None:  # noqa: ANN001
    """Load an SNN stage's weights, optimiser and scaler from a checkpoint; every group's
    learning rate is set to ``lr`` (a resume may lower snn.lr after a NaN)."""
    from nasforge.checkpoint import load_weights

    load_weights(model, state["model"], path, "the snn.* network settings")
    optimizer.load_state_dict(state["optimizer"])
    for group in optimizer.param_groups:
        group["lr"] = lr
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
