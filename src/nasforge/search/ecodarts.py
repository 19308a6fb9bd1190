"""EcoDARTS-c4r2: DARTS in EcoNAS's reduced setting c4r2 (Zhou et al., 2020).

EcoNAS's factors are divisors: c4 = a quarter of the channels, r2 = half the input
resolution, so the DARTS search runs at C=16/4 = 4 on 16×16 CIFAR images (the values the
proxy-data paper's EcoDARTS row implies; see docs/zoo.md). Everything else is DARTS.
"""

from __future__ import annotations

import dataclasses

from nasforge.config import SearchConfig
from nasforge.search.base import STRATEGIES
from nasforge.search.darts import DARTS

CHANNEL_DIVISOR = 4
RESOLUTION_DIVISOR = 2


@STRATEGIES.register("ecodarts")
class EcoDARTS(DARTS):
    """DARTS at c4r2: channels ÷ 4, input resolution ÷ 2 (unless ``search.resolution`` set)."""

    @classmethod
    def prepare(cls, cfg: SearchConfig, image_size: int) -> SearchConfig:
        size = cfg.resolution or max(image_size // RESOLUTION_DIVISOR, 1)
        return dataclasses.replace(cfg, channels=max(cfg.channels // CHANNEL_DIVISOR, 1),
                                   resolution=size)
