"""Evaluation networks built from a genotype, for DARTS cells and ExtCells alike.

A cell is wired from its ``(op, input, node)`` triples, so a node may have any number of
ops, several ops may share an edge, and nodes without input are skipped. Each cell reports
the channels it emits, and the next cell's preprocessing sizes itself to them, so normal and
reduction cells may concatenate different numbers of nodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import CellGenotype, Genotype
from nasforge.spaces.darts.ops import OPS, FactorizedReduce, ReLUConvBN, build_op, drop_path
from nasforge.spaces.darts.search_network import check_positive, reduction_layers


@dataclass(frozen=True)
class _Wiring:
    """The ops a cell really computes, grouped by target node, and the nodes it emits."""

    ops: tuple[tuple[str, int, int], ...]
    nodes: tuple[int, ...]
    concat: tuple[int, ...]


def _wire(cell: CellGenotype) -> _Wiring:
    """Validate a cell and drop what cannot reach its output.

    A node is live when some op feeds it from a cell input or a live node; ops reading a dead
    node carry no signal. Of the live nodes, only those the concat needs (directly or through
    other nodes) are computed, so unused ops add no parameters.
    """
    for name, inp, node in cell.ops:
        if name not in OPS:
            raise NasforgeError(f"unknown op '{name}' in cell; choose from: {', '.join(OPS)}")
        if node < 2 or not 0 <= inp < node:
            raise NasforgeError(
                f"op ({name!r}, {inp}, {node}) is not allowed: need 0 <= input < node, node >= 2"
            )
    for node in cell.concat:
        if node < 2:
            raise NasforgeError(f"concat node {node} is a cell input; concat nodes start at 2")
    live = {0, 1}
    for node in sorted({n for _, _, n in cell.ops}):
        if any(n == node and i in live for _, i, n in cell.ops):
            live.add(node)
    concat = tuple(n for n in cell.concat if n in live)
    if not concat:
        raise NasforgeError(
            f"no active intermediate node: none of the concat nodes {list(cell.concat)} is "
            f"reached from the cell inputs by the cell's {len(cell.ops)} ops"
        )
    needed = set(concat)
    for node in sorted(live - {0, 1}, reverse=True):
        if node in needed:
            needed.update(i for _, i, n in cell.ops if n == node and i in live)
    ops = tuple(
        sorted((op for op in cell.ops if op[2] in needed and op[1] in live), key=lambda op: op[2])
    )
    return _Wiring(ops=ops, nodes=tuple(sorted(needed - {0, 1})), concat=concat)


class EvalCell(nn.Module):
    """A discrete cell: node j is the sum of the ops targeting it; output concatenates nodes."""

    def __init__(
        self,
        cell: CellGenotype,
        C_pp: int,
        C_p: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        wiring = _wire(cell)
        self.reduction = reduction
        self.concat = wiring.concat
        self.out_channels = C * len(wiring.concat)
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(C_pp, C)
        else:
            self.preprocess0 = ReLUConvBN(C_pp, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0)
        self.ops = nn.ModuleList(
            build_op(name, C, 2 if reduction and inp < 2 else 1, True)
            for name, inp, _ in wiring.ops
        )
        self._inputs = tuple(inp for _, inp, _ in wiring.ops)
        self._targets = tuple(node for _, _, node in wiring.ops)
        self._droppable = tuple(not isinstance(op, nn.Identity) for op in self.ops)

    def forward(self, s0: Tensor, s1: Tensor, drop_prob: float = 0.0) -> Tensor:
        states: dict[int, Tensor] = {0: self.preprocess0(s0), 1: self.preprocess1(s1)}
        apply_drop = self.training and drop_prob > 0.0
        for k, op in enumerate(self.ops):
            h = op(states[self._inputs[k]])
            if apply_drop and self._droppable[k]:
                h = drop_path(h, drop_prob, True)
            node = self._targets[k]
            states[node] = h if node not in states else states[node] + h
        return torch.cat([states[n] for n in self.concat], dim=1)


class _AuxiliaryHead(nn.Module):
    """Classifier on an intermediate feature map (DARTS auxiliary tower).

    At the standard sizes (8×8 for CIFAR, 7×7 for ImageNet) the 5×5 average pool gives 2×2 and
    the 2×2 conv gives 1×1, as in DARTS. Smaller maps are pooled adaptively to 2×2 instead,
    and a final adaptive pool to 1×1 lets larger maps through.
    """

    pool_stride: int = 3

    def __init__(self, C: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        if min(x.shape[-2:]) >= 5 + self.pool_stride:
            x = F.avg_pool2d(x, 5, stride=self.pool_stride, count_include_pad=False)
        else:
            x = F.adaptive_avg_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class AuxiliaryHeadCIFAR(_AuxiliaryHead):
    """Auxiliary head for 8×8 maps (CIFAR): 5×5 average pool with stride 3."""

    pool_stride = 3


class AuxiliaryHeadImageNet(_AuxiliaryHead):
    """Auxiliary head for 7×7 maps (ImageNet): 5×5 average pool with stride 2."""

    pool_stride = 2


class _EvalNetwork(nn.Module):
    """Cells stacked DARTS-style after a stem; subclasses build the stem and the aux head."""

    def _build(
        self,
        genotype: Genotype,
        C: int,
        num_classes: int,
        layers: int,
        C_stem: int,
        reduction_prev: bool,
        drop_path_prob: float,
    ) -> int:
        """Build cells and classifier; return the channels entering the auxiliary head."""
        if not isinstance(genotype, Genotype):
            raise NasforgeError(f"expected a Genotype, got {type(genotype).__name__}")
        check_positive("C", C)
        check_positive("num_classes", num_classes)
        if not 0.0 <= drop_path_prob < 1.0:
            raise NasforgeError(f"drop_path_prob must be in [0, 1), got {drop_path_prob}")
        reductions = reduction_layers(layers)
        self.genotype = genotype
        self.drop_path_prob = drop_path_prob
        self.aux_index = 2 * layers // 3
        C_pp, C_p, C_curr = C_stem, C_stem, C
        C_aux = C_p
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                C_curr *= 2
            cell_genotype = genotype.reduce if reduction else genotype.normal
            try:
                cell = EvalCell(cell_genotype, C_pp, C_p, C_curr, reduction, reduction_prev)
            except NasforgeError as err:
                kind = "reduction" if reduction else "normal"
                raise NasforgeError(f"{kind} cell (layer {i}): {err}") from None
            self.cells.append(cell)
            C_pp, C_p = C_p, cell.out_channels
            reduction_prev = reduction
            if i == self.aux_index:
                C_aux = C_p
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)
        return C_aux

    def _stem(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        s0, s1 = self._stem(x)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(torch.flatten(self.global_pooling(s1), 1))
        return logits, aux_logits


class NetworkCIFAR(_EvalNetwork):
    """The DARTS CIFAR network: 3×3 conv stem (3C channels), cells, auxiliary head."""

    def __init__(
        self,
        genotype: Genotype,
        C: int = 36,
        num_classes: int = 10,
        layers: int = 20,
        *,
        auxiliary: bool = True,
        in_channels: int = 3,
        drop_path_prob: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("C", C)
        C_stem = 3 * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem)
        )
        C_aux = self._build(genotype, C, num_classes, layers, C_stem, False, drop_path_prob)
        self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes) if auxiliary else None

    def _stem(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s = self.stem(x)
        return s, s


class NetworkImageNet(_EvalNetwork):
    """The DARTS ImageNet network: two-stage stride-8 stem, cells, auxiliary head."""

    def __init__(
        self,
        genotype: Genotype,
        C: int = 48,
        num_classes: int = 1000,
        layers: int = 14,
        *,
        auxiliary: bool = True,
        in_channels: int = 3,
        drop_path_prob: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive("in_channels", in_channels)
        check_positive("C", C)
        C_half = max(C // 2, 1)
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C_half, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C_half),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_half, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        C_aux = self._build(genotype, C, num_classes, layers, C, True, drop_path_prob)
        self.auxiliary_head = AuxiliaryHeadImageNet(C_aux, num_classes) if auxiliary else None

    def _stem(self, x: Tensor) -> tuple[Tensor, Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)
