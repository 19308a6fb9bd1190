"""Size and cost of a network: parameters and multiply-adds, as NAS papers report them.

Conventions (those of the DARTS papers, so numbers compare with published tables):

- parameters: every trainable and frozen parameter, except those of modules whose name
  contains ``auxiliary`` (the auxiliary head is dropped after training);
- FLOPs: multiply-accumulates (MACs) of ``Conv2d`` and ``Linear`` layers for one input
  (batch 1) in eval mode. Biases, BatchNorm, activations, pooling and the additions that
  merge cell nodes are not counted; neither is the auxiliary head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.eval_network import NetworkCIFAR, NetworkImageNet
from nasforge.spaces.darts.genotype import Genotype


def count_parameters(model: nn.Module, *, exclude_auxiliary: bool = True) -> int:
    """Number of parameters, leaving out the auxiliary head unless told otherwise."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if not (exclude_auxiliary and "auxiliary" in name)
    )


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of the Conv2d and Linear layers for one input of ``input_shape``.

    ``input_shape`` is the shape of one example without the batch dimension, e.g.
    ``(3, 32, 32)``. The model runs once in eval mode without gradients and is put back in
    its previous mode. A conv costs ``output elements × in_channels/groups × kh × kw``; a
    linear layer ``output elements × in_features``.
    """
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise NasforgeError(f"input_shape must be positive integers like (3, 32, 32), got {shape}")
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        total += output.numel() * per_output

    def linear_hook(module: nn.Linear, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for name, module in model.named_modules():
        if "auxiliary" in name:
            continue
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


@dataclass(frozen=True)
class _DatasetSpec:
    """What the evaluation network for a dataset looks like by default."""

    in_channels: int
    size: int
    num_classes: int
    imagenet: bool = False

    @property
    def channels(self) -> int:
        return 48 if self.imagenet else 36

    @property
    def layers(self) -> int:
        return 14 if self.imagenet else 20


DATASETS: dict[str, _DatasetSpec] = {
    "cifar10": _DatasetSpec(3, 32, 10),
    "cifar100": _DatasetSpec(3, 32, 100),
    "svhn": _DatasetSpec(3, 32, 10),
    "digits": _DatasetSpec(1, 8, 10),
    "imagenet": _DatasetSpec(3, 224, 1000, imagenet=True),
}
"""Datasets ``describe`` knows: input channels, resolution, classes and network family."""


def describe_genotype(
    genotype: Genotype,
    *,
    dataset: str = "cifar10",
    channels: int | None = None,
    layers: int | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Parameters (M) and MACs (M) of the evaluation network a genotype gives on a dataset.

    CIFAR-10/100, SVHN and digits use :class:`NetworkCIFAR` (C=36, 20 cells by default);
    ImageNet uses :class:`NetworkImageNet` (C=48, 14 cells, 224×224). The auxiliary head is
    excluded from both counts.
    """
    if dataset not in DATASETS:
        raise NasforgeError(f"unknown dataset '{dataset}'; choose from: {', '.join(DATASETS)}")
    spec = DATASETS[dataset]
    C = spec.channels if channels is None else channels
    L = spec.layers if layers is None else layers
    classes = spec.num_classes if num_classes is None else num_classes
    network_cls = NetworkImageNet if spec.imagenet else NetworkCIFAR
    model = network_cls(genotype, C, classes, L, auxiliary=False, in_channels=spec.in_channels)
    input_shape = (spec.in_channels, spec.size, spec.size)
    params = count_parameters(model)
    flops = count_flops(model, input_shape)
    return {
        "dataset": dataset,
        "channels": C,
        "layers": L,
        "num_classes": classes,
        "input_shape": list(input_shape),
        "params": params,
        "params_m": round(params / 1e6, 4),
        "flops": flops,
        "flops_m": round(flops / 1e6, 2),
    }
