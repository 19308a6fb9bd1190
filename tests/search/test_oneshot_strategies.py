"""DARTS, GDAS and ENAS in the NAS-Bench-1shot1 spaces."""

import contextlib

import pytest
import torch
import torch.nn.functional as F

from nasforge.config import SearchConfig
from nasforge.errors import NasforgeError
from nasforge.search import ONESHOT_STRATEGIES
from nasforge.search.base import StepContext
from nasforge.spaces.nb101.network import OneShotNetwork
from nasforge.spaces.nb101.space import NB101_OPS, ONESHOT_SPACES

SPACES = [ONESHOT_SPACES.get(f"1shot1-ss{i}") for i in (1, 2, 3)]


def setup(space, algo, seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = SearchConfig(**overrides)
    net = OneShotNetwork(space, 4, 10, 3, in_channels=1)
    strategy = ONESHOT_STRATEGIES.get(algo)(net, cfg)
    return net, strategy, cfg


def context(net, lr=0.1):
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=3e-4)
    return StepContext(w_optimizer=opt, w_lr=lr, autocast=contextlib.nullcontext)


def batch(seed, n=8):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=gen), torch.randint(0, 10, (n,), generator=gen)


def check_fixed_rows(space, w):
    for v in range(1, space.blocks + 1):
        row = w["inputs"][v - 1]
        assert torch.all(row[v:] == 0)  # padding beyond the candidates
        if not space.searched(v):
            expected = torch.zeros(space.blocks)
            expected[list(space.fixed_parents(v))] = 1
            assert torch.equal(row, expected)


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_darts_weights_are_softmaxes_of_every_choice(space):
    net, darts, _ = setup(space, "darts")
    w = darts.op_weights()
    torch.testing.assert_close(w["ops"], F.softmax(darts.alphas["ops"], -1))
    torch.testing.assert_close(w["output"], F.softmax(darts.alphas["output"], -1))
    for v in space.choice_vertices():
        torch.testing.assert_close(w["inputs"][v - 1, :v],
                                   F.softmax(darts.alphas[f"in{v}"], -1).view(-1))
    check_fixed_rows(space, w)
    assert sorted(darts.alphas) == sorted(["ops", "output",
                                           *(f"in{v}" for v in space.choice_vertices())])


def test_darts_arch_step_moves_every_choice():
    space = SPACES[2]
    net, darts, cfg = setup(space, "darts")
    before = {k: v.detach().clone() for k, v in darts.alphas.items()}
    darts.arch_step(net, batch(0), batch(1), darts.make_arch_optimizer(), context(net))
    assert all(not torch.equal(before[k], darts.alphas[k]) for k in before)
    assert all(p.grad is None for p in net.parameters())  # the weights are left alone


def test_darts_second_order_with_zero_lr_equals_first_order():
    """With ξ = 0 the unrolled weights are the weights and the Hessian term vanishes."""
    space = SPACES[0]
    grads = {}
    for order in ("first", "second"):
        net, darts, _ = setup(space, "darts", order=order)
        net.train()
        ctx = context(net, lr=0.0)
        opt = torch.optim.SGD(darts.arch_parameters(), lr=1.0)
        darts.arch_step(net, batch(0), batch(1), opt, ctx)
        grads[order] = [p.grad.clone() for p in darts.arch_parameters()]
    for g1, g2 in zip(grads["first"], grads["second"], strict=True):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_gdas_runs_one_op_per_block_with_soft_parents(space):
    net, gdas, _ = setup(space, "gdas")
    gdas.start_epoch(0, 10)
    w = gdas.op_weights()
    assert torch.equal(w["ops"].detach().sum(-1), torch.ones(space.blocks))
    assert set(w["ops"].detach().unique().tolist()) <= {0.0, 1.0}
    for v in space.choice_vertices():  # soft Gumbel samples: positive, on the simplex
        row = w["inputs"][v - 1, :v].detach()
        assert torch.all(row > 0) and abs(float(row.sum()) - 1) < 1e-5
    check_fixed_rows(space, {k: v.detach() for k, v in w.items()})
    # only the sampled op of each block runs in the forward pass
    net.sparse = True
    calls = []
    for cell in net.cells:
        for b, block in enumerate(cell.choice_blocks):
            for k, op in enumerate(block.ops):
                op.register_forward_hook(lambda m, i, o, key=(b, k): calls.append(key))
    net(batch(0)[0], w)
    chosen = w["ops"].detach().argmax(-1).tolist()
    assert sorted(set(calls)) == sorted((b, chosen[b]) for b in range(space.blocks))
    assert len(calls) == space.blocks * len(net.cells)


