"""Seeded random architectures in every cell space, and the networks built from them."""

import pytest
import torch

from nasforge.benchmarks.tabular import cell_from_key, enumerate_cells, fixed_reduction_cell
from nasforge.errors import NasforgeError
from nasforge.snn.blocks import SEARCH_BLOCKS
from nasforge.spaces.darts.genotype import PRIMITIVES, is_darts_cell, validate_genotype
from nasforge.spaces.nb101.space import ONESHOT_SPACES, parse_arch
from nasforge.zc.sample import (
    NetSettings,
    build_network,
    check_space,
    sample_architectures,
    space_names,
)

SPACES = ["darts", "extcell-10", "1shot1-ss1", "1shot1-ss2", "1shot1-ss3", "tabular-digits",
          "snn"]


def test_space_names():
    assert space_names() == ["darts", "extcell-K", "1shot1-ss1", "1shot1-ss2", "1shot1-ss3",
                             "tabular-digits", "snn"]
    with pytest.raises(NasforgeError, match="unknown space 'nb201'.*darts, extcell-K"):
        check_space("nb201")
    with pytest.raises(NasforgeError, match="K=1 is out of range"):
        check_space("extcell-1")


@pytest.mark.parametrize("space", SPACES)
def test_seeded(space):
    first = [s.text for s in sample_architectures(space, 6, seed=3)]
    assert [s.text for s in sample_architectures(space, 6, seed=3)] == first
    assert [s.text for s in sample_architectures(space, 4, seed=3)] == first[:4]  # a prefix
    assert [s.text for s in sample_architectures(space, 6, seed=4)] != first
    assert [s.index for s in sample_architectures(space, 6, seed=3)] == list(range(6))
    assert len(set(first)) >= 5  # random, not one architecture repeated


def test_darts_samples_are_argmax_cells():
    ops = [p for p in PRIMITIVES if p != "none"]
    for s in sample_architectures("darts", 20, seed=0):
        validate_genotype(s.arch, nodes=4)
        for cell in (s.arch.normal, s.arch.reduce):
            assert is_darts_cell(cell, 4)
            assert all(op in ops for op, _, _ in cell.ops)
            for node in range(2, 6):  # two distinct inputs per node
                inputs = [i for _, i, n in cell.ops if n == node]
                assert len(set(inputs)) == 2 and all(0 <= i < node for i in inputs)


def test_extcell_samples_have_k_ops():
    for s in sample_architectures("extcell-10", 10, seed=0):
        validate_genotype(s.arch, nodes=4)
        assert len(s.arch.normal.ops) + len(s.arch.reduce.ops) == 10
        assert "none" not in {op for op, _, _ in s.arch.normal.ops + s.arch.reduce.ops}


@pytest.mark.parametrize("space", ["1shot1-ss1", "1shot1-ss2", "1shot1-ss3"])
def test_1shot1_samples_are_in_the_space(space):
    oneshot = ONESHOT_SPACES.get(space)
    for s in sample_architectures(space, 10, seed=0):
        assert oneshot.validate(s.arch) == s.arch
        assert parse_arch(s.text) == (oneshot, s.arch)


def test_tabular_samples_are_distinct_table_cells():
    keys = {s.text for s in sample_architectures("tabular-digits", 243, seed=0)}
    assert len(keys) == 243  # all of them, each once
    assert len(enumerate_cells()) == 243
    s = sample_architectures("tabular-digits", 1, seed=0)[0]
    assert s.arch.normal == cell_from_key(s.text)
    assert s.arch.reduce == fixed_reduction_cell()
    with pytest.raises(NasforgeError, match="has 243 cells; asked for 244"):
        sample_architectures("tabular-digits", 244, seed=0)


def test_snn_samples_pick_a_block_per_position():
    for s in sample_architectures("snn", 10, seed=0):
        assert len(s.arch) == 5 and set(s.arch) <= set(SEARCH_BLOCKS)
        assert s.text == ",".join(s.arch)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_sample_counts(bad):
    with pytest.raises(NasforgeError, match="samples must be a positive whole number"):
        sample_architectures("darts", bad, seed=0)


@pytest.mark.parametrize("space", SPACES)
def test_networks_map_images_to_logits(space, one_thread):
    s = sample_architectures(space, 1, seed=0)[0]
    settings = NetSettings(channels=4, layers=3, timesteps=2)
    torch.manual_seed(0)
    net = build_network(s, in_channels=1, in_size=8, num_classes=10, settings=settings)
    torch.manual_seed(0)
    again = build_network(s, in_channels=1, in_size=8, num_classes=10, settings=settings)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                 again.state_dict().values(), strict=True))
    out = net(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 10) and bool(torch.isfinite(out).all())


def test_1shot1_network_runs_only_the_cell():
    s = sample_architectures("1shot1-ss1", 1, seed=0)[0]
    net = build_network(s, in_channels=1, in_size=8, num_classes=10)
    used = {name for name, p in net.named_parameters()}
    net(torch.randn(2, 1, 8, 8)).sum().backward()
    with_grad = {name for name, p in net.named_parameters() if p.grad is not None}
    assert with_grad and with_grad < used  # unused ops of the one-shot network get no gradient
