"""A straightforward DARTS super-network: the formulation of the original DARTS code.

Every candidate op of every edge is computed — ``none`` too, as a multiplication by zero —
each op applies its own ReLU, and an edge is the Python sum of weight × op output. It is
written independently of :class:`nasforge.spaces.darts.search_network.SearchNetwork`, as
the fixed point of reference for ``bench/bench_step.py`` (speed) and
``tests/benchmarks/test_step.py`` (the two networks compute the same function).

Parameters and buffers are registered in the same order as ``SearchNetwork``'s, so
:func:`copy_state` maps one network's state onto the other. Like the original code, the
factorized reduction drops the last row/column of the shifted input: even sizes only.

    forward(x, {"normal": [E, K], "reduce": [E, K]}) -> logits
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PRIMITIVES = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3",
              "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


class Zero(nn.Module):
    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


def relu_conv_bn(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False),
                         nn.BatchNorm2d(c_out, affine=False))


def sep_conv(c: int, k: int, stride: int) -> nn.Module:
    p = k // 2
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c, c, k, stride, p, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False),
        nn.ReLU(), nn.Conv2d(c, c, k, 1, p, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False))


def dil_conv(c: int, k: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.ReLU(), nn.Conv2d(c, c, k, stride, k - 1, dilation=2, groups=c, bias=False),
        nn.Conv2d(c, c, 1, bias=False), nn.BatchNorm2d(c, affine=False))


def make_op(name: str, c: int, stride: int) -> nn.Module:
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), nn.BatchNorm2d(c, affine=False))
    if name == "avg_pool_3x3":
        return nn.Sequential(nn.AvgPool2d(3, stride, 1, count_include_pad=False),
                             nn.BatchNorm2d(c, affine=False))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    kind, size = name.rsplit("_", 1)
    k = int(size[0])
    return sep_conv(c, k, stride) if kind == "sep_conv" else dil_conv(c, k, stride)


class MixedEdge(nn.Module):
    def __init__(self, c: int, stride: int, primitives: tuple[str, ...]) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_op(p, c, stride) for p in primitives)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops, strict=True))


class Cell(nn.Module):
    def __init__(self, nodes: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool, primitives: tuple[str, ...]) -> None:
        super().__init__()
        self.reduction, self.nodes = reduction, nodes
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else relu_conv_bn(c_pp, c)
        self.preprocess1 = relu_conv_bn(c_p, c)
        self.ops = nn.ModuleList()
        for i in range(nodes):
            for j in range(2 + i):
                stride = 2 if reduction and j < 2 else 1
                self.ops.append(MixedEdge(c, stride, primitives))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self.nodes):
            s = sum(self.ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[2:], dim=1)


class ReferenceSearchNetwork(nn.Module):
    """CIFAR stem (3C channels), ``layers`` cells with reductions at L/3 and 2L/3, GAP, linear."""

    sparse = False  # read by nasforge's strategies, which can drive this network too
    op_mask = None

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8, nodes: int = 4,
                 in_channels: int = 3, primitives: tuple[str, ...] = PRIMITIVES) -> None:
        super().__init__()
        self.primitives, self.nodes = tuple(primitives), nodes
        self.num_edges = sum(2 + i for i in range(nodes))
        c_stem = 3 * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, C
        reduction_prev = False
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                c *= 2
            self.cells.append(Cell(nodes, c_pp, c_p, c, reduction, reduction_prev, primitives))
            c_pp, c_p = c_p, nodes * c
            reduction_prev = reduction
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w = weights["reduce" if cell.reduction else "normal"]
            s0, s1 = s1, cell(s0, s1, w)
        return self.classifier(self.global_pooling(s1).flatten(1))


def copy_state(src: nn.Module, dst: nn.Module) -> None:
    """Copy every parameter and buffer of ``src`` into ``dst``, matched by registration order."""
    src_items = list(src.state_dict().items())
    dst_state = dst.state_dict()
    if len(src_items) != len(dst_state):
        raise ValueError(f"{len(src_items)} tensors in the source, {len(dst_state)} in the "
                         "destination: not the same network layout")
    new = {}
    for (s_name, s_val), (d_name, d_val) in zip(src_items, dst_state.items(), strict=True):
        if s_val.shape != d_val.shape:
            raise ValueError(f"{s_name} {tuple(s_val.shape)} does not fit {d_name} "
                             f"{tuple(d_val.shape)}")
        new[d_name] = s_val.clone()
    dst.load_state_dict(new)
