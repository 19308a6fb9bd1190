"""RobustDARTS-L2 (Zela et al., 2020): DARTS with the strongest L2 regularisation of their grid.

Weight decay 0.0243 on the network weights during the search (it also enters the
second-order unrolled step); everything else is DARTS. RobustDARTS's own base is
second-order DARTS (``configs/algos/robustdarts-l2-cifar10.yaml``).
"""

from __future__ import annotations

import dataclasses

from nasforge.config import SearchConfig
from nasforge.search.base import STRATEGIES
from nasforge.search.darts import DARTS

ROBUST_WEIGHT_DECAY = 0.0243


@STRATEGIES.register("robustdarts-l2")
class RobustDARTSL2(DARTS):
    """DARTS with search-time weight decay 0.0243 (RobustDARTS's L2 variant)."""

    @classmethod
    def prepare(cls, cfg: SearchConfig, image_size: int) -> SearchConfig:
        return dataclasses.replace(cfg, w_weight_decay=ROBUST_WEIGHT_DECAY)
