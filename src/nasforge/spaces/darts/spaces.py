"""Named cell search spaces: which candidate ops a super-network's mixed ops hold.

``--set search.space=NAME`` picks one; the restricted spaces of RobustDARTS (S1–S4) and the
tabular benchmark's small space register here too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nasforge.errors import NasforgeError
from nasforge.registry import Registry
from nasforge.spaces.darts.genotype import PRIMITIVES, cell_edges

EdgeOps = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class CellSpace:
    """Candidate ops of every edge, and a default number of intermediate nodes.

    ``edge_ops`` (normal, reduce) restricts each edge to its own ops (RobustDARTS's S1); the
    super-network then builds only those, and ``primitives`` is their union.
    """

    name: str
    primitives: tuple[str, ...]
    nodes: int = 4
    description: str = ""
    edge_ops: tuple[EdgeOps, EdgeOps] | None = None

    def op_mask(self, nodes: int) -> dict[str, torch.Tensor] | None:
        """Per cell type a bool [E, K]: which primitives each edge holds (None: all)."""
        if self.edge_ops is None:
            return None
        edges = len(cell_edges(nodes))
        if any(len(table) != edges for table in self.edge_ops):
            raise NasforgeError(f"space '{self.name}' is defined for {len(self.edge_ops[0])} "
                                f"edges ({self.nodes} nodes); got search.nodes={nodes}")
        return {kind: torch.tensor([[p in ops for p in self.primitives] for ops in table])
                for kind, table in zip(("normal", "reduce"), self.edge_ops, strict=True)}


SPACES: Registry[CellSpace] = Registry("search space")


def register_space(space: CellSpace) -> CellSpace:
    SPACES.register(space.name)(space)
    return space


register_space(CellSpace("darts", PRIMITIVES, 4, "the 8 DARTS ops, 4 intermediate nodes"))
register_space(CellSpace(
    "tabular-digits", ("none", "max_pool_3x3", "skip_connect", "sep_conv_3x3"), 2,
    "tabular benchmark space: 3 ops, 2 nodes, 243 normal cells (nasforge.benchmarks)",
))
# RobustDARTS's restricted spaces (thesis §3.4.6). S1 holds, per edge, the top-2 ops of a
# DARTS run (RobustDARTS's table; edges in cell_edges order); S2–S4 the same ops everywhere.
_MAX, _AVG, _SKIP, _SEP3 = "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3"
_DIL3, _DIL5 = "dil_conv_3x3", "dil_conv_5x5"
_S1_NORMAL = ((_SKIP, _DIL3), (_SKIP, _DIL5), (_SKIP, _DIL5), (_SKIP, _SEP3), (_SKIP, _DIL3),
              (_MAX, _SKIP), (_SKIP, _SEP3), (_SKIP, _SEP3), (_SKIP, _DIL3), (_SKIP, _SEP3),
              (_MAX, _SKIP), (_SKIP, _DIL3), (_DIL3, _DIL5), (_DIL3, _DIL5))
_S1_REDUCE = ((_MAX, _AVG), (_MAX, _DIL3), (_MAX, _AVG), (_MAX, _AVG), (_SKIP, _DIL5),
              (_MAX, _AVG), (_MAX, _SEP3), (_SKIP, _DIL3), (_SKIP, _DIL5), (_MAX, _AVG),
              (_MAX, _AVG), (_SKIP, _DIL5), (_SKIP, _DIL5), (_SKIP, _DIL5))
register_space(CellSpace(
    "s1", tuple(p for p in PRIMITIVES if any(p in e for e in _S1_NORMAL + _S1_REDUCE)), 4,
    "RobustDARTS S1: two ops per edge, different on every edge", (_S1_NORMAL, _S1_REDUCE)))
register_space(CellSpace("s2", ("sep_conv_3x3", "skip_connect"), 4,
                         "RobustDARTS S2: sep_conv_3x3 and skip_connect on every edge"))
register_space(CellSpace("s3", ("none", "sep_conv_3x3", "skip_connect"), 4,
                         "RobustDARTS S3: S2 plus none"))
register_space(CellSpace("s4", ("sep_conv_3x3", "noise"), 4,
                         "RobustDARTS S4: sep_conv_3x3 and noise (N(0,1) of the output shape)"))
register_space(CellSpace("darts-no-none", tuple(p for p in PRIMITIVES if p != "none"), 4,
                         "the 7 DARTS ops without none (FairDARTS, DrNAS)"))
