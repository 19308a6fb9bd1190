"""The DARTS super-network, independent of any search algorithm.

The network owns only the operation weights. Architecture parameters live outside it: each
forward pass receives the per-edge op weights ``{"normal": [E, K], "reduce": [E, K]}``
already transformed (softmax for DARTS, a Beta sample for BtNAS, a one-hot for GDAS, ...),
so every strategy in ``nasforge.search`` reuses this one module.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.batched_ops import batched_cell_forward
from nasforge.spaces.darts.genotype import PRIMITIVES, cell_edges
from nasforge.spaces.darts.ops import (
    OPS,
    FactorizedReduce,
    ReLUConvBN,
    Zero,
    build_op,
    starts_with_relu,
)


def reduction_layers(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells, ``layers//3`` and ``2*layers//3`` (DARTS layout).

    At least 3 cells are required: then the two reductions are distinct and at least one
    normal cell precedes them, so both cell types exist in every network.
    """
    if not isinstance(layers, int) or layers < 3:
        raise NasforgeError(f"layers must be an integer >= 3, got {layers!r}")
    return layers // 3, 2 * layers // 3


def check_positive(name: str, value: int) -> None:
    """Reject a size argument that is not a positive integer."""
    if not isinstance(value, int) or value < 1:
        raise NasforgeError(f"{name} must be a positive integer, got {value!r}")


MIXED_OPS = ("plain", "batched")
DEFAULT_MIXED_OP = "plain"
"""The formulation a :class:`SearchNetwork` uses unless told otherwise (bench/README.md)."""


class MixedOp(nn.Module):
    """One edge of the super-network: the weighted sum of all candidate ops.

    Computed without work that cannot change the result: the ops that begin with a ReLU of
    the input (separable/dilated convs, the factorized skip) share one ReLU, and when all
    ops run the ``none`` op is skipped (its term is exactly zero, and so is its weight's
    gradient). When only ``active`` ops run (sparse strategies) a sampled ``none`` is still
    computed: it may be all that connects the architecture parameters to the loss.
    """

    def __init__(self, C: int, stride: int, primitives: Sequence[str],
                 allowed: Sequence[int] | None = None) -> None:
        """``allowed``: indices of the primitives this edge holds (S1); None holds all."""
        super().__init__()
        self.allowed = list(range(len(primitives)) if allowed is None else allowed)
        self.ops = nn.ModuleList()
        for k in self.allowed:
            name = primitives[k]
            op = build_op(name, C, stride, affine=False)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self.ops.append(op)
        self._slot = {k: i for i, k in enumerate(self.allowed)}
        # what each held op reads: nothing (none: a zero term), the shared ReLU, or the input
        self._kind = {k: "zero" if isinstance(self.ops[i], Zero) else
                      "relu" if starts_with_relu(self.ops[i]) else "raw"
                      for k, i in self._slot.items()}

    def forward(self, x: Tensor, weights: Tensor, active: Sequence[int] | None = None
                ) -> Tensor | None:
        """Σ_k w_k · op_k(x) over the held ops; with ``active``, only those run.

        None when no held op is active (the cell then skips the edge).
        """
        out = None
        relu_x = None
        ws = weights.unbind(0)
        for k in self.allowed if active is None else active:
            kind = self._kind.get(k)  # None: an op this edge does not hold
            if kind is None or (kind == "zero" and active is None):
                continue
            op = self.ops[self._slot[k]]
            if kind == "relu":
                if relu_x is None:
                    relu_x = torch.relu(x)
                y = op(relu_x, activated=True)
            else:
                y = op(x)
            out = ws[k] * y if out is None else out + ws[k] * y
        return out


