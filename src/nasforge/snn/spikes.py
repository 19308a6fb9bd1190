"""Exact spike counts per image, per layer and in total (docs/snn.md §Spike counts).

Forward hooks on every neuron layer (and, under the thesis's convention, every max-pool)
add each output's sum to a tensor on the model's device: no host sync inside forward.
The totals are read once, when the counter closes.

Conventions: ``"thesis"`` counts every neuron's spikes plus the max-pool outputs again
(the tables of chapter 5 do); ``"neurons"`` counts neurons only.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from nasforge.errors import NasforgeError
from nasforge.snn.backbone import SpikePool
from nasforge.snn.neuron import is_neuron, reset_net

CONVENTIONS = ("thesis", "neurons")


def counted_layers(model: nn.Module, convention: str = "thesis") -> dict[str, nn.Module]:
    """The layers whose outputs are spikes under ``convention``, by module name."""
    if convention not in CONVENTIONS:
        raise NasforgeError(
            f"unknown spike convention '{convention}'; choose from: {', '.join(CONVENTIONS)}"
        )
    return {
        name: m for name, m in model.named_modules()
        if is_neuron(m) or (convention == "thesis" and isinstance(m, SpikePool)
                            and m.kind == "max")
    }


@dataclass
class SpikeCounter:
    """Accumulates spike sums, images and per-image neuron counts across forwards."""

    model: nn.Module
    convention: str = "thesis"
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    neurons: dict[str, int] = field(default_factory=dict)
    images: int = 0
    _handles: list = field(default_factory=list)
    _first: str = ""

    def __post_init__(self) -> None:
        layers = counted_layers(self.model, self.convention)
        self._first = next(iter(layers), "")  # the stem neuron: sees every image once
        for name, module in layers.items():
            self._handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str) -> Callable[[nn.Module, tuple, torch.Tensor], None]:
        def record(_module: nn.Module, _inputs: tuple, out: torch.Tensor) -> None:
            total = out.detach().sum(dtype=torch.float64)  # exact for any count
            self.sums[name] = self.sums[name] + total if name in self.sums else total
            self.neurons[name] = out[0, 0].numel()  # out is [T, N, ...]
            if name == self._first:
                self.images += out.shape[1]

        return record

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def result(self, timesteps: int) -> dict:
        """Per-image totals, per layer and overall, plus firing rates (one host read)."""
        if not self.sums:
            return {"total": 0.0, "per_layer": {}, "rates": {}, "neurons": {}}
        names = list(self.sums)
        values = torch.stack([self.sums[n] for n in names]).cpu().tolist()
        per_layer = {n: v / max(self.images, 1) for n, v in zip(names, values, strict=True)}
        rates = {n: per_layer[n] / (self.neurons[n] * timesteps) for n in names}
        return {"total": sum(per_layer.values()), "per_layer": per_layer, "rates": rates,
                "neurons": dict(self.neurons)}


@contextmanager
def spike_counter(model: nn.Module, convention: str = "thesis") -> Iterator[SpikeCounter]:
    """Count spikes over any number of forwards (e.g. a training epoch for N_avg)."""
    counter = SpikeCounter(model, convention)
    try:
        yield counter
    finally:
        counter.close()


@torch.no_grad()
def count_spikes(model: nn.Module, x: torch.Tensor, convention: str = "thesis",
                 **forward_kwargs: object) -> dict:
    """Spikes per image of ``model`` on batch ``x`` (summed over T), per layer and total.

    Returns ``dict(total, per_layer, rates, neurons)``; rates are spikes / (neurons × T).
    Extra keyword arguments go to ``forward`` (``path=`` for a super-network). The model
    keeps its mode: call ``model.eval()`` first unless BN statistics should update.
    """
    reset_net(model)
    with spike_counter(model, convention) as counter:
        model(x, **forward_kwargs)
    reset_net(model)
    timesteps = x.shape[0] if x.dim() == 5 else int(getattr(model, "timesteps", 1))
    return counter.result(timesteps)


# name → (input channels, input size, classes, frames input): what the backbone must take.
DATASET_SHAPES: dict[str, tuple[int, int, int, bool]] = {
    "cifar10": (3, 32, 10, False),
    "cifar100": (3, 32, 100, False),
    "svhn": (3, 32, 10, False),
    "tiny-imagenet": (3, 64, 200, False),
    "cifar10-dvs": (2, 128, 10, True),
    "dvs128-gesture": (2, 128, 11, True),
    "digits": (1, 8, 10, False),
}


def _sample_batch(dataset: str, timesteps: int, batch: int) -> torch.Tensor:
    """Real digits images, or a random batch (binary event frames for DVS sets)."""
    channels, size, _classes, frames = DATASET_SHAPES[dataset]
    gen = torch.Generator().manual_seed(0)
    if dataset == "digits":
        from sklearn.datasets import load_digits

        images = torch.tensor(load_digits().images[:batch], dtype=torch.float32) / 16.0
        return images.unsqueeze(1)
    if frames:
        return (torch.rand(timesteps, batch, channels, size, size, generator=gen) < 0.1).float()
    return torch.randn(batch, channels, size, size, generator=gen)


def dataset_shape(dataset: str, profile: str) -> tuple[int, int, int, bool]:
    """``DATASET_SHAPES[dataset]``, after checking the data set and the energy profile."""
    from nasforge.snn.energy import PROFILES

    PROFILES.get(profile)
    if dataset not in DATASET_SHAPES:
        raise NasforgeError(
            f"unknown dataset '{dataset}' for SNNs; choose from: {', '.join(DATASET_SHAPES)}"
        )
    return DATASET_SHAPES[dataset]


def spike_report(model: nn.Module, dataset: str, timesteps: int, batch: int, measure: bool,
                 convention: str, profile: str) -> dict:
    """What ``snn describe`` reports of an eval-mode ``model`` on the data set's sample batch:
    the neurons per image and time step, and (``measure``) spikes, SOPs, MACs and energy
    per image."""
    x = _sample_batch(dataset, timesteps, batch if measure else 1)
    # neurons come from one forward too: the shapes depend on the input size
    counted = count_spikes(model, x[:1] if x.dim() == 4 else x[:, :1], "neurons")
    info: dict = {"neurons": sum(counted["neurons"].values())}
    if measure:
        from nasforge.snn.energy import measure_energy

        result = count_spikes(model, x, convention)
        info.update(spikes_per_image=result["total"], convention=convention, batch=batch,
                    data="digits" if dataset == "digits" else "random")
        info["energy"] = measure_energy(model, x, profile)
    return info


def describe_snn(arch: str, channels: int = 16, dataset: str = "cifar10", timesteps: int = 8,
                 measure: bool = False, batch: int = 4, convention: str = "thesis",
                 variant: str | None = None, space: str = "default",
                 profile: str = "45nm") -> dict:
    """Parameters, neuron count and (``measure``) spikes per image of one architecture,
    with its SOPs, MACs and energy per image under ``profile`` (``info["energy"]``,
    :func:`nasforge.snn.energy.measure_energy`)."""
    from nasforge.describe import check_snn_size
    from nasforge.snn.backbone import SNNBackbone

    in_channels, size, classes, _frames = dataset_shape(dataset, profile)
    check_snn_size(arch, channels, timesteps, batch, size=size, in_channels=in_channels,
                   classes=classes, variant=variant, space=space)
    model = SNNBackbone(arch, channels, timesteps, classes, size, in_channels, variant, space)
    model.eval()
    return {
        "arch": ",".join(model.arch), "dataset": dataset, "channels": channels,
        "timesteps": timesteps, "variant": variant, "space": space,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        **spike_report(model, dataset, timesteps, batch, measure, convention, profile),
    }