def test_gdas_draws_depend_only_on_seed_and_count():
    space = SPACES[1]
    _, a, _ = setup(space, "gdas", seed=3)
    _, b, _ = setup(space, "gdas", seed=3)
    first, again = a.sample()[0], b.sample()[0]
    assert all(torch.equal(first[k].detach(), again[k].detach()) for k in first)
    second = a.sample()[0]
    assert not all(torch.equal(first[k].detach(), second[k].detach()) for k in first)
    a.start_epoch(9, 10)
    assert a.tau == pytest.approx(0.1)
    with pytest.raises(NasforgeError, match="first-order only"):
        setup(space, "gdas", order="second")


def test_gdas_gradient_reaches_every_alpha():
    space = SPACES[2]
    net, gdas, _ = setup(space, "gdas")
    net.sparse = True
    opt = gdas.make_arch_optimizer()
    gdas.arch_step(net, batch(0), batch(1), opt, context(net))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in gdas.arch_parameters())


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_enas_samples_valid_cells(space):
    _, enas, _ = setup(space, "enas", controller_temperature=5.0, op_tanh_reduce=5.0,
                       tanh_constant=2.5)
    seen = set()
    for _ in range(30):
        sample = enas.sample()
        arch = space.validate(sample.arch)
        seen.add(space.format(arch))
        w = enas.arch_weights(arch)
        assert torch.equal(w["ops"].sum(-1), torch.ones(space.blocks))
        assert w["inputs"].sum(-1).tolist() == list(map(float, space.parents))
        assert float(w["output"].sum()) == space.output_parents
        assert torch.isfinite(sample.log_prob) and sample.log_prob < 0
    assert len(seen) > 20  # the controller explores


def test_enas_greedy_strengths_discretise_to_the_greedy_cell():
    space = SPACES[0]
    _, enas, _ = setup(space, "enas")
    greedy = enas.greedy().arch
    assert space.discretize(enas.strengths()) == space.validate(greedy)
    assert torch.equal(enas.eval_weights()["ops"], enas.arch_weights(greedy)["ops"])


def test_enas_log_prob_of_replays_the_picks_of_a_walk():
    """A walk that always picks the lowest available index draws parents in ascending order;
    teacher forcing its cell must replay exactly those picks (same log-probability)."""
    space = SPACES[2]
    _, enas, _ = setup(space, "enas")

    def lowest(logits):
        return int(torch.isfinite(logits).nonzero()[0])

    sample = enas.walk(lowest)
    assert sample.arch.ops == (NB101_OPS[0],) * space.blocks
    assert sample.arch.parents[3] == (0, 1) and sample.arch.output == (0, 1)
    torch.testing.assert_close(enas.log_prob_of(space.validate(sample.arch)), sample.log_prob)


def test_enas_policy_gradient_moves_toward_reward():
    """Reward = the share of blocks using maxpool3x3: REINFORCE raises its probability."""
    space = SPACES[2]
    # op logits are bounded by c / r: c = 2.5, r = 1 lets p(op) reach 0.99
    _, enas, _ = setup(space, "enas", controller_lr=0.05, entropy_weight=0.0,
                       tanh_constant=2.5, op_tanh_reduce=1.0, baseline_decay=0.9)
    opt = enas.make_arch_optimizer()
    target = NB101_OPS.index("maxpool3x3")
    before = float(enas.strengths()["ops"][:, target].mean())
    for _ in range(40):
        sample = enas.sample()
        enas.reinforce(sample, sum(op == "maxpool3x3" for op in sample.arch.ops) / 5, opt)
    after = float(enas.strengths()["ops"][:, target].mean())
    assert after > before + 0.1, (before, after)


def test_only_three_algorithms_cover_these_spaces():
    assert ONESHOT_STRATEGIES.names() == ["darts", "enas", "gdas"]
    with pytest.raises(NasforgeError, match="choose from: darts, enas, gdas"):
        ONESHOT_STRATEGIES.get("pcdarts")
