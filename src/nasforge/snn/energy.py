"""Synaptic operations and an energy estimate of a spiking network's forward pass
(docs/autosnn.md §Energy).

Forward hooks on every ``nn.Conv2d`` and ``nn.Linear`` count, per image over all T steps:

- **SOPs** (synaptic operations, one accumulate each) of a layer whose input is binary
  (every entry 0 or 1: spikes, or max-pooled spikes). A spike reaches every output that
  reads it, so SOPs are the layer's multiply-accumulates with the zero inputs skipped:
  ``Σ over output elements of the non-zero inputs in its receptive field``. For a conv this
  is ``(C_out/groups) · Σ_{h,w} F[h, w] · nz[h, w]``, with ``nz[h, w]`` the non-zero inputs
  at pixel (h, w) summed over images and channels and ``F[h, w]`` the number of
  (output position, kernel offset) pairs that read pixel (h, w) (zero padding, stride and
  dilation included; computed once per input size); for a linear layer
  ``non-zero inputs · out_features``.
- **MACs** (multiply-accumulates) of a layer whose input is real-valued: the dense count
  ``output elements · C_in/groups · k_h · k_w`` (linear: ``output elements · in_features``),
  the multiply-adds :func:`nasforge.describe.count_flops` counts. This is the encoding
  layer (the stem conv on static images). nasforge runs it once per image and repeats its
  output over the T steps; it is counted **T times** (once per step), as a network that
  encodes at every step runs it. In a ReLU network (``--neuron relu``) every layer counts
  MACs.

Energy = SOPs · E_AC + MACs · E_MAC with the per-operation costs of an
:class:`EnergyProfile` (:data:`PROFILES`). Batch norm (folded into the convs at inference),
neuron updates, pooling and the voting layer are not counted, as in the SNN energy
literature this follows. All counts are float64 sums kept on the device and read once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.registry import Registry

__all__ = [
    "DEFAULT_PROFILE",
    "PROFILES",
    "EnergyCounter",
    "EnergyProfile",
    "conv_fanout",
    "energy_counter",
    "energy_pj",
    "measure_energy",
]

DEFAULT_PROFILE = "45nm"
HOROWITZ = ("M. Horowitz, Computing's energy problem (and what we can do about it), "
            "ISSCC 2014, 45 nm, 0.9 V")


@dataclass(frozen=True)
class EnergyProfile:
    """Energy of one multiply-accumulate and one accumulate, in picojoules."""

    name: str
    e_mac: float
    e_ac: float
    source: str
    note: str = ""


PROFILES: Registry[EnergyProfile] = Registry("energy profile")


def _profile(name: str, e_mac: float, e_ac: float, note: str) -> None:
    PROFILES.register(name)(EnergyProfile(name, e_mac, e_ac, HOROWITZ, note))


# Horowitz (2014), energy per operation at 45 nm: a MAC is one multiply plus one add.
_profile("45nm", 4.6, 0.9, "32-bit float: mult 3.7 pJ + add 0.9 pJ; AC = add")
_profile("45nm-fp16", 1.5, 0.4, "16-bit float: mult 1.1 pJ + add 0.4 pJ; AC = add")
_profile("45nm-int32", 3.2, 0.1, "32-bit int: mult 3.1 pJ + add 0.1 pJ; AC = add")
_profile("45nm-int8", 0.23, 0.03, "8-bit int: mult 0.2 pJ + add 0.03 pJ; AC = add")


def energy_pj(sops: float, macs: float, profile: str | EnergyProfile = DEFAULT_PROFILE
              ) -> float:
    """``sops · E_AC + macs · E_MAC`` in picojoules."""
    p = PROFILES.get(profile) if isinstance(profile, str) else profile
    return float(sops) * p.e_ac + float(macs) * p.e_mac


def conv_fanout(conv: nn.Conv2d, height: int, width: int) -> Tensor:
    """``F[h, w]``: how many (output position, kernel offset) pairs of ``conv`` read input
    pixel (h, w) of an ``height × width`` input (float64, on the conv's device)."""
    if conv.padding_mode != "zeros":
        raise NasforgeError(f"SOP counting supports zero-padded convs; got {conv.padding_mode}")
    device = conv.weight.device
    x = torch.ones(1, 1, height, width, dtype=torch.float64, device=device, requires_grad=True)
    ones = torch.ones(1, 1, *conv.kernel_size, dtype=torch.float64, device=device)
    with torch.enable_grad(), torch.autocast(device.type, enabled=False):  # exact counts
        y = F.conv2d(x, ones, None, conv.stride, conv.padding, conv.dilation)
        (grad,) = torch.autograd.grad(y.sum(), x)
    return grad[0, 0].detach()


def _find_timesteps(model: nn.Module) -> int:
    for m in model.modules():
        t = getattr(m, "timesteps", None)
        if isinstance(t, int) and t > 0:
            return t
    return 1


@dataclass
class EnergyCounter:
    """Accumulates SOPs and MACs per layer and the images seen across forwards."""

    model: nn.Module
    timesteps: int | None = None
    sops: dict[str, Tensor] = field(default_factory=dict)
    macs: dict[str, Tensor] = field(default_factory=dict)
    images: int = 0
    _handles: list = field(default_factory=list)
    _input: Any = None
    _fanout: dict[tuple[str, int, int], Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timesteps is None:
            self.timesteps = _find_timesteps(self.model)
        self._handles.append(self.model.register_forward_pre_hook(self._on_input))
        for name, module in self.model.named_modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                self._handles.append(module.register_forward_hook(self._hook(name)))

    def _on_input(self, _module: nn.Module, args: tuple) -> None:
        x = args[0] if args else None
        if isinstance(x, Tensor):
            self._input = x
            self.images += int(x.shape[1] if x.dim() == 5 else x.shape[0])

    def _hook(self, name: str) -> Callable[[nn.Module, tuple, Tensor], None]:
        def record(module: nn.Module, inputs: tuple, out: Tensor) -> None:
            encoding = inputs[0] is self._input and inputs[0].dim() == 4
            x = inputs[0].detach()
            binary = ((x == 0) | (x == 1)).all()
            nonzero = x != 0
            if isinstance(module, nn.Conv2d):
                key = (name, x.shape[-2], x.shape[-1])
                if key not in self._fanout:
                    self._fanout[key] = conv_fanout(module, x.shape[-2], x.shape[-1])
                per_pixel = nonzero.flatten(0, -3).sum(0, dtype=torch.float64)
                sops = (per_pixel * self._fanout[key]).sum() * (
                    module.out_channels // module.groups)
                dense = out.numel() * (module.in_channels // module.groups) * \
                    module.kernel_size[0] * module.kernel_size[1]
            else:
                sops = nonzero.sum(dtype=torch.float64) * module.out_features
                dense = out.numel() * module.in_features
            # the static-image encoding runs once for all T steps: count it once per step
            steps = self.timesteps if encoding else 1
            zero = torch.zeros((), dtype=torch.float64, device=x.device)
            sop = torch.where(binary, sops, zero) * steps
            mac = torch.where(binary, zero, zero + float(dense)) * steps
            self.sops[name] = self.sops[name] + sop if name in self.sops else sop
            self.macs[name] = self.macs[name] + mac if name in self.macs else mac

        return record

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._input = None

    def counts(self) -> dict[str, dict[str, float]]:
        """Per layer: SOPs and MACs per image (one host read)."""
        if not self.sops:
            return {}
        names = list(self.sops)
        values = torch.stack([torch.stack([self.sops[n], self.macs[n]]) for n in names])
        images = max(self.images, 1)
        return {n: {"sops": s / images, "macs": m / images}
                for n, (s, m) in zip(names, values.cpu().tolist(), strict=True)}

    def result(self, profile: str | EnergyProfile = DEFAULT_PROFILE) -> dict[str, Any]:
        """Per-image totals and per-layer counts with the energy under ``profile``."""
        p = PROFILES.get(profile) if isinstance(profile, str) else profile
        return energy_summary(self.counts(), p)


def energy_summary(per_layer: dict[str, dict[str, float]],
                   profile: str | EnergyProfile = DEFAULT_PROFILE) -> dict[str, Any]:
    """Totals, energies (pJ per layer, µJ in all) of per-layer ``{"sops", "macs"}`` counts."""
    p = PROFILES.get(profile) if isinstance(profile, str) else profile
    layers = {n: {"sops": v["sops"], "macs": v["macs"],
                  "energy_pj": energy_pj(v["sops"], v["macs"], p)} for n, v in per_layer.items()}
    sops = sum(v["sops"] for v in layers.values())
    macs = sum(v["macs"] for v in layers.values())
    return {"sops": sops, "macs": macs, "energy_uj": energy_pj(sops, macs, p) * 1e-6,
            "profile": p.name, "e_mac_pj": p.e_mac, "e_ac_pj": p.e_ac, "per_layer": layers}


@contextmanager
def energy_counter(model: nn.Module, timesteps: int | None = None) -> Iterator[EnergyCounter]:
    """Count SOPs and MACs over any number of forwards of ``model``."""
    counter = EnergyCounter(model, timesteps)
    try:
        yield counter
    finally:
        counter.close()


@torch.no_grad()
def measure_energy(model: nn.Module, x: Tensor, profile: str | EnergyProfile = DEFAULT_PROFILE,
                   timesteps: int | None = None, **forward_kwargs: object) -> dict[str, Any]:
    """SOPs, MACs and energy per image of ``model`` on batch ``x`` (all T steps).

    Returns ``dict(sops, macs, energy_uj, profile, e_mac_pj, e_ac_pj, per_layer)``;
    ``per_layer`` maps each conv/linear layer to its ``sops``, ``macs`` and ``energy_pj``.
    Extra keyword arguments go to ``forward`` (``path=`` for a super-network). The model
    keeps its mode: call ``model.eval()`` first unless BN statistics should update.
    """
    from nasforge.snn.neuron import reset_net

    p = PROFILES.get(profile) if isinstance(profile, str) else profile
    reset_net(model)
    with energy_counter(model, timesteps) as counter:
        model(x, **forward_kwargs)
    reset_net(model)
    return counter.result(p)
