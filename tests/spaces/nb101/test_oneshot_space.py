"""The NAS-Bench-1shot1 spaces: sizes from the paper, NAS-Bench-101 specs, text, discretisation."""

import random

import pytest
import torch

from nasforge.benchmarks.nasbench101 import hash_of, prune
from nasforge.errors import NasforgeError
from nasforge.spaces.nb101.space import (
    NB101_OPS,
    ONESHOT_SPACES,
    OneShotArch,
    parse_arch,
    top_k,
)

SS1, SS2, SS3 = (ONESHOT_SPACES.get(f"1shot1-ss{i}") for i in (1, 2, 3))


def blocks_with_out_edges(space, parents, output) -> int:
    read = set(output).union(*parents)
    return sum(1 for v in range(1, space.blocks + 1) if v in read)


@pytest.mark.parametrize("space, topologies", [(SS1, 180), (SS2, 360), (SS3, 5400)])
def test_topology_counts(space, topologies):
    assert sum(1 for _ in space.topologies()) == topologies


def test_space_sizes_match_the_paper():
    """NAS-Bench-1shot1 Table 1 ("with loose ends"): 6,240 / 29,160 / 363,648."""
    assert sum(3 ** blocks_with_out_edges(SS1, p, o) for p, o in SS1.topologies()) == 6240
    assert SS2.size() == 29160 == sum(1 for _ in SS2.architectures())
    assert sum(3 ** blocks_with_out_edges(SS3, p, o) for p, o in SS3.topologies()) == 363648


@pytest.mark.parametrize("space, unique", [(SS1, 2685), (SS2, 7773)])
def test_unique_nasbench101_cells(space, unique):
    """Distinct NAS-Bench-101 hashes among all architectures (docs/zoo.md §NAS-Bench-1shot1)."""
    assert len({hash_of(*space.to_spec(a)) for a in space.architectures()}) == unique


def random_arch(space, rng: random.Random) -> OneShotArch:
    ops = tuple(rng.choice(NB101_OPS) for _ in range(space.blocks))
    parents = tuple(space.fixed_parents(v) if not space.searched(v)
                    else tuple(sorted(rng.sample(range(v), space.parents[v - 1])))
                    for v in range(1, space.blocks + 1))
    return OneShotArch(ops, parents,
                       tuple(sorted(rng.sample(range(space.blocks + 1), space.output_parents))))


@pytest.mark.parametrize("space", [SS1, SS2, SS3])
def test_spec_is_a_seven_vertex_nasbench101_cell(space):
    rng = random.Random(0)
    for _ in range(50):
        arch = random_arch(space, rng)
        matrix, ops = space.to_spec(arch)
        assert len(matrix) == 7 and ops[0] == "input" and ops[-1] == "output"
        assert all(matrix[i][j] == 0 for i in range(7) for j in range(i + 1))  # a DAG in order
        assert sum(map(sum, matrix)) <= 9
        for v in range(1, space.blocks + 1):
            assert [i for i in range(7) if matrix[i][v]] == list(arch.parents[v - 1])
        assert [i for i in range(7) if matrix[i][6]] == list(arch.output)
        if space.blocks == 4:  # SS1/SS2: the padding vertex is unconnected and pruned away
            assert ops[5] == "conv1x1-bn-relu"
            assert not any(matrix[5]) and not any(row[5] for row in matrix)
            assert len(prune(matrix, ops)[1]) <= 6


def test_text_round_trip():
    rng = random.Random(1)
    for space in (SS1, SS2, SS3):
        for _ in range(20):
            arch = random_arch(space, rng)
            assert parse_arch(space.format(arch)) == (space, arch)


@pytest.mark.parametrize("text, message", [
    ("1shot1-ss1 ops=conv3x3-bn-relu", "malformed"),
    ("1shot1-ss9 ops=a parents=0 output=0", "unknown NAS-Bench-1shot1 space"),
    ("1shot1-ss1 ops=conv3x3-bn-relu,conv3x3-bn-relu,conv3x3-bn-relu,sep3 "
     "parents=0;0,1;0,1;0,1 output=3,4", "unknown op 'sep3'"),
    ("1shot1-ss1 ops=maxpool3x3,maxpool3x3,maxpool3x3,maxpool3x3 "
     "parents=0;0;0,1;0,1 output=3,4", "vertex 2 reads [0, 1]"),
    ("1shot1-ss2 ops=maxpool3x3,maxpool3x3,maxpool3x3,maxpool3x3 "
     "parents=0;0;0,1;0,1 output=3,4", "the output needs 3 distinct parents"),
    ("1shot1-ss3 ops=maxpool3x3,maxpool3x3,maxpool3x3,maxpool3x3,maxpool3x3 "
     "parents=0;1;2;0,4;0,1 output=3,4", "vertex 4 reads vertices 0..3"),
    ("1shot1-ss3 ops=maxpool3x3,maxpool3x3,maxpool3x3,maxpool3x3 "
     "parents=0;1;2;0,1 output=3,4", "has 5 blocks"),
])
def test_bad_architectures_are_named(text, message):
    with pytest.raises(NasforgeError, match=message.replace("[", r"\[").replace(".", r"\.")):
        parse_arch(text)


def test_discretize_recovers_the_arch_behind_its_weights():
    """Strengths peaked on an architecture's choices (plus small noise) discretise to it."""
    rng = random.Random(2)
    gen = torch.Generator().manual_seed(0)
    for space in (SS1, SS2, SS3):
        for _ in range(10):
            arch = random_arch(space, rng)
            B = space.blocks
            ops = 0.1 * torch.rand(B, 3, generator=gen)
            inputs = 0.1 * torch.rand(B, B, generator=gen)
            output = 0.1 * torch.rand(1, B + 1, generator=gen)
            for b, (op, parents) in enumerate(zip(arch.ops, arch.parents, strict=True)):
                ops[b, NB101_OPS.index(op)] += 1
                inputs[b, list(parents)] += 1
                inputs[b, b + 1:] = 5.0  # padding beyond a vertex's candidates is ignored
            output[0, list(arch.output)] += 1
            got = space.discretize({"ops": ops, "inputs": inputs, "output": output})
            assert got == arch


def test_discretize_checks_shapes():
    with pytest.raises(NasforgeError, match="ops \\[4, 3\\]"):
        SS1.discretize({"ops": torch.zeros(5, 3), "inputs": torch.zeros(4, 4),
                        "output": torch.zeros(1, 5)})


def test_top_k_ties_prefer_the_lower_index():
    assert top_k(torch.tensor([0.2, 0.5, 0.5, 0.1]), 2) == (1, 2)
    assert top_k(torch.tensor([0.3, 0.3, 0.3]), 1) == (0,)
