"""Architecture parameters of the NAS-Bench-1shot1 spaces, shared by DARTS, GDAS and ENAS.

A one-shot cell has three kinds of choices (docs/zoo.md §NAS-Bench-1shot1): the op of every block
(α_mixed, [B, 3]), the parents of every vertex whose parents are searched (α_in, one row of
v entries for vertex v) and the output's parents (α_out, [1, B+1]). Strategies for these
spaces register in :data:`ONESHOT_STRATEGIES` under the same names as their DARTS-space
versions; ``nasforge search --space 1shot1-ss1 --algo darts`` picks the one here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasforge.registry import Registry
from nasforge.search.base import SearchStrategy
from nasforge.spaces.nb101.space import NB101_OPS, OneShotSpace

ONESHOT_STRATEGIES: Registry[type[SearchStrategy]] = Registry(
    "search algorithm for the NAS-Bench-1shot1 spaces")


def choice_alphas(space: OneShotSpace, std: float) -> nn.ParameterDict:
    """α_mixed, α_out and one α_in per searched vertex, drawn from std·N(0, 1) (B1's init)."""
    B = space.blocks
    alphas = {"ops": std * torch.randn(B, len(NB101_OPS)), "output": std * torch.randn(1, B + 1)}
    for v in space.choice_vertices():
        alphas[f"in{v}"] = std * torch.randn(1, v)
    return nn.ParameterDict({k: nn.Parameter(v) for k, v in alphas.items()})


_FIXED_ROWS: dict[tuple[str, torch.device, torch.dtype], dict[int, Tensor]] = {}


def _fixed_rows(space: OneShotSpace, device: torch.device, dtype: torch.dtype
                ) -> dict[int, Tensor]:
    """The constant input rows (0/1, padded to B) of the vertices whose parents are fixed,
    made once per space and device: assembling the weights then copies nothing from the
    host."""
    key = (space.name, device, dtype)
    if key not in _FIXED_ROWS:
        B = space.blocks
        rows = {}
        for v in range(1, B + 1):
            if v not in space.choice_vertices():
                row = torch.zeros(B, dtype=dtype)
                row[list(space.fixed_parents(v))] = 1.0
                rows[v] = row.to(device)
        _FIXED_ROWS[key] = rows
    return _FIXED_ROWS[key]


def assemble(space: OneShotSpace, ops: Tensor, output: Tensor,
             inputs: dict[int, Tensor]) -> dict[str, Tensor]:
    """The network's weights: ``inputs`` gives the rows of the searched vertices; a vertex
    whose parents are fixed sums them with weight 1 (as the one-shot model does). ``ops``
    [..., B, 3] may carry leading axes (one set per cell: [L, B, 3]); ``output`` and every
    ``inputs`` row then carry the same ones."""
    B = space.blocks
    lead = tuple(ops.shape[:-2])
    fixed = _fixed_rows(space, ops.device, ops.dtype)
    rows = [F.pad(inputs[v].reshape(*lead, v), (0, B - v)) if v in inputs
            else fixed[v].expand(*lead, B) for v in range(1, B + 1)]
    return {"ops": ops, "inputs": torch.stack(rows, dim=-2),
            "output": output.reshape(*lead, 1, B + 1)}


def softmax_weights(space: OneShotSpace, alphas: nn.ParameterDict) -> dict[str, Tensor]:
    """softmax over every choice: DARTS's op weights, and the strengths of GDAS."""
    return assemble(space, F.softmax(alphas["ops"], dim=-1),
                    F.softmax(alphas["output"], dim=-1),
                    {v: F.softmax(alphas[f"in{v}"], dim=-1) for v in space.choice_vertices()})