class SearchCell(nn.Module):
    """A super-network cell: every edge of ``cell_edges(nodes)`` is a :class:`MixedOp`."""

    mixed_op_cls: type[nn.Module] = MixedOp
    mixed_op: str = "plain"
    """How the edges are computed: ``plain`` (each :class:`MixedOp` on its own, the readable
    reference) or ``batched`` (all edges leaving one state together,
    :mod:`~nasforge.spaces.darts.batched_ops`); both read the same parameters."""

    def __init__(
        self,
        nodes: int,
        C_pp: int,
        C_p: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        primitives: Sequence[str],
        allowed: Sequence[Sequence[int]] | None = None,
    ) -> None:
        """``allowed[e]``: the primitives edge e holds (per-edge spaces such as S1)."""
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.out_channels = nodes * C
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(C_pp, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_pp, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_p, C, 1, 1, 0, affine=False)
        self.edges = cell_edges(nodes)
        def mixed(e: int, i: int) -> nn.Module:
            stride = 2 if reduction and i < 2 else 1
            if allowed is None:
                return self.mixed_op_cls(C, stride, primitives)
            return self.mixed_op_cls(C, stride, primitives, allowed=allowed[e])

        self.ops = nn.ModuleList(mixed(e, i) for e, (i, _) in enumerate(self.edges))

    def forward(self, s0: Tensor, s1: Tensor, weights: Tensor,
                active: list[list[int]] | None = None) -> Tensor:
        """``active[e]`` lists the ops of edge e that run (sparse strategies); None runs all."""
        if self.mixed_op == "batched":
            return batched_cell_forward(self, s0, s1, weights, active)
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        node_sum: Tensor | None = None
        for e, (i, j) in enumerate(self.edges):
            if active is None:
                term = self.ops[e](states[i], weights[e])
            elif active[e]:
                term = self.ops[e](states[i], weights[e], active[e])  # None: none held
            else:
                term = None  # every op of this edge has weight 0: nothing to compute
            if term is not None:
                node_sum = term if node_sum is None else node_sum + term
            if i == j - 1:  # the last edge into node j (edges of a node are contiguous)
                states.append(node_sum if node_sum is not None else self._zeros(states[1]))
                node_sum = None
        return torch.cat(states[2:], dim=1)

    def _zeros(self, like: Tensor) -> Tensor:
        """A node with no active input: zeros of the node's shape."""
        n, c, h, w = like.shape
        if self.reduction:
            h, w = (h + 1) // 2, (w + 1) // 2
        return like.new_zeros(n, c, h, w)


class SearchNetwork(nn.Module):
    """Stem, ``layers`` search cells (reductions at L/3 and 2L/3), global pool, linear head.

    ``stem="cifar"`` is one 3×3 conv; ``stem="imagenet"`` is three 3×3 stride-2 convs, so the
    first cell sees 1/8 of the input resolution (3→24→48→48 channels for C=16).
    """

    cell_cls: type[SearchCell] = SearchCell
    sparse: bool = False
    """Set by strategies whose weights are mostly exact zeros (GDAS, ENAS, SGAS, PR-DARTS):
    ops with weight 0 are skipped, which also keeps gradients away from them."""

    def __init__(
        self,
        C: int = 16,
        num_classes: int = 10,
        layers: int = 8,
        nodes: int = 4,
        *,
        in_channels: int = 3,
        primitives: Sequence[str] = PRIMITIVES,
        stem_multiplier: int = 3,
        stem: str = "cifar",
        op_mask: dict[str, Tensor] | None = None,
        mixed_op: str | None = None,
    ) -> None:
        """``op_mask``: per cell type a bool [E, K] of the ops each edge holds (S1).
        ``mixed_op``: ``plain`` or ``batched`` (see :attr:`mixed_op`; None: the default,
        :data:`DEFAULT_MIXED_OP`)."""
        super().__init__()
        for name, value in (
            ("C", C),
            ("num_classes", num_classes),
            ("nodes", nodes),
            ("in_channels", in_channels),
            ("stem_multiplier", stem_multiplier),
        ):
            check_positive(name, value)
        reductions = reduction_layers(layers)
        self.primitives = _check_primitives(primitives)
        if stem not in ("cifar", "imagenet"):
            raise NasforgeError(f"unknown stem '{stem}'; choose from: cifar, imagenet")
        self.C, self.num_classes, self.layers, self.nodes = C, num_classes, layers, nodes
        self.num_edges = len(cell_edges(nodes))
        self.stem_kind = stem
        self.op_mask = _check_mask(op_mask, (self.num_edges, len(self.primitives)))

        C_stem = stem_multiplier * C
        self.stem, self.stem1 = _search_stem(stem, in_channels, C_stem)
        C_pp, C_p, C_curr = C_stem, C_stem, C
        reduction_prev = stem == "imagenet"
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                C_curr *= 2
            kind = "reduce" if reduction else "normal"
            allowed = None if op_mask is None else [
                [k for k, on in enumerate(row) if on] for row in op_mask[kind].tolist()]
            if allowed is None:
                cell = self.cell_cls(
                    nodes, C_pp, C_p, C_curr, reduction, reduction_prev, self.primitives
                )
            else:
                cell = self.cell_cls(nodes, C_pp, C_p, C_curr, reduction, reduction_prev,
                                     self.primitives, allowed=allowed)
            self.cells.append(cell)
            C_pp, C_p = C_p, cell.out_channels
            reduction_prev = reduction
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_p, num_classes)
        self.mixed_op = DEFAULT_MIXED_OP if mixed_op is None else mixed_op

    @property
    def mixed_op(self) -> str:
        """``plain`` or ``batched``: how every cell computes its edges. Only the computation
        changes (same parameters, buffers and state dict), so it may be switched at any
        time, e.g. on a network restored from a checkpoint of the other formulation."""
        return self._mixed_op

    @mixed_op.setter
    def mixed_op(self, value: str) -> None:
        if value not in MIXED_OPS:
            raise NasforgeError(f"unknown mixed_op '{value}'; choose from: "
                                f"{', '.join(MIXED_OPS)}")
        self._mixed_op = value
        for cell in self.cells:
            cell.mixed_op = value

    @property
    def arch_shape(self) -> tuple[int, int]:
        """Shape ``(num_edges, len(primitives))`` of each cell type's weight tensor."""
        return self.num_edges, len(self.primitives)

    def forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor:
        self._check_weights(weights)
        active = self.active_ops(weights) if self.sparse else None
        s0 = self.stem(x)
        s1 = s0 if self.stem1 is None else self.stem1(s0)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            if active is None:
                s0, s1 = s1, cell(s0, s1, weights[kind])
            else:
                s0, s1 = s1, cell(s0, s1, weights[kind], active[kind])
        return self.classifier(torch.flatten(self.global_pooling(s1), 1))

    @staticmethod
    def active_ops(weights: dict[str, Tensor]) -> dict[str, list[list[int]]]:
        """Per cell type and edge, the ops with a non-zero weight (one host read in all)."""
        kinds = list(weights)
        nonzero = torch.stack([weights[kind] != 0 for kind in kinds]).tolist()
        return {kind: [[k for k, on in enumerate(row) if on] for row in rows]
                for kind, rows in zip(kinds, nonzero, strict=True)}

    def _check_weights(self, weights: dict[str, Tensor]) -> None:
        for key in ("normal", "reduce"):
            if key not in weights:
                raise NasforgeError(
                    f"weights needs keys 'normal' and 'reduce', got {sorted(weights)}"
                )
            if tuple(weights[key].shape) != self.arch_shape:
                raise NasforgeError(
                    f"weights['{key}'] has shape {tuple(weights[key].shape)}, "
                    f"expected {self.arch_shape} (edges, primitives)"
                )


