"""The three NAS-Bench-1shot1 search spaces: NAS-Bench-101 cells with choice blocks.

A cell has one input (vertex 0, the previous cell), ``blocks`` choice blocks (vertices
1..B) and an output. Each block applies one of the three NAS-Bench-101 ops to the sum of a
fixed number of parents chosen among the earlier vertices; the output concatenates a fixed
number of parents (the cell input, when chosen, is added after a 1×1 projection). The spaces
differ in the number of blocks and of parents per vertex (docs/zoo.md §NAS-Bench-1shot1, Zela et al.
2020, Table 1):

=====  ======  =============================================  ======================
space  blocks  parents of vertices 1..B, output               notes
=====  ======  =============================================  ======================
SS1    4       1, 2, 2, 2 | 2                                 vertex 2 reads {0, 1}
SS2    4       1, 1, 2, 2 | 3
SS3    5       1, 1, 1, 2, 2 | 2
=====  ======  =============================================  ======================

SS1 and SS2 pad their six vertices to NAS-Bench-101's seven with an unconnected
``conv1x1-bn-relu`` vertex; pruning removes it again before a table lookup.

An architecture is written on one line, e.g.
``1shot1-ss1 ops=conv3x3-bn-relu,maxpool3x3,conv1x1-bn-relu,conv3x3-bn-relu
parents=0;0,1;0,2;1,3 output=3,4`` (parents of vertices 1..B separated by ``;``).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from nasforge.errors import NasforgeError
from nasforge.registry import Registry

NB101_OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
"""The ops of a NAS-Bench-101 vertex, in the order of the ``ops`` weights' columns."""
DUMMY_OP = "conv1x1-bn-relu"


@dataclass(frozen=True)
class OneShotArch:
    """One discrete cell: an op and the parents of every block, and the output's parents."""

    ops: tuple[str, ...]
    parents: tuple[tuple[int, ...], ...]
    output: tuple[int, ...]


@dataclass(frozen=True)
class OneShotSpace:
    """A NAS-Bench-1shot1 space: blocks, parents per vertex, and its best tabulated error."""

    name: str
    blocks: int
    parents: tuple[int, ...]
    """How many parents vertex 1..B reads."""
    output_parents: int
    fixed: dict[int, tuple[int, ...]]
    """Vertices whose parents are not searched (SS1: vertex 2 reads 0 and 1)."""
    test_min_error: float
    """The lowest mean NAS-Bench-101 test error (108 epochs) in the space, for regret."""
    description: str = ""

    @property
    def pad_to_seven(self) -> bool:
        return self.blocks + 2 < 7

    def candidates(self, vertex: int) -> int:
        """Vertex v (1..B) reads from vertices 0..v−1; the output from 0..B."""
        return vertex if vertex <= self.blocks else self.blocks + 1

    def searched(self, vertex: int) -> bool:
        """True when vertex v's parents are a choice (it has more candidates than parents)."""
        return vertex not in self.fixed and self.candidates(vertex) > self.parents[vertex - 1]

    def choice_vertices(self) -> list[int]:
        """The blocks' vertices that carry input architecture parameters α_in."""
        return [v for v in range(1, self.blocks + 1) if self.searched(v)]

    def fixed_parents(self, vertex: int) -> tuple[int, ...]:
        if vertex in self.fixed:
            return self.fixed[vertex]
        return tuple(range(self.candidates(vertex)))

    # ------------------------------------------------------------------ enumeration

    def topologies(self) -> Iterator[tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]]:
        """Every (parents of vertices 1..B, output parents), ops left out."""
        per_vertex = [
            [self.fixed_parents(v)] if not self.searched(v)
            else list(itertools.combinations(range(v), self.parents[v - 1]))
            for v in range(1, self.blocks + 1)
        ]
        outputs = list(itertools.combinations(range(self.blocks + 1), self.output_parents))
        for parents in itertools.product(*per_vertex):
            for out in outputs:
                yield parents, out

    def architectures(self) -> Iterator[OneShotArch]:
        """Every architecture of the space (topologies × ops)."""
        for parents, out in self.topologies():
            for ops in itertools.product(NB101_OPS, repeat=self.blocks):
                yield OneShotArch(ops, parents, out)

    def size(self) -> int:
        per_vertex = [1 if not self.searched(v) else math.comb(v, self.parents[v - 1])
                      for v in range(1, self.blocks + 1)]
        return (math.prod(per_vertex) * math.comb(self.blocks + 1, self.output_parents)
                * len(NB101_OPS) ** self.blocks)

    # ------------------------------------------------------------------ checks and specs

    def validate(self, arch: OneShotArch) -> OneShotArch:
        B = self.blocks
        if len(arch.ops) != B or len(arch.parents) != B:
            raise NasforgeError(f"{self.name} has {B} blocks; got {len(arch.ops)} ops and "
                                f"{len(arch.parents)} parent lists")
        for v, (op, parents) in enumerate(zip(arch.ops, arch.parents, strict=True), 1):
            if op not in NB101_OPS:
                raise NasforgeError(f"unknown op '{op}' at vertex {v}; choose from: "
                                    f"{', '.join(NB101_OPS)}")
            want = self.fixed.get(v)
            if want is not None and tuple(sorted(parents)) != want:
                raise NasforgeError(f"{self.name}: vertex {v} reads {list(want)}; got "
                                    f"{list(parents)}")
            self._check_parents(f"vertex {v}", parents, v, self.parents[v - 1])
        self._check_parents("the output", arch.output, B + 1, self.output_parents)
        return OneShotArch(tuple(arch.ops), tuple(tuple(sorted(p)) for p in arch.parents),
                           tuple(sorted(arch.output)))

    def _check_parents(self, what: str, parents: tuple[int, ...], candidates: int,
                       count: int) -> None:
        if len(set(parents)) != len(parents) or len(parents) != count:
            raise NasforgeError(f"{self.name}: {what} needs {count} distinct parents; got "
                                f"{list(parents)}")
        if any(not 0 <= p < candidates for p in parents):
            raise NasforgeError(f"{self.name}: {what} reads vertices 0..{candidates - 1}; "
                                f"got {list(parents)}")

    def to_spec(self, arch: OneShotArch) -> tuple[list[list[int]], list[str]]:
        """NAS-Bench-101's (adjacency matrix, op labels) of ``arch``, padded to 7 vertices
        for SS1/SS2 with the unconnected ``conv1x1-bn-relu`` vertex."""
        arch = self.validate(arch)
        ops = ["input", *arch.ops]
        if self.pad_to_seven:
            ops.append(DUMMY_OP)
        ops.append("output")
        n = len(ops)
        matrix = [[0] * n for _ in range(n)]
        for v, parents in enumerate(arch.parents, 1):
            for p in parents:
                matrix[p][v] = 1
        for p in arch.output:
            matrix[p][n - 1] = 1
        return matrix, ops

    # ------------------------------------------------------------------ text

    def format(self, arch: OneShotArch) -> str:
        arch = self.validate(arch)
        parents = ";".join(",".join(map(str, p)) for p in arch.parents)
        return (f"{self.name} ops={','.join(arch.ops)} parents={parents} "
                f"output={','.join(map(str, arch.output))}")

    def discretize(self, strengths: dict[str, torch.Tensor]) -> OneShotArch:
        """The NAS-Bench-1shot1 discretisation of one-shot strengths: per block the
        strongest op; per searched vertex and for the output the top-k parents."""
        ops_w = torch.as_tensor(strengths["ops"], dtype=torch.float64)
        in_w = torch.as_tensor(strengths["inputs"], dtype=torch.float64)
        out_w = torch.as_tensor(strengths["output"], dtype=torch.float64).reshape(-1)
        B = self.blocks
        if ops_w.shape != (B, len(NB101_OPS)) or in_w.shape != (B, B) or len(out_w) != B + 1:
            raise NasforgeError(
                f"{self.name} strengths need ops [{B}, 3], inputs [{B}, {B}] and output "
                f"[{B + 1}]; got {list(ops_w.shape)}, {list(in_w.shape)}, {list(out_w.shape)}")
        ops = tuple(NB101_OPS[int(k)] for k in ops_w.argmax(dim=1))
        parents = []
        for v in range(1, B + 1):
            if self.searched(v):
                parents.append(top_k(in_w[v - 1, :v], self.parents[v - 1]))
            else:
                parents.append(self.fixed_parents(v))
        return OneShotArch(ops, tuple(parents), top_k(out_w, self.output_parents))


