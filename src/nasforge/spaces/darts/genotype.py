"""Genotypes of the DARTS cell space, DARTS cells and ExtCells alike.

A cell is a list of ``(op, input, node)`` triples: ``op`` is applied to node ``input`` and
added into intermediate node ``node``. Nodes 0 and 1 are the cell inputs; intermediate nodes
are numbered from 2. A DARTS cell has exactly two triples per node; an ExtCell (chapter 4)
may have any number, including several ops on the same edge and nodes with no input, which
are inactive and left out of ``concat``.
"""

from __future__ import annotations

import ast
import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.known_genotypes import KNOWN_GENOTYPES

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)


@dataclass(frozen=True)
class CellGenotype:
    """One cell: ``ops`` as (op, input, node) triples and the nodes concatenated at output."""

    ops: tuple[tuple[str, int, int], ...]
    concat: tuple[int, ...]

    def active_nodes(self) -> tuple[int, ...]:
        """Intermediate nodes that receive at least one op, in increasing order."""
        return tuple(sorted({node for _, _, node in self.ops}))


@dataclass(frozen=True)
class Genotype:
    """A normal cell and a reduction cell."""

    normal: CellGenotype
    reduce: CellGenotype


MAX_NODES = 16
"""Most intermediate nodes a cell may have (DARTS uses 4; ``search.nodes`` is bounded alike)."""
MAX_CELL_OPS = 7 * (MAX_NODES * (MAX_NODES + 3) // 2)
"""Most ops in one cell: every non-``none`` op on every edge of a :data:`MAX_NODES` cell
(7 × 152 = 1064; with 4 nodes an ExtCell holds at most 7 × 14 = 98)."""
MAX_GENOTYPE_CHARS = 200_000
"""Longest genotype text read (a cell of :data:`MAX_CELL_OPS` triples needs about 60,000)."""


def cell_edges(nodes: int = 4) -> list[tuple[int, int]]:
    """Edges of a search cell as (input, node) pairs in DARTS order.

    Node ``j`` (from 2) receives one edge from every earlier node; with 4 intermediate nodes
    this gives the 14 edges node2←{0,1}, node3←{0,1,2}, node4←{0..3}, node5←{0..4}.
    """
    return [(i, j) for j in range(2, 2 + nodes) for i in range(j)]


# --------------------------------------------------------------------------- text and JSON

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_CELLS = ("normal", "reduce")


class _Malformed(Exception):
    """Internal: why a genotype could not be read; wrapped into a one-line NasforgeError."""


def _excerpt(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _cell_from_raw(name: str, items: object, concat: object) -> CellGenotype:
    """Build a cell from (op, input) pairs or (op, input, node) triples and a concat list.

    Pairs follow DARTS: pair ``i`` goes into node ``2 + i // 2``.
    """
    if not isinstance(items, (list, tuple)):
        raise _Malformed(f"{name} must be a list of (op, input) pairs or (op, input, node) triples")
    if len(items) > MAX_CELL_OPS:
        raise NasforgeError(f"{name} cell has {len(items)} ops; allowed 1..{MAX_CELL_OPS} per "
                            f"cell (at most {MAX_NODES} intermediate nodes, nodes "
                            f"2..{MAX_NODES + 1})")
    sizes = set()
    for i, item in enumerate(items):
        ok = isinstance(item, (list, tuple)) and len(item) in (2, 3)
        if ok:
            ok = isinstance(item[0], str) and all(_is_int(v) for v in item[1:])
        if not ok:
            raise _Malformed(
                f"{name} entry {i} is {item!r}; expected (op, input) or (op, input, node)"
            )
        sizes.add(len(item))
    if len(sizes) > 1:
        raise _Malformed(f"{name} mixes (op, input) pairs and (op, input, node) triples")
    if sizes == {2}:
        if len(items) % 2:
            raise _Malformed(f"{name} has {len(items)} (op, input) pairs; pairs come two per node")
        ops = tuple((op, inp, 2 + i // 2) for i, (op, inp) in enumerate(items))
    else:
        ops = tuple((op, inp, node) for op, inp, node in items)
    if not isinstance(concat, (list, tuple, range)) or not all(_is_int(v) for v in concat):
        raise _Malformed(f"{name}_concat must be a list of node numbers or range(a, b)")
    return CellGenotype(ops=ops, concat=tuple(concat))


def _genotype_from_fields(fields: dict[str, object]) -> Genotype:
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
        raise _Malformed(f"missing {', '.join(missing)}")
    extra = [f for f in fields if f not in _FIELDS]
    if extra:
        raise _Malformed(f"unexpected field {extra[0]!r}; expected {', '.join(_FIELDS)}")
    return Genotype(*(_cell_from_raw(c, fields[c], fields[f"{c}_concat"]) for c in _CELLS))


def _literal(node: ast.expr, field: str) -> object:
    """A field's value: a Python literal, or ``range(...)`` with literal integer arguments."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "range"
        and not node.keywords
    ):
        args = [_literal(a, field) for a in node.args]
        if not 1 <= len(args) <= 3 or not all(_is_int(a) for a in args):
            raise _Malformed(f"{field} has a bad range(...)")
        try:
            values = range(*args)  # type: ignore[arg-type]
        except ValueError as err:  # a step of 0
            raise _Malformed(f"{field} has a bad range(...)") from err
        if len(values) > MAX_NODES:
            raise _Malformed(f"{field} range(...) has {len(values)} nodes; a cell has at most "
                             f"{MAX_NODES} intermediate nodes (2..{MAX_NODES + 1})")
        return values
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as err:
        raise _Malformed(f"{field} is not a literal value") from err


def _fields_from_text(text: str) -> dict[str, object]:
    """Fields of ``Genotype(...)`` (optionally ``NAME = Genotype(...)``), read without eval."""
    try:
        tree = ast.parse(text, mode="exec")
    except SyntaxError as err:
        raise _Malformed(f"invalid syntax ({err.msg})") from err
    except (MemoryError, RecursionError) as err:
        raise _Malformed("nested too deeply") from err
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.Expr, ast.Assign)):
        raise _Malformed("expected a single Genotype(...) expression")
    call = tree.body[0].value
    func = getattr(call, "func", None)
    callee = getattr(func, "id", None) or getattr(func, "attr", None)
    if not isinstance(call, ast.Call) or callee != "Genotype":
        raise _Malformed("expected Genotype(...)")
    if len(call.args) > len(_FIELDS):
        raise _Malformed(f"too many positional values; expected {', '.join(_FIELDS)}")
    fields = {f: _literal(a, f) for f, a in zip(_FIELDS, call.args, strict=False)}
    for kw in call.keywords:
        if kw.arg is None or kw.arg in fields:
            raise _Malformed(f"field {kw.arg or '**'!r} given twice or unpacked")
        fields[kw.arg] = _literal(kw.value, kw.arg)
    return fields


def parse_genotype(text: str, *, primitives: Sequence[str] = PRIMITIVES) -> Genotype:
    """Read a genotype from DARTS text (pairs or triples) or JSON text, then validate it.

    Published strings are namedtuple reprs, so they are read with ``ast`` literals only.
    """
    stripped = text.strip()
    if len(stripped) > MAX_GENOTYPE_CHARS:
        raise NasforgeError(f"genotype text is {len(stripped):,} characters; allowed up to "
                            f"{MAX_GENOTYPE_CHARS:,} (at most {MAX_CELL_OPS} ops per cell, "
                            f"{MAX_NODES} intermediate nodes) in '{_excerpt(text)}'")
    try:
        if stripped.startswith("{"):
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError as err:
                raise _Malformed(f"invalid JSON ({err.msg} at line {err.lineno})") from err
            except RecursionError as err:
                raise _Malformed("nested too deeply") from err
            if not isinstance(data, dict):
                raise _Malformed("JSON must be an object")
            genotype = _genotype_from_fields(data)
        else:
            genotype = _genotype_from_fields(_fields_from_text(stripped))
    except _Malformed as err:
        raise NasforgeError(f"cannot parse genotype: {err} in '{_excerpt(text)}'") from None
    validate_genotype(genotype, primitives=primitives)
    return genotype


def genotype_to_json(g: Genotype) -> dict[str, list]:
    """JSON-ready dict; ops are always written as [op, input, node] triples."""
    out: dict[str, list] = {}
    for name in _CELLS:
        cell: CellGenotype = getattr(g, name)
        out[name] = [list(op) for op in cell.ops]
        out[f"{name}_concat"] = list(cell.concat)
    return out


def genotype_from_json(d: dict, *, primitives: Sequence[str] = PRIMITIVES) -> Genotype:
    """Inverse of :func:`genotype_to_json` (pairs are accepted too); the result is validated."""
    try:
        if not isinstance(d, dict):
            raise _Malformed("JSON must be an object")
        genotype = _genotype_from_fields(d)
    except _Malformed as err:
        raise NasforgeError(f"cannot parse genotype JSON: {err}") from None
    validate_genotype(genotype, primitives=primitives)
    return genotype


def load_genotype(source: str | os.PathLike, *, primitives: Sequence[str] = PRIMITIVES) -> Genotype:
    """Load from a file (text or .json) if one exists, else a known name, else genotype text."""
    path = Path(source)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # e.g. genotype text too long to be a file name
        is_file = False
    if is_file:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise NasforgeError(f"cannot read genotype file '{path}': {err}") from None
        return parse_genotype(text, primitives=primitives)
    text = os.fspath(source)
    if text in KNOWN_GENOTYPES:
        return parse_genotype(KNOWN_GENOTYPES[text], primitives=primitives)
    if not any(ch in text for ch in "({"):
        raise NasforgeError(
            f"genotype '{_excerpt(text)}' is not a file, genotype text or a known name "
            f"({', '.join(KNOWN_GENOTYPES)})"
        )
    return parse_genotype(text, primitives=primitives)


def _pairs_fit(cell: CellGenotype) -> bool:
    """Whether the DARTS pair form writes this cell exactly (two ops per node, in node order)."""
    n = len(cell.ops) // 2
    return (
        len(cell.ops) > 0
        and is_darts_cell(cell, nodes=n)
        and all(node == 2 + i // 2 for i, (_, _, node) in enumerate(cell.ops))
    )


def format_genotype(g: Genotype) -> str:
    """One-line text that :func:`parse_genotype` reads back to an equal genotype.

    Uses the published pair form when both cells are DARTS cells, the triple form otherwise.
    """
    pairs = _pairs_fit(g.normal) and _pairs_fit(g.reduce)
    parts = []
    for name in _CELLS:
        cell: CellGenotype = getattr(g, name)
        ops = [(op, inp) if pairs else (op, inp, node) for op, inp, node in cell.ops]
        parts.append(f"{name}={ops!r}, {name}_concat={list(cell.concat)!r}")
    return f"Genotype({', '.join(parts)})"


def is_darts_cell(cell: CellGenotype, nodes: int = 4) -> bool:
    """Exactly two ops into each of nodes 2..nodes+1 and every node concatenated."""
    counts = Counter(node for _, _, node in cell.ops)
    expected = set(range(2, 2 + nodes))
    return (
        set(counts) == expected
        and all(c == 2 for c in counts.values())
        and len(cell.concat) == nodes
        and set(cell.concat) == expected
    )


# --------------------------------------------------------------------------- validation


def _validate_cell(
    name: str, cell: CellGenotype, nodes: int | None, primitives: Sequence[str]
) -> None:
    if not cell.ops:
        raise NasforgeError(f"{name} cell has no active node")
    allowed = [p for p in primitives if p != "none"]
    active = set(cell.active_nodes())
    last = 1 + (MAX_NODES if nodes is None else nodes)
    for op, inp, node in cell.ops:
        if op == "none":
            raise NasforgeError(f"'none' cannot be a chosen op ({name} cell, node {node})")
        if op not in allowed:
            raise NasforgeError(f"unknown op {op!r} in {name} cell; allowed: {', '.join(allowed)}")
        if node < 2:
            raise NasforgeError(
                f"{name} cell: op {op!r} goes into node {node}; ops go into nodes 2 and up"
            )
        if node > last:
            raise NasforgeError(f"{name} cell: node {node} is outside 2..{last}"
                                + (f" (at most {MAX_NODES} intermediate nodes)"
                                   if nodes is None else ""))
        if inp < 0 or inp >= node:
            raise NasforgeError(
                f"{name} cell: op {op!r} into node {node} reads node {inp}, "
                "which is not an earlier node"
            )
    live = {0, 1}
    for target in sorted(active):
        if any(n == target and i in live for _, i, n in cell.ops):
            live.add(target)
    if len(live) == 2:
        raise NasforgeError(f"{name} cell: no intermediate node is reachable from the cell "
                            "inputs 0 and 1")
    if not cell.concat:
        raise NasforgeError(f"{name}_concat is empty; list the active nodes")
    for node, count in Counter(cell.concat).items():
        if count > 1:
            raise NasforgeError(f"{name}_concat lists node {node} {count} times")
        if not 2 <= node <= last:
            raise NasforgeError(f"{name}_concat: node {node} is outside 2..{last}")
        if node not in active:
            raise NasforgeError(f"{name}_concat lists node {node}, which has no input")


def validate_genotype(
    g: Genotype, *, nodes: int | None = None, primitives: Sequence[str] = PRIMITIVES
) -> None:
    """Raise :class:`NasforgeError` naming the first bad op, input or node.

    Inputs must be 0, 1 or an earlier node (an op reading a node that receives no op carries
    no signal and is not built by the evaluation network, as in a top-k ExtCell); some node
    must be reachable from the cell inputs; concatenated nodes must be active. Intermediate
    nodes must lie in ``2..nodes+1`` (``nodes`` defaults to :data:`MAX_NODES`).
    """
    for name in _CELLS:
        _validate_cell(name, getattr(g, name), nodes, primitives)
