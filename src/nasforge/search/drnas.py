"""DrNAS (Chen et al., 2021): op weights drawn from a Dirichlet per edge.

Concentrations β = ELU(α) + 1; each forward draws one ``Dirichlet(β).rsample()`` per edge
(pathwise gradient, shared by all cells of a type and the whole batch), in training and in
evaluation. The default regulariser is L2 on α (Adam weight decay ``search.arch_weight_decay``,
1e-3), which pulls β towards 1. Derivation ranks softmax(α) with the DARTS rule, as DrNAS's
``genotype()`` does (DARTS-space/model_search.py parses ``softmax(alphas)``, not the
Dirichlet mean β / Σβ: both pick the same op on an edge, but they rank edges differently).

Not included: DrNAS's progressive learning (partial channels with K=6 then K=4, pruning to
the top-4 ops and widening between two 25-epoch stages); the Dirichlet relaxation runs on
the full super-network. Draws come from a private generator seeded by (seed, draw), so a
resumed search draws what an uninterrupted one draws.
"""

from __future__ import annotations

import torch
from torch.distributions import Dirichlet

from nasforge.config import SearchConfig
from nasforge.search.base import STRATEGIES
from nasforge.search.darts import DARTS
from nasforge.search.darts_elu import elu_plus_one
from nasforge.search.sampling import DrawStream
from nasforge.spaces.darts.search_network import SearchNetwork


@STRATEGIES.register("drnas")
class DrNAS(DrawStream, DARTS):
    """α ∈ R^{E×K} per cell type; weights ~ Dirichlet(ELU(α) + 1), one sample per call."""

    @classmethod
    def validate(cls, cfg: SearchConfig) -> None:
        cls.require_first_order(cfg, "drnas")

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        self.start_stream()

    def concentrations(self) -> dict[str, torch.Tensor]:
        return {c: elu_plus_one(a) for c, a in self.alphas.items()}

    def op_weights(self) -> dict[str, torch.Tensor]:
        """A fresh Dirichlet sample per edge (rows on the simplex, differentiable in α)."""
        device = next(iter(self.alphas.values())).device
        with self.private_rng(device):
            out = {c: Dirichlet(b, validate_args=False).rsample()
                   for c, b in self.concentrations().items()}
        return out

    def strengths(self) -> dict[str, torch.Tensor]:
        """softmax(α) per edge (ops an edge lacks at 0), what DrNAS's ``genotype()`` ranks."""
        return {k: v.detach().float().cpu() for k, v in DARTS.op_weights(self).items()}

    def dirichlet_mean(self) -> dict[str, torch.Tensor]:
        """E[weights] = β / Σβ per edge (not what the derivation ranks)."""
        return {c: (b / b.sum(-1, keepdim=True)).detach().float().cpu()
                for c, b in self.concentrations().items()}
