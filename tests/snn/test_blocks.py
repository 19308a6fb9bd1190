"""Every registered block runs forward and backward over [T, N, C, H, W] at T=2."""

import pytest
import torch
from torch import nn

from nasforge.errors import NasforgeError
from nasforge.snn.blocks import BLOCKS, SEARCH_BLOCKS, build_block
from nasforge.snn.neuron import is_neuron, reset_net


def test_registry_names() -> None:
    assert set(SEARCH_BLOCKS) <= set(BLOCKS.names())
    assert {"SIB_k3_e1", "SIB_k3_e3", "SIB_k5_e1", "SIB_k5_e3"} <= set(BLOCKS.names())
    with pytest.raises(NasforgeError, match="unknown SNN block 'SRB_k7'; choose from"):
        build_block("SRB_k7", 4, 4)


@pytest.mark.parametrize("name", BLOCKS.names())
@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(4, 4, 1), (4, 8, 1), (4, 4, 2)])
def test_block_forward_backward(name: str, c_in: int, c_out: int, stride: int) -> None:
    torch.manual_seed(0)
    block = build_block(name, c_in, c_out, stride)
    x = (torch.rand(2, 2, c_in, 8, 8) < 0.5).float().requires_grad_(True)
    y = block(x)
    assert y.shape == (2, 2, c_out, 8 // stride, 8 // stride)
    y.sum().backward()
    assert x.grad is not None
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            assert m.bias is None
    reset_net(block)


def _neurons(name: str, c_in: int, c_out: int) -> int:
    """Neurons per pixel, from the layers' output shapes."""
    block = build_block(name, c_in, c_out).eval()
    counts: list[int] = []
    for m in block.modules():
        if is_neuron(m):
            m.register_forward_hook(lambda _m, _i, out: counts.append(out[0, 0].numel()))
    block(torch.rand(1, 1, c_in, 1, 1))
    return sum(counts)


def test_neuron_counts_match_thesis() -> None:
    """§5.2.2: 2hwC for SCB/SRB, hw(2c_in+c_out) for SIB_e1, hw(6c_in+c_out) for SIB_e3."""
    assert _neurons("SCB_k3", 4, 4) == 8
    assert _neurons("SRB_k3", 4, 4) == 8
    assert _neurons("SIB_k3_e1", 4, 8) == 2 * 4 + 8
    assert _neurons("SIB_k3_e3", 4, 8) == 6 * 4 + 8
    assert _neurons("skip", 4, 4) == 0
    assert _neurons("skip", 4, 8) == 8


def test_identity_paths() -> None:
    x = torch.rand(2, 2, 4, 8, 8)
    assert torch.equal(build_block("skip", 4, 4)(x), x)
    srb = build_block("SRB_k3", 4, 4)
    assert isinstance(srb.shortcut, nn.Identity)
    assert not isinstance(build_block("SRB_k3", 4, 8).shortcut, nn.Identity)
    assert build_block("SIB_k3_e3", 4, 4).residual
    assert not build_block("SIB_k3_e3", 4, 4, 2).residual
