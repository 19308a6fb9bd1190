"""Run an AutoSNN network one time step at a time: the authors' structure, as a baseline.

nasforge's SNN blocks are multi-step: a convolution or batch norm runs once over all T·N
images of a ``[T, N, ...]`` tensor and a neuron layer runs its whole time loop in one call
(SpikingJelly's fused multi-step kernel). The authors' code (SpikingJelly's older
single-step style) instead loops over t and runs the whole network on one time step at a
time, every layer called T times. :func:`single_step_forward` does the latter with the
*same modules and weights*: every convolution/BN/pool is applied to ``[N, ...]`` and every
neuron advances one step (``single_step_forward``), so both formulations can be timed on
one network. They compute the same rates in eval mode, and in train mode too with
nasforge's default per-step batch norm (``snn.bn=merged`` takes statistics over T·N instead).
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based.layer import SeqToANNContainer
from torch import nn

from nasforge.snn.backbone import GlobalPool, Head, SpikePool, Stem
from nasforge.snn.blocks import SCB, SIB, SRB, ConvBN, FactorizedReduce, Skip
from nasforge.snn.neuron import is_neuron


def step(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module`` applied to one time step ``x`` ([N, ...]); neurons advance one step."""
    if is_neuron(module):
        return module.single_step_forward(x)
    if isinstance(module, ConvBN):
        module[1].steps = 1  # batch norm over this step's N images
        return nn.Sequential.forward(module, x)
    if isinstance(module, SeqToANNContainer):
        return nn.Sequential.forward(module, x)  # the wrapped layers, on [N, ...]
    if isinstance(module, FactorizedReduce):
        module.bn.steps = 1
        y = module.bn(torch.cat([module.conv_1(x), module.conv_2(x[:, :, 1:, 1:])], dim=1))
        return step(module.out, y)
    if isinstance(module, nn.Sequential):
        for child in module:
            x = step(child, x)
        return x
    if isinstance(module, (SCB, Skip)):
        return step(module.body, x)
    if isinstance(module, SRB):
        return step(module.out, step(module.body, x) + step(module.shortcut, x))
    if isinstance(module, SIB):
        y = step(module.body, x)
        return step(module.out, y if module.shortcut is None else y + step(module.shortcut, x))
    if isinstance(module, SpikePool):
        return step(module.pool, x)
    if isinstance(module, GlobalPool):
        return step(module.neuron, step(module.pool, x))
    if isinstance(module, Head):
        s = step(module.neuron, step(module.fc, x.flatten(1)))
        return module.vote(s.unsqueeze(1)).squeeze(1)
    if isinstance(module, (nn.Identity, nn.ReLU)):
        return module(x)
    raise TypeError(f"no single-step rule for {type(module).__name__}")


def _stem_step(stem: Stem, x: torch.Tensor) -> torch.Tensor:
    """The stem on one step of a static image: conv + BN recomputed at every t."""
    stem.bn.steps = 1
    return step(stem.extra, step(stem.neuron, stem.bn(stem.conv(x))))


def single_step_forward(model: nn.Module, x: torch.Tensor, path: list[str] | None = None
                        ) -> torch.Tensor:
    """Firing rates [N, classes] of ``model`` (SNNBackbone, or SNNSuperNet with ``path``)
    on static images ``x`` [N, C, H, W], computed by a loop over the T time steps."""
    outputs = []
    for _ in range(model.timesteps):
        y = _stem_step(model.stem, x)
        pos = 0
        for i, layer in enumerate(model.body):
            if isinstance(layer, nn.ModuleDict):
                layer = layer[path[pos]]
            y = step(layer, y)
            pos += i in model.tbd_index
        outputs.append(step(model.head, step(model.gap, y)))
    return torch.stack(outputs).mean(0)
