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


def test_pruning_builds_only_ops_that_reach_the_concat():
    # Node 3 has no op, so 3→4 and, in turn, 4→5 carry no signal and nodes 4, 5 leave the
    # concat; node 6 is live but feeds nothing in the concat, so avg_pool 1→6 is not built.
    cell_genotype = CellGenotype(
        ops=(
            ("sep_conv_3x3", 0, 2), ("skip_connect", 0, 2),
            ("dil_conv_3x3", 3, 4), ("sep_conv_5x5", 4, 5),
            ("avg_pool_3x3", 1, 6),
            ("max_pool_3x3", 2, 7), ("sep_conv_3x3", 5, 7),
        ),
        concat=(2, 4, 5, 7),
    )
    cell = EvalCell(cell_genotype, 8, 8, C, reduction=False, reduction_prev=False)
    assert cell.concat == (2, 7) and cell.out_channels == 2 * C
    assert cell._targets == (2, 2, 7)  # sep+skip into 2, max_pool 2→7; nothing else built
    assert [type(op).__name__ for op in cell.ops] == ["SepConv", "Identity", "MaxPool2d"]
    s = torch.randn(2, 8, 6, 6)
    assert cell(s, s, 0.0).shape == (2, 2 * C, 6, 6)


def test_all_inactive_cell_in_a_network_names_the_cell():
    dead = CellGenotype((("sep_conv_3x3", 2, 3),), (3,))
    with pytest.raises(NasforgeError) as err:
        NetworkCIFAR(Genotype(dead, EXT_REDUCE), C, layers=3)
    msg = str(err.value)
    assert msg.startswith("normal cell (layer 0): no active intermediate node") and "\n" not in msg
    with pytest.raises(NasforgeError, match=r"^reduction cell \(layer 1\)"):
        NetworkImageNet(Genotype(EXT_NORMAL, dead), C, layers=3)


# Parameter counts of the ops, written out from their definitions (affine BN: 2 per channel).
def sep(c: int, k: int) -> int:  # 2 × (depthwise k×k, pointwise c×c, BN)
    return 2 * (c * k * k + c * c + 2 * c)


def dil(c: int, k: int) -> int:  # depthwise dilated k×k, pointwise c×c, BN
    return c * k * k + c * c + 2 * c


def relu_conv_bn(c_in: int, c_out: int) -> int:  # 1×1 conv, BN
    return c_in * c_out + 2 * c_out


def fact_reduce(c_in: int, c_out: int) -> int:  # two 1×1 convs to c_out/2 each, BN
    return c_in * (c_out // 2) + c_in * (c_out - c_out // 2) + 2 * c_out


def ext_normal_ops(c: int) -> int:  # EXT_NORMAL: sep3, skip, max_pool, dil3, avg_pool
    return sep(c, 3) + dil(c, 3)


def ext_reduce_ops(c: int) -> int:  # EXT_REDUCE: sep5 0→2, sep3 1→3, skip 1→3 (stride 2), max
    return sep(c, 5) + sep(c, 3) + fact_reduce(c, c)


def test_ext_cell_cifar_parameter_count_matches_hand_count():
    net = NetworkCIFAR(Genotype(EXT_NORMAL, EXT_REDUCE), C, 10, 4, auxiliary=False,
                       in_channels=1)
    # Cells: normal (C), reduce (2C), reduce (4C), normal (4C); concat 2, 3, 3, 2 nodes.
    stem = 1 * 3 * C * 9 + 2 * 3 * C
    cell0 = relu_conv_bn(3 * C, C) * 2 + ext_normal_ops(C)                      # out 2C
    cell1 = relu_conv_bn(3 * C, 2 * C) + relu_conv_bn(2 * C, 2 * C) + ext_reduce_ops(2 * C)
    cell2 = fact_reduce(2 * C, 4 * C) + relu_conv_bn(6 * C, 4 * C) + ext_reduce_ops(4 * C)
    cell3 = fact_reduce(6 * C, 4 * C) + relu_conv_bn(12 * C, 4 * C) + ext_normal_ops(4 * C)
    classifier = 8 * C * 10 + 10
    expected = stem + cell0 + cell1 + cell2 + cell3 + classifier
    assert expected == 7506  # the same sum, added up on paper for C = 4
    assert sum(p.numel() for p in net.parameters()) == expected


def test_ext_cell_imagenet_parameter_count_and_shapes():
    net = NetworkImageNet(Genotype(EXT_NORMAL, EXT_REDUCE), C, 5, 4, auxiliary=False)
    stem = (3 * (C // 2) * 9 + 2 * (C // 2)) + (C // 2 * C * 9 + 2 * C) + (C * C * 9 + 2 * C)
    cell0 = fact_reduce(C, C) + relu_conv_bn(C, C) + ext_normal_ops(C)          # out 2C
    cell1 = relu_conv_bn(C, 2 * C) + relu_conv_bn(2 * C, 2 * C) + ext_reduce_ops(2 * C)
    cell2 = fact_reduce(2 * C, 4 * C) + relu_conv_bn(6 * C, 4 * C) + ext_reduce_ops(4 * C)
    cell3 = fact_reduce(6 * C, 4 * C) + relu_conv_bn(12 * C, 4 * C) + ext_normal_ops(4 * C)
    expected = stem + cell0 + cell1 + cell2 + cell3 + 8 * C * 5 + 5
    assert expected == 7371
    assert sum(p.numel() for p in net.parameters()) == expected
    assert [cell.out_channels for cell in net.cells] == [2 * C, 6 * C, 12 * C, 8 * C]
    logits, aux = net.train()(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 5) and aux is None


def test_topk_derived_genotype_builds_and_runs():
    from nasforge.derive import derive

    gen = torch.Generator().manual_seed(0)
    strengths = {c: torch.rand(14, 8, generator=gen) ** 4 for c in ("normal", "reduce")}
    g = derive("topk", strengths, k=10)
    net = NetworkCIFAR(g, C, layers=3, in_channels=1, auxiliary=False)
    # layers=3: normal, reduce, reduce.
    widths = [len(g.normal.concat), len(g.reduce.concat), len(g.reduce.concat)]
    assert [cell.out_channels for cell in net.cells] == [
        w * c for w, c in zip(widths, (C, 2 * C, 4 * C), strict=True)
    ]
    assert sum(len(cell.ops) for cell in net.cells) == len(g.normal.ops) + 2 * len(g.reduce.ops)
    assert net(torch.randn(2, 1, 8, 8))[0].shape == (2, 10)


@pytest.mark.parametrize(
    ("ops", "concat", "match"),
    [
        ((), (2, 3, 4, 5), "no active intermediate node"),
        ((("sep_conv_3x3", 2, 3), ("skip_connect", 3, 4)), (3, 4), "no active intermediate node"),
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
