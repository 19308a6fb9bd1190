"""Shapes and semantics of the DARTS candidate ops."""

import math

import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import PRIMITIVES
from nasforge.spaces.darts.ops import (
    OPS,
    DilConv,
    FactorizedReduce,
    SepConv,
    Zero,
    build_op,
    drop_path,
)

C = 4


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_ops_cover_primitives_plus_noise():
    assert set(OPS) == set(PRIMITIVES) | {"noise"}
    assert "noise" not in PRIMITIVES


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(8, 8), (7, 9)])
def test_op_output_shape(name, stride, size):
    op = build_op(name, C, stride, affine=True)
    x = torch.randn(2, C, *size)
    expected = (2, C, math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    assert op(x).shape == expected


def test_skip_connect_is_identity_at_stride_1_and_reduces_at_stride_2():
    assert isinstance(build_op("skip_connect", C, 1, True), torch.nn.Identity)
    assert isinstance(build_op("skip_connect", C, 2, True), FactorizedReduce)


def test_zero_gives_zeros_and_keeps_gradient_path():
    x = torch.randn(2, C, 7, 7, requires_grad=True)
    y = Zero(2)(x)
    assert y.shape == (2, C, 4, 4)
    assert torch.count_nonzero(y) == 0
    y.sum().backward()
    assert x.grad is not None


def test_noise_ignores_input():
    x = torch.zeros(2, C, 8, 8)
    y = build_op("noise", C, 2, False)(x)
    assert y.shape == (2, C, 4, 4)
    assert y.std() > 0.5


def test_avg_pool_excludes_padding():
    x = torch.ones(1, C, 5, 5)
    assert torch.allclose(build_op("avg_pool_3x3", C, 1, False)(x), x)


def test_sep_conv_param_count_by_hand():
    # per half: depthwise C*k*k + pointwise C*C + BN 2C
    assert n_params(SepConv(C, C, 3, 1, 1)) == 2 * (C * 9 + C * C + 2 * C) == 120
    assert n_params(SepConv(C, C, 5, 2, 2)) == 2 * (C * 25 + C * C + 2 * C)
    assert n_params(SepConv(C, C, 3, 1, 1, affine=False)) == 2 * (C * 9 + C * C)


def test_dil_conv_param_count_and_dilation():
    op = DilConv(C, C, 3, 1, 2, 2)
    assert n_params(op) == C * 9 + C * C + 2 * C
    assert op[1].dilation == (2, 2)


def test_factorized_reduce_odd_sizes_and_odd_channels():
    fr = FactorizedReduce(C, 5)
    assert n_params(fr) == C * 2 + C * 3 + 2 * 5
    assert fr(torch.randn(2, C, 7, 9)).shape == (2, 5, 4, 5)
    assert fr(torch.randn(2, C, 8, 8)).shape == (2, 5, 4, 4)


def test_factorized_reduce_second_conv_sees_the_odd_grid():
    fr = FactorizedReduce(1, 2, affine=False).eval()
    with torch.no_grad():
        fr.conv_1.weight.fill_(1.0)
        fr.conv_2.weight.fill_(1.0)
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = fr(x) * torch.sqrt(torch.tensor(1 + fr.bn.eps))  # undo eval-mode BN scaling
    assert torch.allclose(y[0, 0], x[0, 0, ::2, ::2])
    assert torch.allclose(y[0, 1], x[0, 0, 1::2, 1::2])


def test_unknown_op_is_a_user_error():
    with pytest.raises(NasforgeError, match="unknown op 'conv_9x9'"):
        build_op("conv_9x9", C, 1, True)


def test_drop_path_identity_when_not_training_or_zero_prob():
    x = torch.randn(4, C, 2, 2)
    assert drop_path(x, 0.5, training=False) is x
    assert drop_path(x, 0.0, training=True) is x


def test_drop_path_zeroes_whole_samples_and_keeps_expectation():
    torch.manual_seed(0)
    x = torch.ones(4000, 3, 2, 2)
    y = drop_path(x, 0.3, training=True)
    per_sample = y.flatten(1)
    first = per_sample[:, :1]
    assert torch.equal(per_sample, first.expand_as(per_sample))  # all or nothing per sample
    kept = first[first != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.7))
    assert abs((first == 0).float().mean().item() - 0.3) < 0.03
    assert abs(y.mean().item() - 1.0) < 0.05


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_drop_path_rejects_bad_probability(p):
    with pytest.raises(NasforgeError, match="drop_prob"):
        drop_path(torch.ones(2, 1), p, training=True)