def top_k(weights: torch.Tensor, k: int) -> tuple[int, ...]:
    """Indices of the k largest weights (ties: the lower index), ascending."""
    order = sorted(range(len(weights)), key=lambda i: (-float(weights[i]), i))
    return tuple(sorted(order[:k]))


ONESHOT_SPACES: Registry[OneShotSpace] = Registry("NAS-Bench-1shot1 space")


def _register(space: OneShotSpace) -> None:
    ONESHOT_SPACES.register(space.name)(space)


_register(OneShotSpace("1shot1-ss1", 4, (1, 2, 2, 2), 2, {2: (0, 1)}, 0.05449,
                       "NAS-Bench-1shot1 space 1: 4 blocks, vertex 2 reads the input and "
                       "block 1"))
_register(OneShotSpace("1shot1-ss2", 4, (1, 1, 2, 2), 3, {}, 0.05759,
                       "NAS-Bench-1shot1 space 2: 4 blocks, 3 output parents"))
_register(OneShotSpace("1shot1-ss3", 5, (1, 1, 1, 2, 2), 2, {}, 0.05339,
                       "NAS-Bench-1shot1 space 3: 5 blocks"))

_ARCH_TEXT = re.compile(r"^\s*(\S+)\s+ops=(\S+)\s+parents=(\S+)\s+output=(\S+)\s*$")


def parse_arch(text: str) -> tuple[OneShotSpace, OneShotArch]:
    """Read ``SPACE ops=A,B,.. parents=0;0,1;.. output=3,4`` back into (space, arch)."""
    match = _ARCH_TEXT.match(text)
    if not match:
        raise NasforgeError(
            f"malformed NAS-Bench-1shot1 architecture {text.strip()!r}; expected "
            "'SPACE ops=OP,OP,.. parents=P;P,P;.. output=P,P'")
    name, ops, parents, output = match.groups()
    space = ONESHOT_SPACES.get(name)
    try:
        parent_lists = tuple(tuple(int(p) for p in group.split(",") if p)
                             for group in parents.split(";"))
        out = tuple(int(p) for p in output.split(","))
    except ValueError as err:
        raise NasforgeError(f"malformed parents in {text.strip()!r}: {err}") from None
    return space, space.validate(OneShotArch(tuple(ops.split(",")), parent_lists, out))


def read_arch(source: str) -> tuple[OneShotSpace, OneShotArch]:
    """An architecture given as text, a file holding it, or a search run directory."""
    if " ops=" in source:
        return parse_arch(source)
    path = Path(source)
    if path.is_dir():
        path = path / "genotype.txt"
        if not path.is_file():
            raise NasforgeError(f"no genotype.txt in {source}; is it a search run directory?")
    if path.is_file():
        try:
            source = path.read_text().strip()
        except UnicodeDecodeError:
            raise NasforgeError(f"{path} is not a text file holding a NAS-Bench-1shot1 "
                                "architecture") from None
    return parse_arch(source)
