"""Derivation rules: turn learned op strengths into a discrete genotype.

Each rule is one function registered in :data:`DERIVE_RULES`, so ``--rule argmax`` or
``--rule topk --k 14`` is picked by name. Strengths arrive already normalised by the search
algorithm (softmax, sigmoid, Beta mean, ...); rules only rank them. A rule's options are its
keyword-only parameters, which is how :func:`rule_options` knows what a config must supply.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

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
    _check_options(rule, fn, options)
    primitives = tuple(primitives)
    check_strengths(strengths, primitives=primitives, nodes=nodes)
    genotype = fn(strengths, primitives=primitives, nodes=nodes, **options)
    validate_genotype(genotype, nodes=nodes, primitives=primitives)
    return genotype


def _option_params(fn: DeriveRule) -> dict[str, inspect.Parameter]:
    """A rule's options: its keyword-only parameters other than ``primitives`` and ``nodes``."""
    return {
        name: p
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in ("primitives", "nodes")
    }


def _check_options(rule: str, fn: DeriveRule, options: dict[str, object]) -> None:
    """Unknown or missing options are user errors, not TypeErrors from deep inside a rule."""
    params = _option_params(fn)
    takes_any = any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()
    )
    unknown = sorted(set(options) - set(params))
    if unknown and not takes_any:
        raise NasforgeError(
            f"derivation rule '{rule}' has no option {', '.join(unknown)}; "
            f"it takes: {', '.join(params) or 'no options'}"
        )
    missing = [n for n, p in params.items() if p.default is p.empty and n not in options]
    if missing:
        raise NasforgeError(f"derivation rule '{rule}' needs option {', '.join(missing)}")


RULE_SETTINGS = ("k", "act_all", "threshold")
"""Settings (``search.k``, ``--k``, ...) that :func:`rule_options` hands to rules taking them."""


def rule_options(
    settings: Any,
    *,
    primitives: Sequence[str] | None = None,
    nodes: int | None = None,
    flags: bool = False,
) -> dict[str, object]:
    """The options ``settings.rule`` takes, read from ``settings`` (a SearchConfig or CLI args).

    Called before any work starts, so ``rule=topk`` without ``k`` (or ``k`` given to a rule
    that ignores it) fails at once rather than after a search. With ``primitives`` and
    ``nodes``, ``k`` is range-checked too. ``flags`` names settings as ``--k`` instead of
    ``search.k`` in messages.
    """

    def name(field: str) -> str:
        return f"--{field.replace('_', '-')}" if flags else f"search.{field}"

    rule = str(settings.rule)
    params = _option_params(DERIVE_RULES.get(rule))
    options: dict[str, object] = {}
    for field in RULE_SETTINGS:
        value = getattr(settings, field, None)
        if field not in params:
            if value is not None and value is not False:
                raise NasforgeError(f"{name(field)} is not an option of rule '{rule}'")
        elif value is not None:
            options[field] = value
        elif params[field].default is inspect.Parameter.empty:
            example = "--k 14" if flags else "search.k=14"
            hint = f" (ops kept over both cells), e.g. {example}" if field == "k" else ""
            raise NasforgeError(f"rule '{rule}' needs {name(field)}{hint}")
    if "k" in options and primitives is not None and nodes is not None:
        check_k(options["k"], primitives=primitives, nodes=nodes)
    return options


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


# --------------------------------------------------------------------------- top-k survival


def candidate_count(primitives: Sequence[str], nodes: int) -> int:
    """Ops top-k ranks: every non-``none`` op of every edge of both cells (196 for DARTS)."""
    return len(CELLS) * len(cell_edges(nodes)) * sum(p != "none" for p in primitives)


def check_k(k: object, *, primitives: Sequence[str], nodes: int) -> int:
    """Return ``k`` if it is a whole number of ops the two cells can supply."""
    total = candidate_count(primitives, nodes)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= total:
        raise NasforgeError(
            f"k={k} is out of range; allowed 1..{total} (ops other than 'none' on the "
            f"{len(cell_edges(nodes))} edges of both cells)"
        )
    return k


def _node_scores(
    w: torch.Tensor, cell: str, primitives: Sequence[str], nodes: int, act_all: bool
) -> tuple[list[list[float]], set[tuple[int, int]]]:
    """Ranking scores of one cell, and its ActAll leaders as (edge, op) pairs.

    With ``act_all`` every score is divided by the largest non-``none`` strength entering the
    same node (ActAll, §4.5.1), so each node's strongest op scores exactly 1; the first such
    op in (edge, op) order is the node's leader. Without it scores are the strengths.
    """
    rows = w.detach().to("cpu", torch.float64).tolist()
    if not act_all:
        return rows, set()
    candidates = [k for k, p in enumerate(primitives) if p != "none"]
    edges = cell_edges(nodes)
    leaders: set[tuple[int, int]] = set()
    for node in range(2, 2 + nodes):
        incoming = [e for e, (_, j) in enumerate(edges) if j == node]
        pairs = [(e, k) for e in incoming for k in candidates]
        top = max(rows[e][k] for e, k in pairs)
        if not top > 0:
            raise NasforgeError(
                f"act_all needs positive strengths; node {node} of the {cell} cell has "
                f"maximum {top:g}"
            )
        leaders.add(next((e, k) for e, k in pairs if rows[e][k] == top))
        for e in incoming:
            rows[e] = [v / top for v in rows[e]]
    return rows, leaders


