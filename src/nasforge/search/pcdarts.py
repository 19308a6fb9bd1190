"""PC-DARTS (Xu et al., 2020): partial-channel connections and edge normalisation.

*Partial channels.* Each mixed op sends only the first C/K channels through its candidate
ops (built with C/K channels); the other (K−1)C/K channels bypass them — through
MaxPool2d(2, 2) on stride-2 edges — and the two parts are concatenated and channel-shuffled
with K groups.

*Edge normalisation.* One extra parameter β per edge and cell type (init
``arch_init_std·randn``, optimised with α by the same Adam); node i is
Σ_j softmax(β over node i's incoming edges)_j · MixedOp_j. The strategy hands the network
op weights ``softmax(α)_jk · β̂_j``, so the shared cell computes Σ_j Σ_k β̂_j α̂_jk op_k; the
partial-channel mixed op scales its bypass by the sum of its edge's op weights (= β̂_j), so
each edge contributes exactly β̂_j · MixedOp_j. The same products are the derivation
strengths.

The loop builds the plain super-network; the strategy swaps every mixed op for a
partial-channel one when it is constructed (before the weight optimiser and any checkpoint
see the network), so ``run_search`` and checkpoint reloading need no PC-DARTS case.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.config import PCDARTSOptions, SearchConfig
from nasforge.errors import NasforgeError
from nasforge.search.base import CELL_TYPES, STRATEGIES
from nasforge.search.darts import DARTS
from nasforge.spaces.darts.search_network import MixedOp, SearchNetwork


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """View B×groups×(C/groups)×H×W, swap dims 1 and 2, flatten back to B×C×H×W."""
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class PartialChannelMixedOp(MixedOp):
    """A mixed op over the first C/K channels; the rest bypass (max-pooled when stride 2)."""

    def __init__(self, C: int, stride: int, primitives: Sequence[str], k: int,
                 allowed: Sequence[int] | None = None) -> None:
        """``allowed``: the primitives this edge holds (per-edge spaces such as S1)."""
        if C % k:
            raise NasforgeError(f"PC-DARTS needs channels divisible by partial_k={k}; got {C}")
        super().__init__(C // k, stride, primitives, allowed)
        self.k, self.stride, self.C = k, stride, C
        # ceil_mode matches the ops' ceil(H/2) on odd sizes and equals floor mode on even ones
        self.bypass_pool = nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else None

    def forward(self, x: Tensor, weights: Tensor, active: Sequence[int] | None = None
                ) -> Tensor:
        part = self.C // self.k
        processed = super().forward(x[:, :part], weights, active)
        if self.k == 1:  # every channel enters the mixed op: DARTS with edge normalisation
            return processed
        bypass = x[:, part:]
        if self.bypass_pool is not None:
            bypass = self.bypass_pool(bypass)
        if processed is None:  # only ops with a zero output (none) are held
            processed = bypass.new_zeros(bypass.shape[0], part, *bypass.shape[2:])
        # β̂ of the edge when the weights are softmax(α)·β̂; 1 for plain softmax rows
        bypass = weights.sum() * bypass
        return channel_shuffle(torch.cat([processed, bypass], dim=1), self.k)


def use_partial_channels(network: SearchNetwork, k: int) -> SearchNetwork:
    """Replace every mixed op of ``network`` by a :class:`PartialChannelMixedOp` (in place).

    The new ops hold the same candidate ops per edge (per-edge spaces such as S1) and follow
    the network's device, dtype and (channels-last) memory format.
    Already partial ops with the same K are kept, so a second call changes nothing.
    """
    ref = next(network.parameters())
    channels_last = any(p.dim() == 4 and not p.is_contiguous()
                        and p.is_contiguous(memory_format=torch.channels_last)
                        for p in network.parameters())
    for cell in network.cells:
        C = cell.out_channels // cell.nodes
        for e, (i, _) in enumerate(cell.edges):
            old = cell.ops[e]
            if isinstance(old, PartialChannelMixedOp) and old.k == k:
                continue
            stride = 2 if cell.reduction and i < 2 else 1
            op = PartialChannelMixedOp(C, stride, network.primitives, k,
                                       getattr(old, "allowed", None))
            op = op.to(device=ref.device, dtype=ref.dtype)
            if channels_last:
                op = op.to(memory_format=torch.channels_last)
            cell.ops[e] = op
    return network


def edge_weights(betas: Tensor, nodes: int) -> Tensor:
    """softmax of β over each node's incoming edges (edges of a node are contiguous)."""
    out, start = [], 0
    for j in range(2, 2 + nodes):
        out.append(F.softmax(betas[start:start + j], dim=-1))
        start += j
    return torch.cat(out)


@STRATEGIES.register("pcdarts")
class PCDARTS(DARTS):
    """First-order DARTS on a partial-channel super-network with edge normalisation."""

    options = (PCDARTSOptions,)

    @classmethod
    def validate(cls, cfg: SearchConfig) -> None:
        cls.require_first_order(cfg, "pcdarts")
        if cfg.channels % cfg.partial_k:
            raise NasforgeError(f"pcdarts needs search.channels divisible by search.partial_k="
                                f"{cfg.partial_k}; got search.channels={cfg.channels}")

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        use_partial_channels(network, cfg.partial_k)
        self.betas = nn.ParameterDict(
            {c: nn.Parameter(cfg.arch_init_std * torch.randn(self.num_edges))
             for c in CELL_TYPES}
        )

    def edge_weights(self) -> dict[str, Tensor]:
        return {c: edge_weights(b, self.nodes) for c, b in self.betas.items()}

    def op_weights(self) -> dict[str, Tensor]:
        edges = self.edge_weights()
        return {c: w * edges[c][:, None] for c, w in super().op_weights().items()}
