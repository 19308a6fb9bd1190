"""The algorithm-agnostic DARTS super-network."""

import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import PRIMITIVES
from nasforge.spaces.darts.search_network import (
    MixedOp,
    SearchCell,
    SearchNetwork,
    reduction_layers,
)

C = 4


def uniform_weights(net: SearchNetwork, requires_grad: bool = False) -> dict[str, torch.Tensor]:
    return {
        key: torch.zeros(net.arch_shape, requires_grad=requires_grad)
        for key in ("normal", "reduce")
    }


@pytest.mark.parametrize("k", range(len(PRIMITIVES)))
def test_mixed_op_with_one_hot_weight_equals_that_op(k):
    torch.manual_seed(0)
    mixed = MixedOp(C, 1, PRIMITIVES)
    x = torch.randn(2, C, 8, 8)
    weights = torch.nn.functional.one_hot(torch.tensor(k), len(PRIMITIVES)).float()
    assert torch.allclose(mixed(x, weights), mixed.ops[k](x))


def test_mixed_op_pools_are_followed_by_non_affine_bn():
    mixed = MixedOp(C, 2, PRIMITIVES)
    for name, op in zip(PRIMITIVES, mixed.ops, strict=True):
        if "pool" in name:
            assert isinstance(op[1], torch.nn.BatchNorm2d) and not op[1].affine


def test_search_cell_output_and_edges():
    cell = SearchCell(4, 8, 8, C, reduction=True, reduction_prev=False, primitives=PRIMITIVES)
    assert len(cell.ops) == 14
    weights = torch.full((14, len(PRIMITIVES)), 1 / len(PRIMITIVES))
    out = cell(torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8), weights)
    assert out.shape == (2, 4 * C, 4, 4)
    strides = [2 if i < 2 else 1 for i, _ in cell.edges]
    assert [m.ops[-1][1].stride[0] for m in cell.ops] == strides  # dil_conv depthwise stride


def test_search_network_output_shape_and_attributes():
    net = SearchNetwork(C, num_classes=5, layers=3)
    assert net.num_edges == 14 and net.nodes == 4 and net.primitives == PRIMITIVES
    assert net.arch_shape == (14, 8)
    assert net(torch.randn(2, 3, 16, 16), uniform_weights(net)).shape == (2, 5)
    assert SearchNetwork(C, layers=3, nodes=2).num_edges == 5


def test_reduction_positions_and_channel_doubling():
    net = SearchNetwork(C, layers=8)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == [2, 5]
    assert [c.out_channels for c in net.cells] == [16, 16, 32, 32, 32, 64, 64, 64]
    assert reduction_layers(3) == (1, 2)
    assert reduction_layers(20) == (6, 13)


def test_every_cell_bn_is_non_affine():
    net = SearchNetwork(C, layers=3)
    bns = [m for m in net.cells.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(bn.affine for bn in bns)


def test_gradient_flows_into_weight_tensors():
    torch.manual_seed(0)
    net = SearchNetwork(C, layers=3)
    alphas = {key: 1e-3 * torch.randn(net.arch_shape) for key in ("normal", "reduce")}
    for a in alphas.values():
        a.requires_grad_(True)
    weights = {key: a.softmax(dim=-1) for key, a in alphas.items()}
    loss = torch.nn.functional.cross_entropy(
        net(torch.randn(2, 3, 8, 8), weights), torch.tensor([0, 1])
    )
    loss.backward()
    for a in alphas.values():
        assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.classifier.parameters())


def test_imagenet_stem_reaches_one_eighth_resolution():
    net = SearchNetwork(16, layers=3, stem="imagenet")
    assert [m.out_channels for m in net.stem if isinstance(m, torch.nn.Conv2d)] == [24, 48]
    seen = {}
    net.cells[0].register_forward_hook(
        lambda m, args, out: seen.update(s0=args[0].shape, s1=args[1].shape)
    )
    net(torch.randn(2, 3, 32, 32), uniform_weights(net))
    assert seen["s0"] == (2, 48, 8, 8)
    assert seen["s1"] == (2, 48, 4, 4)


def test_restricted_primitives_including_noise():
    net = SearchNetwork(C, layers=3, primitives=("sep_conv_3x3", "noise"))
    assert net.arch_shape == (14, 2)
    assert net(torch.randn(2, 3, 8, 8), uniform_weights(net)).shape == (2, 10)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layers": 2}, "layers"),
        ({"nodes": 0}, "nodes"),
        ({"primitives": ("sep_conv_3x3", "conv_9x9")}, "unknown primitive 'conv_9x9'"),
        ({"primitives": ("skip_connect", "skip_connect")}, "repeat"),
        ({"stem": "mnist"}, "unknown stem"),
        ({"C": 0}, "C must"),
    ],
)
def test_bad_arguments_are_user_errors(kwargs, match):
    with pytest.raises(NasforgeError, match=match):
        SearchNetwork(**{"C": C, "layers": 3, **kwargs})


def test_bad_weights_are_user_errors():
    net = SearchNetwork(C, layers=3)
    x = torch.randn(2, 3, 8, 8)
    with pytest.raises(NasforgeError, match="'reduce'"):
        net(x, {"normal": torch.zeros(14, 8)})
    with pytest.raises(NasforgeError, match="shape"):
        net(x, {"normal": torch.zeros(14, 7), "reduce": torch.zeros(14, 8)})
