"""DARTS-ELU (thesis §4.4.1): DARTS with per-op strengths ELU(α) + 1 instead of a softmax.

The softmax makes the ops of an edge compete with each other (local competition); ELU + 1
gives every op its own positive strength, so strengths of different edges and cells can be
ranked together, which the top-k survival rule needs. Everything else is first/second-order
DARTS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nasforge.search.base import STRATEGIES
from nasforge.search.darts import DARTS


def elu_plus_one(alpha: torch.Tensor) -> torch.Tensor:
    """ELU(α) + 1 > 0: α + 1 for α > 0, exp(α) otherwise."""
    return F.elu(alpha) + 1.0


@STRATEGIES.register("darts-elu")
class DARTSELU(DARTS):
    """α ∈ R^{E×K} per cell type; op weights ELU(α) + 1, unnormalised."""

    def op_weights(self) -> dict[str, torch.Tensor]:
        return {c: elu_plus_one(a) for c, a in self.alphas.items()}
