"""Named cell search spaces: which candidate ops a super-network's mixed ops hold.

``--set search.space=NAME`` picks one; the restricted spaces of RobustDARTS (S1–S4) and the
tabular benchmark's small space register here too.
"""

from __future__ import annotations

from dataclasses import dataclass

from nasforge.registry import Registry
from nasforge.spaces.darts.genotype import PRIMITIVES


@dataclass(frozen=True)
class CellSpace:
    """Candidate ops of every edge, and a default number of intermediate nodes."""

    name: str
    primitives: tuple[str, ...]
    nodes: int = 4
    description: str = ""


SPACES: Registry[CellSpace] = Registry("search space")


def register_space(space: CellSpace) -> CellSpace:
    SPACES.register(space.name)(space)
    return space


register_space(CellSpace("darts", PRIMITIVES, 4, "the 8 DARTS ops, 4 intermediate nodes"))
register_space(CellSpace(
    "tabular-digits", ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"), 2,
    "tabular benchmark space: 3 ops, 2 nodes, 243 normal cells (nasforge.benchmarks)",
))
# RobustDARTS's restricted spaces (thesis §3.4.6). S1 (per-edge top-2 ops of a DARTS run)
# differs per edge and arrives with the algorithm zoo.
register_space(CellSpace("s2", ("sep_conv_3x3", "skip_connect"), 4,
                         "RobustDARTS S2: sep_conv_3x3 and skip_connect on every edge"))
register_space(CellSpace("s3", ("none", "sep_conv_3x3", "skip_connect"), 4,
                         "RobustDARTS S3: S2 plus none"))
register_space(CellSpace("s4", ("sep_conv_3x3", "noise"), 4,
                         "RobustDARTS S4: sep_conv_3x3 and noise (N(0,1) of the output shape)"))
register_space(CellSpace("darts-no-none", tuple(p for p in PRIMITIVES if p != "none"), 4,
                         "the 7 DARTS ops without none (FairDARTS, DrNAS)"))
