"""The NAS-Bench-1shot1 one-shot model: mixing, discrete cells, sparse forward passes."""

import random

import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.spaces.nb101.network import OneShotNetwork
from nasforge.spaces.nb101.space import NB101_OPS, ONESHOT_SPACES
from spaces.nb101.test_oneshot_space import random_arch

SS1, SS2, SS3 = (ONESHOT_SPACES.get(f"1shot1-ss{i}") for i in (1, 2, 3))


def network(space, channels=4, layers=3, seed=0) -> OneShotNetwork:
    torch.manual_seed(seed)
    return OneShotNetwork(space, channels, 10, layers, in_channels=1).eval()


def arch_weights(space, arch) -> dict[str, torch.Tensor]:
    B = space.blocks
    w = {"ops": torch.zeros(B, 3), "inputs": torch.zeros(B, B), "output": torch.zeros(1, B + 1)}
    for b, (op, parents) in enumerate(zip(arch.ops, arch.parents, strict=True)):
        w["ops"][b, NB101_OPS.index(op)] = 1
        w["inputs"][b, list(parents)] = 1
    w["output"][0, list(arch.output)] = 1
    return w


def discrete_cell(cell, s0, arch):
    """NAS-Bench-101's cell semantics written out for one architecture: a vertex sums its
    parents (the cell input through the vertex's 1×1 projection), the output concatenates
    its block parents (zeros for the others) and adds the projected input if it reads it."""
    states = {}
    for v, (op, parents) in enumerate(zip(arch.ops, arch.parents, strict=True), 1):
        x = sum(cell.projections[v - 1](s0) if p == 0 else states[p] for p in parents)
        states[v] = cell.choice_blocks[v - 1].ops[NB101_OPS.index(op)](x)
    n, _, h, w = s0.shape
    c = cell.out_projection[0].out_channels // cell.blocks
    out = torch.cat([states[v] if v in arch.output else torch.zeros(n, c, h, w)
                     for v in range(1, cell.blocks + 1)], dim=1)
    return out + cell.out_projection(s0) if 0 in arch.output else out


def discrete_network(net, x, arch):
    s = net.stem(x)
    for i, cell in enumerate(net.cells):
        if i in net.reductions:
            s = net.pool(s)
        s = discrete_cell(cell, s, arch)
    return net.classifier(net.postprocess(s).mean(dim=(2, 3)))


@pytest.mark.parametrize("space", [SS1, SS2, SS3])
def test_one_hot_weights_compute_the_discrete_cell(space):
    net = network(space)
    x = torch.randn(3, 1, 8, 8)
    rng = random.Random(0)
    with torch.no_grad():
        for _ in range(5):
            arch = random_arch(space, rng)
            w = arch_weights(space, arch)
            expected = discrete_network(net, x, arch)
            torch.testing.assert_close(net(x, w), expected, rtol=1e-5, atol=1e-6)
            net.sparse = True
            torch.testing.assert_close(net(x, w), expected, rtol=1e-5, atol=1e-6)
            net.sparse = False


def test_mixed_weights_are_linear_in_the_op_weights():
    """A block's output is Σ_k w_k·op_k: halving every op weight of a cell's last block
    halves that block's share of the output (the output weight scales it the same way)."""
    net = network(SS3, layers=3)
    cell = net.cells[0]
    s0 = torch.randn(2, 4, 8, 8)
    gen = torch.Generator().manual_seed(1)
    w = {"ops": torch.rand(5, 3, generator=gen), "inputs": torch.rand(5, 5, generator=gen),
         "output": torch.rand(1, 6, generator=gen)}
    half = {**w, "ops": w["ops"].clone()}
    half["ops"][4] *= 0.5
    with torch.no_grad():
        full, halved = cell(s0, w, None), cell(s0, half, None)
        skip = w["output"][0, 0] * cell.out_projection(s0)  # the input's edge to the output
    last = slice(4 * 4, 5 * 4)
    torch.testing.assert_close((halved - skip)[:, last], 0.5 * (full - skip)[:, last],
                               rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(halved[:, :last.start], full[:, :last.start])


def test_sparse_pass_skips_unreachable_blocks_and_zero_ops():
    """With one-hot weights only the chosen op of each block the output can reach runs."""
    net = network(SS3, layers=3)
    net.sparse = True
    calls = []
    for cell_index, cell in enumerate(net.cells):
        for b, block in enumerate(cell.choice_blocks):
            for k, op in enumerate(block.ops):
                op.register_forward_hook(
                    lambda m, i, o, key=(cell_index, b, k): calls.append(key))
    # vertex 4 and 5 read 0,1 / 0,4; the output reads 5 and 2: vertex 3 is a loose end
    from nasforge.spaces.nb101.space import parse_arch
    space, arch = parse_arch("1shot1-ss3 ops=conv3x3-bn-relu,maxpool3x3,conv1x1-bn-relu,"
                             "maxpool3x3,conv3x3-bn-relu parents=0;0;0;0,1;0,4 output=2,5")
    with torch.no_grad():
        net(torch.randn(2, 1, 8, 8), arch_weights(space, arch))
    expected = [(c, b, NB101_OPS.index(arch.ops[b])) for c in range(3) for b in (0, 1, 3, 4)]
    assert sorted(calls) == sorted(expected)


def test_channels_double_at_each_stage_and_shapes_are_checked():
    net = network(SS1, channels=4, layers=6)
    assert [c.choice_blocks[0].ops[0][0].out_channels for c in net.cells] == [4, 4, 8, 8, 16, 16]
    with pytest.raises(NasforgeError, match=r"weights\['inputs'\] must have shape \[4, 4\]"):
        net(torch.randn(1, 1, 8, 8), {"ops": torch.ones(4, 3), "inputs": torch.ones(3, 3),
                                      "output": torch.ones(1, 5)})
    with pytest.raises(NasforgeError, match="at least 3"):
        OneShotNetwork(SS1, 4, 10, 2)
