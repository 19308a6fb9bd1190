"""The NAS-Bench-1shot1 one-shot model: NAS-Bench-101 cells made of choice blocks.

Every cell holds, per choice block b (vertex b+1), a 1×1 ConvBnRelu projection of the cell
input, and a mixed op over the three NAS-Bench-101 ops. A block's input is the weighted sum
of the projected cell input and the earlier blocks' outputs; the cell output is
``w₀·proj(input) + concat(w₁·block₁, …, w_B·block_B)``, a weighted version of
NAS-Bench-101's output vertex (docs/zoo.md, 1shot1). Nine cells in three stages; before the
first cell of stages 2 and 3 a 2×2 max-pool (stride 2, padding 1) halves the resolution and
the channels double. A 1×1 conv + BN maps the last cell's B·C channels to C before global
average pooling.

The network only mixes with the weights it is given, as the DARTS super-network does:

- ``ops``    [B, 3]: per block, the weight of each op (columns in ``NB101_OPS`` order);
- ``inputs`` [B, B]: row b weighs the candidates 0..b of vertex b+1 (the rest is padding);
- ``output`` [1, B+1]: the cell input's edge and each block's share of the output.

Each may instead carry a leading axis of ``layers`` (all three alike): one set per cell, as
GDAS's per-cell Gumbel draws need.

With ``sparse = True`` (GDAS, ENAS) entries that are exactly zero cost nothing: an op, an
input or a block the output cannot reach is not computed (one host read per forward pass).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.spaces.nb101.space import NB101_OPS, OneShotSpace


class ConvBnRelu(nn.Sequential):
    """NAS-Bench-101's conv → BN → ReLU (bias-free, 'same' padding)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, affine: bool = True) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=affine), nn.ReLU(inplace=False))


def make_op(name: str, channels: int) -> nn.Module:
    """A NAS-Bench-101 op; in the one-shot model its BN is affine-free, as in DARTS."""
    if name == "conv3x3-bn-relu":
        return ConvBnRelu(channels, channels, 3, affine=False)
    if name == "conv1x1-bn-relu":
        return ConvBnRelu(channels, channels, 1, affine=False)
    if name == "maxpool3x3":
        return nn.MaxPool2d(3, stride=1, padding=1)
    raise NasforgeError(f"unknown op '{name}'; choose from: {', '.join(NB101_OPS)}")


