"""Derivation rules: turn learned op strengths into a discrete genotype.

Each rule is one function registered in :data:`DERIVE_RULES`, so ``--rule argmax`` (and the
later top-k / ActAll rules) are picked by name. Strengths arrive already normalised by the
search algorithm (softmax, sigmoid, Beta mean, ...); rules only rank them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from nasforge.errors import NasforgeError
from nasforge.registry import Registry
from nasforge.spaces.darts.genotype import (
    PRIMITIVES,
    CellGenotype,
    Genotype,
    cell_edges,
    validate_genotype,
)

Strengths = dict[str, torch.Tensor]
"""``{"normal": [E, K], "reduce": [E, K]}``: E edges in :func:`cell_edges` order, K ops."""

DeriveRule = Callable[..., Genotype]
"""``rule(strengths, *, primitives, nodes, **options) -> Genotype``."""

DERIVE_RULES: Registry[DeriveRule] = Registry("derivation rule")

CELLS = ("normal", "reduce")


def check_strengths(strengths: Strengths, *, primitives: Sequence[str], nodes: int) -> None:
    """Raise :class:`NasforgeError` unless both cells have finite ``[E, K]`` strengths."""
    if not isinstance(strengths, dict) or set(strengths) != set(CELLS):
        got = sorted(strengths) if isinstance(strengths, dict) else type(strengths).__name__
        raise NasforgeError(f"strengths must have keys 'normal' and 'reduce'; got {got}")
    if nodes < 1:
        raise NasforgeError(f"nodes must be at least 1; got {nodes}")
    if not any(p != "none" for p in primitives):
        raise NasforgeError(f"primitives {list(primitives)} hold no op other than 'none'")
    expected = (len(cell_edges(nodes)), len(primitives))
    for cell in CELLS:
        w = strengths[cell]
        if not isinstance(w, torch.Tensor):
            raise NasforgeError(f"{cell} strengths must be a torch.Tensor; got {type(w).__name__}")
        if tuple(w.shape) != expected:
            raise NasforgeError(
                f"{cell} strengths have shape {list(w.shape)}; expected {list(expected)} "
                f"({expected[0]} edges for {nodes} nodes x {expected[1]} ops)"
            )
        if not torch.isfinite(w).all():
            raise NasforgeError(f"{cell} strengths contain NaN or infinite values")


def derive(
    rule: str,
    strengths: Strengths,
    *,
    primitives: Sequence[str] = PRIMITIVES,
    nodes: int = 4,
    **options: object,
) -> Genotype:
    """Apply the rule called ``rule``; the result is validated against ``nodes``/``primitives``."""
    fn = DERIVE_RULES.get(rule)
    primitives = tuple(primitives)
    check_strengths(strengths, primitives=primitives, nodes=nodes)
    genotype = fn(strengths, primitives=primitives, nodes=nodes, **options)
    validate_genotype(genotype, nodes=nodes, primitives=primitives)
    return genotype


def _best_op(row: list[float], candidates: list[int]) -> tuple[int, float]:
    """Strongest candidate op of one edge; ties go to the earlier primitive."""
    best, score = -1, -math.inf
    for k in candidates:
        if row[k] > score:
            best, score = k, row[k]
    return best, score


def _argmax_cell(w: torch.Tensor, primitives: Sequence[str], nodes: int) -> CellGenotype:
    rows = w.detach().to("cpu", torch.float64).tolist()
    candidates = [k for k, p in enumerate(primitives) if p != "none"]
    best = [_best_op(row, candidates) for row in rows]
    edges = cell_edges(nodes)
    ops: list[tuple[str, int, int]] = []
    for node in range(2, 2 + nodes):
        incoming = [e for e, (_, j) in enumerate(edges) if j == node]
        # sorted() is stable: equal scores keep the lower edge index first, as in DARTS.
        kept = sorted(incoming, key=lambda e: -best[e][1])[:2]
        ops.extend((primitives[best[e][0]], edges[e][0], node) for e in kept)
    return CellGenotype(ops=tuple(ops), concat=tuple(range(2, 2 + nodes)))


@DERIVE_RULES.register("argmax")
def argmax_rule(
    strengths: Strengths, *, primitives: Sequence[str], nodes: int, **options: object
) -> Genotype:
    """DARTS: per edge the strongest non-none op; per node the two strongest such edges.

    Kept edges are listed in descending strength, which reproduces published genotypes.
    """
    if options:
        raise NasforgeError(
            f"derivation rule 'argmax' takes no options; got: {', '.join(sorted(options))}"
        )
    return Genotype(*(_argmax_cell(strengths[c], primitives, nodes) for c in CELLS))