def _ext_cell(
    kept: list[tuple[int, int]], cell: str, k: int, primitives: Sequence[str], nodes: int
) -> CellGenotype:
    """An ExtCell from its kept (edge, op) pairs, listed strongest first.

    Every kept op stays in the genotype, so a k-ExtCell pair holds exactly k ops (§4.2.1). A
    node is active when some kept op enters it; the concat is every active node. A kept op
    that reads an inactive node carries no signal: the evaluation network does not build it
    (``eval_network._wire``). A cell in which no node is reachable from the cell inputs is an
    error.
    """
    edges = cell_edges(nodes)
    ops: list[tuple[str, int, int]] = []
    for node in range(2, 2 + nodes):
        ops.extend((primitives[op], edges[e][0], node) for e, op in kept if edges[e][1] == node)
    active = sorted({node for _, _, node in ops})
    live = {0, 1}
    for node in active:
        if any(n == node and i in live for _, i, n in ops):
            live.add(node)
    if len(live) == 2:
        raise NasforgeError(
            f"topk with k={k} leaves the {cell} cell without an active intermediate node "
            f"({len(kept)} of the {k} kept ops are in it); raise k or use act_all"
        )
    return CellGenotype(ops=tuple(ops), concat=tuple(active))


@DERIVE_RULES.register("topk")
def topk_rule(
    strengths: Strengths,
    *,
    primitives: Sequence[str],
    nodes: int,
    k: int,
    act_all: bool = False,
) -> Genotype:
    """Top-k survival (§4.2.3): keep the k strongest non-``none`` ops of both cells together.

    The cells compete for the budget, so normal and reduction cells may get different counts;
    an edge may keep several ops. No post-processing: nodes without a kept input are inactive
    and leave the concat. Ties rank ActAll leaders first, then the normal cell before the
    reduction cell, then the lower edge index, then the earlier primitive, so equal strengths
    always give the same cell, and with ``act_all`` any ``k >= 2 * nodes`` keeps every node of
    both cells active.
    """
    check_k(k, primitives=primitives, nodes=nodes)
    ranked: list[tuple[float, bool, int, int, int]] = []
    for c, cell in enumerate(CELLS):
        rows, leaders = _node_scores(strengths[cell], cell, primitives, nodes, bool(act_all))
        for e, row in enumerate(rows):
            for op, p in enumerate(primitives):
                if p != "none":
                    ranked.append((-row[op], (e, op) not in leaders, c, e, op))
    ranked.sort()
    kept: dict[int, list[tuple[int, int]]] = {c: [] for c in range(len(CELLS))}
    for _, _, c, e, op in ranked[:k]:
        kept[c].append((e, op))
    return Genotype(
        *(_ext_cell(kept[c], cell, k, primitives, nodes) for c, cell in enumerate(CELLS))
    )


# ------------------------------------------------------------------------- threshold (FairDARTS)


@DERIVE_RULES.register("threshold")
def threshold_rule(
    strengths: Strengths,
    *,
    primitives: Sequence[str],
    nodes: int,
    threshold: float = 0.85,
) -> Genotype:
    """FairDARTS: per node the two edges with the strongest op, each kept only if ≥ threshold.

    Strengths are independent sigmoids, so an edge's op may be too weak to keep: a node can
    end with one input or none (then it leaves the concat). A cell with no live node is an
    error, as for top-k.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise NasforgeError(f"threshold={threshold} is out of range; allowed 0..1")
    cells = []
    for cell in CELLS:
        full = _argmax_cell(strengths[cell], primitives, nodes)
        rows = strengths[cell].detach().to("cpu", torch.float64).tolist()
        edges = cell_edges(nodes)
        index = {edge: e for e, edge in enumerate(edges)}
        kept = [(index[(i, j)], primitives.index(op)) for op, i, j in full.ops
                if rows[index[(i, j)]][primitives.index(op)] >= threshold]
        try:
            cells.append(_ext_cell(kept, cell, len(kept), primitives, nodes))
        except NasforgeError:
            raise NasforgeError(
                f"threshold {threshold} leaves the {cell} cell without an active intermediate "
                f"node ({len(kept)} ops reach it); lower the threshold") from None
    return Genotype(*cells)