class ChoiceBlock(nn.Module):
    """Σ_k w_k·op_k(x) over the three ops (only ops with w_k ≠ 0 when ``active`` is given)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, channels) for name in NB101_OPS)

    def forward(self, x: Tensor, weights: Tensor, active: list[int] | None = None) -> Tensor:
        ks = range(len(self.ops)) if active is None else active
        out = None
        for k in ks:
            term = weights[k] * self.ops[k](x)
            out = term if out is None else out + term
        if out is None:
            raise NasforgeError("a choice block received all-zero op weights")
        return out


class OneShotCell(nn.Module):
    def __init__(self, c_in: int, channels: int, blocks: int) -> None:
        super().__init__()
        self.blocks, self.channels = blocks, channels
        self.projections = nn.ModuleList(ConvBnRelu(c_in, channels, 1) for _ in range(blocks))
        self.out_projection = ConvBnRelu(c_in, channels * blocks, 1)
        self.choice_blocks = nn.ModuleList(ChoiceBlock(channels) for _ in range(blocks))

    def forward(self, s0: Tensor, weights: dict[str, Tensor], plan: Plan | None) -> Tensor:
        ops_w, in_w, out_w = weights["ops"], weights["inputs"], weights["output"].reshape(-1)
        states: list[Tensor | None] = []
        for b in range(self.blocks):
            if plan is not None and b not in plan.blocks:
                states.append(None)  # nothing downstream reads this block
                continue
            x = None
            for j in range(b + 1):
                if plan is not None and j not in plan.inputs[b]:
                    continue
                # a planned block's inputs are planned too (Plan), so no state here is None
                source = self.projections[b](s0) if j == 0 else states[j - 1]
                term = in_w[b, j] * source
                x = term if x is None else x + term
            if x is None:  # every input weight is zero: the block sees zeros
                n, _, h, w = s0.shape
                x = s0.new_zeros(n, self.channels, h, w)
            states.append(self.choice_blocks[b](x, ops_w[b],
                                                None if plan is None else plan.ops[b]))
        n, _, h, w = s0.shape
        parts = [s0.new_zeros(n, self.channels, h, w)
                 if state is None or (plan is not None and b + 1 not in plan.output)
                 else out_w[b + 1] * state
                 for b, state in enumerate(states)]
        out = torch.cat(parts, dim=1)
        if plan is None or 0 in plan.output:
            out = out + out_w[0] * self.out_projection(s0)
        return out


class Plan:
    """Which ops, inputs and blocks carry a non-zero weight (for sparse forward passes)."""

    def __init__(self, weights: dict[str, Tensor], blocks: int,
                 flags: list[bool] | None = None) -> None:
        parts = [weights[k].reshape(-1) for k in ("ops", "inputs", "output")]
        if flags is None:
            flags = torch.cat(parts).ne(0).tolist()  # one host read
        n_ops, n_in = parts[0].numel(), parts[1].numel()
        width, in_width = n_ops // blocks, n_in // blocks
        ops = [flags[b * width:(b + 1) * width] for b in range(blocks)]
        inputs = [flags[n_ops + b * in_width:n_ops + (b + 1) * in_width] for b in range(blocks)]
        output = flags[n_ops + n_in:]
        self.ops = [[k for k, on in enumerate(row) if on] for row in ops]
        self.inputs = [{j for j in range(b + 1) if inputs[b][j]} for b in range(blocks)]
        self.output = {j for j, on in enumerate(output) if on}
        # a block is computed when the output or a computed later block reads it
        needed = {j - 1 for j in self.output if j > 0}
        for b in reversed(range(blocks)):
            if b in needed:
                needed |= {j - 1 for j in self.inputs[b] if j > 0}
        self.blocks = needed


class OneShotNetwork(nn.Module):
    """The one-shot model of a NAS-Bench-1shot1 space (``layers`` cells, default 9)."""

    sparse: bool = False
    op_mask = None  # every block holds all three ops

    def __init__(self, space: OneShotSpace, channels: int, num_classes: int, layers: int = 9,
                 in_channels: int = 3) -> None:
        super().__init__()
        if layers < 3:
            raise NasforgeError(f"search.layers must be at least 3 (three stages); got {layers}")
        self.space = space
        self.primitives = NB101_OPS
        self.nodes = space.blocks
        self.num_edges = space.blocks
        B = space.blocks
        self.stem = ConvBnRelu(in_channels, channels, 3)
        self.reductions = {layers // 3, 2 * layers // 3}
        self.cells = nn.ModuleList()
        c_in, c = channels, channels
        for i in range(layers):
            if i in self.reductions:
                c *= 2
            self.cells.append(OneShotCell(c_in, c, B))
            c_in = c * B
        self.pool = nn.MaxPool2d(2, stride=2, padding=1)
        self.postprocess = nn.Sequential(nn.ReLU(inplace=False),
                                         nn.Conv2d(c_in, c, 1, bias=False),
                                         nn.BatchNorm2d(c, affine=False))
        self.classifier = nn.Linear(c, num_classes)

    @property
    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        B = self.space.blocks
        return {"ops": (B, len(NB101_OPS)), "inputs": (B, B), "output": (1, B + 1)}

    def forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor:
        """``weights`` as :attr:`arch_shapes` (one set for every cell), or each entry with a
        leading axis of ``layers`` (one set per cell: GDAS's per-cell Gumbel draws)."""
        L = len(self.cells)
        if self._check_weights(weights):
            cell_weights = [{k: v[i] for k, v in weights.items()} for i in range(L)]
        else:
            cell_weights = [weights] * L
        plans: list[Plan | None] = [None] * L
        if self.sparse and cell_weights[0] is weights:
            plans = [Plan(weights, self.space.blocks)] * L
        elif self.sparse:
            keys = ("ops", "inputs", "output")
            rows = torch.cat([weights[k].reshape(L, -1) for k in keys], dim=1)
            plans = [Plan(w, self.space.blocks, flags)  # one host read for all cells
                     for w, flags in zip(cell_weights, rows.ne(0).tolist(), strict=True)]
        s = self.stem(x)
        for i, cell in enumerate(self.cells):
            if i in self.reductions:
                s = self.pool(s)
            s = cell(s, cell_weights[i], plans[i])
        s = self.postprocess(s)
        return self.classifier(s.mean(dim=(2, 3)))

    def _check_weights(self, weights: dict[str, Tensor]) -> bool:
        """Refuse keys or shapes that do not fit; True for per-cell weights."""
        per_cell = None
        for key, shape in self.arch_shapes.items():
            if key not in weights:
                raise NasforgeError(f"weights need keys {sorted(self.arch_shapes)}; got "
                                    f"{sorted(weights)}")
            got = tuple(weights[key].shape)
            this = got == (len(self.cells), *shape)
            if (got != shape and not this) or (per_cell is not None and this != per_cell):
                raise NasforgeError(
                    f"weights['{key}'] must have shape {list(shape)} (every cell) or "
                    f"{[len(self.cells), *shape]} (per cell), the same for every key; got "
                    f"{list(got)}")
            per_cell = this
        return bool(per_cell)
