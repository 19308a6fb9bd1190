"""Derivation rules, argmax in particular, on strengths worked out by hand."""

import pytest
import torch

from nasforge.derive import DERIVE_RULES, derive
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import (
    PRIMITIVES,
    CellGenotype,
    Genotype,
    cell_edges,
    load_genotype,
)
from nasforge.spaces.darts.known_genotypes import KNOWN_GENOTYPES

K = {op: k for k, op in enumerate(PRIMITIVES)}
EDGE = {edge: e for e, edge in enumerate(cell_edges(4))}


def hand_made_normal() -> torch.Tensor:
    """Uniform 0.1 background with a few strong ops; expected result in the test."""
    w = torch.full((14, 8), 0.1)
    w[EDGE[(0, 2)], K["none"]] = 0.9  # 'none' is largest here and must be skipped
    w[EDGE[(0, 2)], K["sep_conv_3x3"]] = 0.5
    w[EDGE[(1, 2)], K["skip_connect"]] = 0.6
    w[EDGE[(0, 3)], K["max_pool_3x3"]] = 0.3  # edges (0,3) and (1,3) tie at 0.3:
    w[EDGE[(1, 3)], K["dil_conv_3x3"]] = 0.3  # the lower edge index comes first
    w[EDGE[(2, 3)], K["avg_pool_3x3"]] = 0.2
    w[EDGE[(3, 4)], K["sep_conv_5x5"]] = 0.4
    w[EDGE[(2, 4)], K["none"]] = 0.95  # best non-none op is a 0.1 tie: too weak to keep
    w[EDGE[(0, 4)], K["skip_connect"]] = 0.15
    w[EDGE[(4, 5)], K["sep_conv_5x5"]] = 0.7  # op tie on one edge: earlier primitive wins
    w[EDGE[(4, 5)], K["dil_conv_5x5"]] = 0.7
    w[EDGE[(2, 5)], K["dil_conv_5x5"]] = 0.45
    return w


EXPECTED_NORMAL = CellGenotype(
    ops=(
        ("skip_connect", 1, 2),
        ("sep_conv_3x3", 0, 2),
        ("max_pool_3x3", 0, 3),
        ("dil_conv_3x3", 1, 3),
        ("sep_conv_5x5", 3, 4),
        ("skip_connect", 0, 4),
        ("sep_conv_5x5", 4, 5),
        ("dil_conv_5x5", 2, 5),
    ),
    concat=(2, 3, 4, 5),
)


def test_argmax_hand_made():
    uniform = torch.full((14, 8), 1 / 8)  # all ties: first non-none op, first two edges
    g = derive("argmax", {"normal": hand_made_normal(), "reduce": uniform})
    assert g.normal == EXPECTED_NORMAL
    assert g.reduce.ops == tuple(
        ("max_pool_3x3", inp, node) for node in range(2, 6) for inp in (0, 1)
    )
    assert g.reduce.concat == (2, 3, 4, 5)


def strengths_for(g: Genotype) -> dict[str, torch.Tensor]:
    """Strengths whose argmax is ``g``: chosen ops strong, in their listed order."""
    out = {}
    for name in ("normal", "reduce"):
        w = torch.full((14, 8), 0.01)
        w[:, K["none"]] = 0.5  # 'none' dominates every edge and must be ignored
        for i, (op, inp, node) in enumerate(getattr(g, name).ops):
            w[EDGE[(inp, node)], K[op]] = 0.4 - 0.01 * i
        out[name] = w
    return out


@pytest.mark.parametrize("name", sorted(KNOWN_GENOTYPES))
def test_argmax_reproduces_published_order(name):
    g = load_genotype(name)
    assert derive("argmax", strengths_for(g)) == g


def test_argmax_without_none_considers_every_op():
    prims = ("skip_connect", "sep_conv_3x3")
    w = torch.zeros(5, 2)  # nodes=2: edges (0,2) (1,2) (0,3) (1,3) (2,3)
    w[0, 0] = 0.9
    w[1, 1] = 0.8
    w[2, 1] = 0.2
    w[4, 0] = 0.7
    w[3, 0] = 0.1
    g = derive("argmax", {"normal": w, "reduce": w.clone()}, primitives=prims, nodes=2)
    assert g.normal.ops == (
        ("skip_connect", 0, 2),
        ("sep_conv_3x3", 1, 2),
        ("skip_connect", 2, 3),
        ("sep_conv_3x3", 0, 3),
    )
    assert g.normal.concat == (2, 3)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((13, 8), "shape [13, 8]; expected [14, 8]"), ((14, 7), "shape [14, 7]; expected [14, 8]")],
)
def test_wrong_shape_names_expected_and_got(shape, expected):
    strengths = {"normal": torch.rand(14, 8), "reduce": torch.rand(*shape)}
    with pytest.raises(NasforgeError, match="reduce strengths have") as err:
        derive("argmax", strengths)
    assert expected in str(err.value)


def test_shape_follows_nodes():
    strengths = {"normal": torch.rand(14, 8), "reduce": torch.rand(14, 8)}
    with pytest.raises(NasforgeError, match=r"expected \[20, 8\] \(20 edges for 5 nodes"):
        derive("argmax", strengths, nodes=5)
    g = derive("argmax", {c: torch.rand(20, 8) for c in ("normal", "reduce")}, nodes=5)
    assert len(g.normal.ops) == 10 and g.normal.concat == (2, 3, 4, 5, 6)


def test_bad_strengths_and_rule():
    with pytest.raises(NasforgeError, match="keys 'normal' and 'reduce'"):
        derive("argmax", {"normal": torch.rand(14, 8)})
    with pytest.raises(NasforgeError, match="NaN"):
        derive("argmax", {"normal": torch.full((14, 8), float("nan")), "reduce": torch.rand(14, 8)})
    with pytest.raises(
        NasforgeError, match="unknown derivation rule 'argmin'; choose from: .*argmax"
    ):
        derive("argmin", {"normal": torch.rand(14, 8), "reduce": torch.rand(14, 8)})
    with pytest.raises(NasforgeError, match="takes no options; got: k"):
        derive("argmax", {"normal": torch.rand(14, 8), "reduce": torch.rand(14, 8)}, k=3)


def test_registry_lists_argmax():
    assert "argmax" in DERIVE_RULES.names()