def _check_mask(mask: dict[str, Tensor] | None, shape: tuple[int, int]
                ) -> dict[str, Tensor] | None:
    if mask is None:
        return None
    for kind in ("normal", "reduce"):
        m = mask.get(kind)
        if m is None or tuple(m.shape) != shape or m.dtype != torch.bool:
            raise NasforgeError(f"op_mask['{kind}'] must be a bool tensor of shape {shape}")
        if not m.any(dim=1).all():
            raise NasforgeError(f"op_mask['{kind}'] leaves an edge without any op")
    return {k: mask[k].clone() for k in ("normal", "reduce")}


def _check_primitives(primitives: Sequence[str]) -> tuple[str, ...]:
    names = tuple(primitives)
    if not names:
        raise NasforgeError("primitives must name at least one op")
    for name in names:
        if name not in OPS:
            raise NasforgeError(f"unknown primitive '{name}'; choose from: {', '.join(OPS)}")
    if len(set(names)) != len(names):
        raise NasforgeError(f"primitives must not repeat an op, got {list(names)}")
    return names


def _search_stem(stem: str, in_channels: int, C_stem: int) -> tuple[nn.Module, nn.Module | None]:
    """The stem(s): CIFAR one conv; ImageNet two stages whose outputs feed the first cell."""
    if stem == "cifar":
        conv = nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False)
        return nn.Sequential(conv, nn.BatchNorm2d(C_stem)), None
    C_half = max(C_stem // 2, 1)
    stem0 = nn.Sequential(
        nn.Conv2d(in_channels, C_half, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C_half),
        nn.ReLU(inplace=False),
        nn.Conv2d(C_half, C_stem, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C_stem),
    )
    stem1 = nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(C_stem, C_stem, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(C_stem),
    )
    return stem0, stem1
