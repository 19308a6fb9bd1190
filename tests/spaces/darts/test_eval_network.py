"""Evaluation networks from DARTS genotypes and ExtCells."""

import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.eval_network import (
    AuxiliaryHeadCIFAR,
    AuxiliaryHeadImageNet,
    EvalCell,
    NetworkCIFAR,
    NetworkImageNet,
)
from nasforge.spaces.darts.genotype import CellGenotype, Genotype, load_genotype

C = 4


def darts_v2() -> Genotype:
    return load_genotype("DARTS_V2")


# Two ops on edge 0→2, node 3 inactive, node 4 fed by node 2 and input 1.
EXT_NORMAL = CellGenotype(
    ops=(
        ("sep_conv_3x3", 0, 2), ("skip_connect", 0, 2), ("max_pool_3x3", 1, 2),
        ("dil_conv_3x3", 2, 4), ("avg_pool_3x3", 1, 4),
    ),
    concat=(2, 4),
)
EXT_REDUCE = CellGenotype(
    ops=(("sep_conv_5x5", 0, 2), ("sep_conv_3x3", 1, 3), ("skip_connect", 1, 3),
         ("max_pool_3x3", 0, 4)),
    concat=(2, 3, 4),
)


def test_darts_v2_cells_shapes():
    g = darts_v2()
    normal = EvalCell(g.normal, 8, 8, C, reduction=False, reduction_prev=False)
    reduce = EvalCell(g.reduce, 8, 8, C, reduction=True, reduction_prev=False)
    s = torch.randn(2, 8, 8, 8)
    assert normal.out_channels == 4 * C and normal(s, s, 0.0).shape == (2, 4 * C, 8, 8)
    assert reduce(s, s, 0.0).shape == (2, 4 * C, 4, 4)
    assert len(normal.ops) == 8


def test_after_reduction_cell_preprocess0_is_factorized():
    cell = EvalCell(darts_v2().normal, 8, 16, C, reduction=False, reduction_prev=True)
    out = cell(torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4), 0.0)
    assert out.shape == (2, 4 * C, 4, 4)


def test_network_cifar_shapes_and_aux_only_in_training():
    net = NetworkCIFAR(darts_v2(), C, num_classes=7, layers=3)
    x = torch.randn(2, 3, 16, 16)
    logits, aux = net.train()(x)
    assert logits.shape == (2, 7) and aux.shape == (2, 7)
    logits, aux = net.eval()(x)
    assert logits.shape == (2, 7) and aux is None
    no_aux = NetworkCIFAR(darts_v2(), C, layers=3, auxiliary=False).train()
    assert no_aux(x)[1] is None


def test_ext_cell_channels_follow_concat():
    cell = EvalCell(EXT_NORMAL, 8, 8, C, reduction=False, reduction_prev=False)
    assert cell.out_channels == C * len(EXT_NORMAL.concat)
    assert len(cell.ops) == 5
    s = torch.randn(2, 8, 6, 6)
    assert cell(s, s, 0.0).shape == (2, C * 2, 6, 6)


def test_network_cifar_with_ext_cells_sizes_preprocessing_to_emitted_channels():
    net = NetworkCIFAR(Genotype(EXT_NORMAL, EXT_REDUCE), C, layers=4, in_channels=1)
    reductions = [cell.reduction for cell in net.cells]
    assert reductions == [False, True, True, False]
    assert [cell.out_channels for cell in net.cells] == [2 * C, 3 * 2 * C, 3 * 4 * C, 2 * 4 * C]
    for prev, cell in zip(net.cells, net.cells[1:], strict=False):
        assert cell.preprocess1[1].in_channels == prev.out_channels
    net.drop_path_prob = 0.2
    logits, aux = net.train()(torch.randn(2, 1, 8, 8))
    assert logits.shape == (2, 10) and aux.shape == (2, 10)


def test_ops_from_an_inactive_node_are_dropped():
    cell_genotype = CellGenotype(
        ops=(("skip_connect", 0, 2), ("sep_conv_3x3", 3, 4)), concat=(2, 4)
    )
    cell = EvalCell(cell_genotype, 8, 8, C, reduction=False, reduction_prev=False)
    assert cell.concat == (2,) and cell.out_channels == C and len(cell.ops) == 1


@pytest.mark.parametrize(
    ("ops", "concat", "match"),
    [
        ((), (2, 3, 4, 5), "no active node"),
        ((("conv_9x9", 0, 2),), (2,), "unknown op"),
        ((("skip_connect", 2, 2),), (2,), "input < node"),
        ((("skip_connect", 0, 2),), (1, 2), "concat node 1"),
    ],
)
def test_bad_cells_are_user_errors(ops, concat, match):
    with pytest.raises(NasforgeError, match=match):
        EvalCell(CellGenotype(ops, concat), 8, 8, C, reduction=False, reduction_prev=False)


def test_drop_path_spares_identity_and_hits_other_ops():
    torch.manual_seed(0)
    x = torch.randn(64, 8, 4, 4)
    skip = EvalCell(CellGenotype((("skip_connect", 1, 2),), (2,)), 8, 8, C, False, False)
    skip.train()
    assert torch.equal(skip(x, x, 0.9), skip.preprocess1(x))
    conv = EvalCell(CellGenotype((("sep_conv_3x3", 1, 2),), (2,)), 8, 8, C, False, False)
    out = conv.train()(x, x, 0.5)
    zeroed = (out.flatten(1).abs().sum(dim=1) == 0).sum().item()
    assert 10 < zeroed < 54
    assert torch.count_nonzero(conv.eval()(x, x, 0.5).flatten(1).abs().sum(dim=1)) == 64


def test_network_imagenet_shapes():
    net = NetworkImageNet(darts_v2(), C, num_classes=5, layers=3)
    assert isinstance(net.auxiliary_head, AuxiliaryHeadImageNet)
    assert net.cells[0].preprocess0.__class__.__name__ == "FactorizedReduce"
    logits, aux = net.train()(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 5) and aux.shape == (2, 5)


@pytest.mark.parametrize(("head", "size"), [(AuxiliaryHeadCIFAR, 8), (AuxiliaryHeadImageNet, 7)])
def test_aux_heads_standard_sizes_use_the_darts_pooling(head, size):
    aux = head(C, 3).eval()
    seen = {}
    aux.features.register_forward_hook(lambda m, args, out: seen.update(i=args[0], o=out))
    assert aux(torch.randn(2, C, size, size)).shape == (2, 3)
    assert seen["i"].shape[-2:] == (2, 2) and seen["o"].shape[-2:] == (1, 1)
    assert aux(torch.randn(2, C, 3, 3)).shape == (2, 3)
    assert aux(torch.randn(2, C, 20, 20)).shape == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"layers": 2}, "layers"), ({"drop_path_prob": 1.0}, "drop_path_prob"), ({"C": 0}, "C")],
)
def test_bad_network_arguments_are_user_errors(kwargs, match):
    with pytest.raises(NasforgeError, match=match):
        NetworkCIFAR(darts_v2(), **{"C": C, "layers": 3, **kwargs})
    with pytest.raises(NasforgeError, match="Genotype"):
        NetworkCIFAR("DARTS_V2", C, layers=3)
