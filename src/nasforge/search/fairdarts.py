"""FairDARTS (Chu et al., 2020): independent sigmoid strengths and the zero-one loss.

Each op's weight is σ(α) with no normalisation across the edge, so ops do not compete
("exclusive competition" removed) and skip connections cannot win by starving the others.
The architecture loss adds w₀₁ · L₀₁ with L₀₁ = −mean((σ(α) − ½)²) over every op of both
cells, pushing strengths towards 0 or 1. α starts at zero (σ = ½). Its own derivation is
the ``threshold`` rule (per node the two strongest edges, each kept only at σ ≥ 0.85).
The published setting uses the 7 DARTS ops without ``none`` (``search.space=darts-no-none``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.config import FairDARTSOptions, SearchConfig
from nasforge.search.base import CELL_TYPES, STRATEGIES, SearchStrategy, StepContext
from nasforge.spaces.darts.search_network import SearchNetwork


def zero_one_loss(strengths: list[torch.Tensor]) -> torch.Tensor:
    """L₀₁ = −mean over all entries of (σ − ½)²: lowest when every strength is 0 or 1."""
    flat = torch.cat([s.reshape(-1) for s in strengths])
    return -((flat - 0.5) ** 2).mean()


@STRATEGIES.register("fairdarts")
class FairDARTS(SearchStrategy):
    """α ∈ R^{E×K} per cell type, zero-initialised; op weights σ(α); first order."""

    options = (FairDARTSOptions,)

    def __init__(self, network: SearchNetwork, cfg: SearchConfig) -> None:
        super().__init__(network, cfg)
        shape = (self.num_edges, len(self.primitives))
        self.alphas = nn.ParameterDict({c: nn.Parameter(torch.zeros(shape)) for c in CELL_TYPES})

    def op_weights(self) -> dict[str, torch.Tensor]:
        return {c: torch.sigmoid(a) for c, a in self.alphas.items()}

    def arch_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy + w₀₁ · L₀₁ (the loss of FairDARTS's architecture step)."""
        weights = list(self.op_weights().values())
        return F.cross_entropy(logits.float(), y) + self.cfg.zero_one_weight * zero_one_loss(
            weights)

    def arch_step(self, network: SearchNetwork, batch_w: tuple, batch_a: tuple,
                  optimizer: torch.optim.Optimizer, ctx: StepContext) -> None:
        x, y = batch_a
        with ctx.autocast():
            logits = network(x, self.op_weights())
        self.descend(self.arch_loss(logits, y), optimizer)
