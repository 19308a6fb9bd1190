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
    L = len(net.cells)
    assert w["ops"].shape == (L, space.blocks, 3)  # one draw per cell
    assert torch.equal(w["ops"].detach().sum(-1), torch.ones(L, space.blocks))
    assert set(w["ops"].detach().unique().tolist()) <= {0.0, 1.0}
    for v in space.choice_vertices():  # soft Gumbel samples: positive, on the simplex
        row = w["inputs"][:, v - 1, :v].detach()
        assert torch.all(row > 0)
        torch.testing.assert_close(row.sum(-1), torch.ones(L))
    for i in range(L):
        check_fixed_rows(space, {k: v[i].detach() for k, v in w.items()})
    # only the sampled op of each block of each cell runs in the forward pass
    net.sparse = True
    calls = []
    for i, cell in enumerate(net.cells):
        for b, block in enumerate(cell.choice_blocks):
            for k, op in enumerate(block.ops):
                op.register_forward_hook(lambda m, inp, o, key=(i, b, k): calls.append(key))
    net(batch(0)[0], w)
    chosen = w["ops"].detach().argmax(-1).tolist()
    assert sorted(calls) == sorted((i, b, chosen[i][b]) for i in range(L)
                                   for b in range(space.blocks))


def test_gdas_draws_a_fresh_gumbel_sample_for_every_cell():
    """NAS-Bench-1shot1's GDASNetwork calls gumbel_softmax inside its loop over the cells
    (optimizers/gdas/model_search.py lines 89-107): the cells of one forward pass differ."""
    space = SPACES[2]
    net, gdas, _ = setup(space, "gdas", arch_init_std=0.0)  # α = 0: every op equally likely
    gdas.start_epoch(0, 100)
    w = gdas.op_weights()
    ops = w["ops"].detach().argmax(-1)
    assert len({tuple(row) for row in ops.tolist()}) > 1  # 3 cells × 5 blocks, 3^15 choices
    out = w["output"].detach()
    assert not torch.allclose(out[0], out[1])  # soft draws differ per cell too
    # the weight step trains with its own per-cell draw as well
    ww = gdas.weight_step_weights(net, batch(0), context(net))
    assert ww["ops"].shape == w["ops"].shape and not torch.equal(ww["ops"], w["ops"].detach())
    # per-cell weights drive each cell with its own draw: the same forward as cell-by-cell
    net.eval()
    x = batch(0)[0]
    with torch.no_grad():
        per_cell = net(x, {k: v.detach() for k, v in w.items()})
        s = net.stem(x)
        for i, cell in enumerate(net.cells):
            if i in net.reductions:
                s = net.pool(s)
            s = cell(s, {k: v[i].detach() for k, v in w.items()}, None)
        by_hand = net.classifier(net.postprocess(s).mean(dim=(2, 3)))
    torch.testing.assert_close(per_cell, by_hand)


def test_gdas_draws_depend_only_on_seed_and_count():
    space = SPACES[1]
    _, a, _ = setup(space, "gdas", seed=3)
    _, b, _ = setup(space, "gdas", seed=3)
    first, again = a.sample()[0], b.sample()[0]
    assert all(torch.equal(first[k].detach(), again[k].detach()) for k in first)
    second = a.sample()[0]
    assert not all(torch.equal(first[k].detach(), second[k].detach()) for k in first)
    with pytest.raises(NasforgeError, match="first-order only"):
        setup(space, "gdas", order="second")


def test_gdas_temperature_follows_the_reference_schedule():
    """train_search.py lines 106-107, 166-168: τ starts at tau_max and falls by
    (tau_max − tau_min)/E after each epoch: 10 at epoch 0, 1.09 at epoch 99 of 100."""
    _, gdas, _ = setup(SPACES[0], "gdas", tau_max=10.0, tau_min=1.0)
    taus = []
    for e in range(100):
        gdas.start_epoch(e, 100)
        taus.append(gdas.tau)
    assert taus[0] == pytest.approx(10.0)
    assert taus[1] == pytest.approx(9.91)
    assert taus[-1] == pytest.approx(1.09)


def test_gdas_architecture_gradient_is_clipped_to_grad_clip():
    """ArchitectGDAS clips the α gradient to the weights' clip (architect.py line 26)."""
    space = SPACES[2]
    norms = {}
    for clip in (0.0, 1e-3):
        net, gdas, _ = setup(space, "gdas", grad_clip=clip)
        net.sparse = True
        gdas.start_epoch(0, 100)
        opt = torch.optim.SGD(gdas.arch_parameters(), lr=0.0)
        gdas.arch_step(net, batch(0), batch(1), opt, context(net))
        norms[clip] = float(torch.cat([p.grad.reshape(-1) for p in gdas.arch_parameters()])
                            .norm())
    assert norms[0.0] > 1e-3
    assert norms[1e-3] == pytest.approx(1e-3, rel=1e-4)


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


def test_only_three_algorithms_and_the_random_baselines_cover_these_spaces():
    # and the zero-cost searches (tests/search/test_zc_search.py)
    names = ["darts", "enas", "gdas", "random", "random-ws", "zc-evolution", "zc-random"]
    assert ONESHOT_STRATEGIES.names() == names
    with pytest.raises(NasforgeError, match="choose from: " + ", ".join(names)):
        ONESHOT_STRATEGIES.get("pcdarts")


# ------------------------------------------ ENAS as NAS-Bench-1shot1 runs it (issue 13.4)

class CountingBN:
    """Records the ``training`` flag of every BN layer each time it runs."""

    def __init__(self, net):
        self.modes = []
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.register_forward_pre_hook(lambda mod, inp: self.modes.append(mod.training))


def epoch_end(net, enas, opt, batches, evaluate=None):
    from itertools import cycle

    from nasforge.search.base import EpochEnd

    return EpochEnd(epoch=0, network=net, optimizer=opt, ctx=context(net),
                    arch_batches=cycle(batches), score_batches=lambda: cycle(batches),
                    evaluate=evaluate or (lambda w: 0.0))


def test_oneshot_enas_controller_optimiser_is_the_references():
    """enas_child.py lines 15 and 34-39: Adam(3.5e-4, betas (0.1, 0.999), eps 1e-3), no decay."""
    _, enas, _ = setup(SPACES[0], "enas", controller_lr=3.5e-4)
    group = enas.make_arch_optimizer().param_groups[0]
    assert group["lr"] == 3.5e-4 and group["betas"] == (0.1, 0.999)
    assert group["eps"] == 1e-3 and group["weight_decay"] == 0


def test_oneshot_enas_reward_is_accuracy_in_percent_plus_entropy_bonus():
    """enas_child.py line 105 (utils.accuracy: percent) and 108, baseline from 0 (line 113)."""
    space = SPACES[1]
    net, enas, _ = setup(space, "enas", entropy_weight=1e-4, baseline_decay=0.99)
    net.eval()
    seen = []
    real = enas.reinforce

    def spy(sample, accuracy, optimizer):
        seen.append((sample, float(accuracy)))
        return real(sample, accuracy, optimizer)

    enas.reinforce = spy
    x, y = batch(5, n=16)
    opt = enas.make_arch_optimizer()
    enas.controller_update(net, (x, y), opt, context(net))
    sample, accuracy = seen[0]
    with torch.no_grad():
        logits = net(x, enas.arch_weights(sample.arch))
    assert accuracy == pytest.approx(100.0 * float((logits.argmax(1) == y).float().mean()))
    reward = accuracy + 1e-4 * float(sample.entropy)
    assert float(enas.baseline) == pytest.approx(0.01 * reward, rel=1e-6)


def test_oneshot_enas_controller_phase_runs_with_bn_in_eval_mode():
    """enas_child.py lines 85-87: 300 (here 3) updates after the epoch, model.eval()."""
    space = SPACES[2]
    net, enas, _ = setup(space, "enas", controller_steps=3)
    net.train()
    opt = enas.make_arch_optimizer()
    bn = CountingBN(net)
    enas.arch_step(net, batch(0), batch(1), opt, context(net))  # per minibatch: nothing
    assert bn.modes == [] and enas.draws == 0
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    before = [p.detach().clone() for p in enas.arch_parameters()]
    enas.end_epoch(epoch_end(net, enas, opt, [batch(1), batch(2)]))
    assert enas.draws == 3 and len(bn.modes) > 0 and not any(bn.modes)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in stats.items())  # BN untouched
    assert any(not torch.equal(a, b) for a, b in zip(before, enas.arch_parameters(),
                                                      strict=True))
    assert net.training  # the loop's mode is restored


def test_oneshot_enas_per_minibatch_mode_updates_in_the_arch_step():
    net, enas, _ = setup(SPACES[0], "enas", controller_steps=0)
    opt = enas.make_arch_optimizer()
    enas.arch_step(net, batch(0), batch(1), opt, context(net))
    assert enas.draws == 1 and float(enas.baseline) != 0.0


class ScoredByOps(torch.nn.Module):
    """A stand-in network: on a batch of 10 class-0 labels it gets one right per 3×3
    convolution of the cell (so each candidate's one-batch accuracy is known)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, w):
        right = int(w["ops"][:, 0].sum())
        logits = torch.zeros(len(x), 10)
        logits[:, 1] = 1.0
        logits[:right, 0] = 2.0
        return logits


def test_oneshot_enas_final_cell_is_the_best_of_sampled_candidates():
    """enas.py lines 54-96: N samples scored on one batch each, the 5 best re-scored on the
    whole held-out set, the best re-scored one wins; it is what the epoch logs and derives."""
    space = SPACES[2]
    _, enas, _ = setup(space, "enas", candidates=40, rescore=5)
    drawn = []
    real = enas.sample

    def spy():
        s = real()
        drawn.append(s.arch)
        return s

    enas.sample = spy

    def full(w):  # the "whole held-out split": fewer max-pools is better
        return 100.0 - float(w["ops"][:, 2].sum())

    x, y = torch.zeros(10, 1, 8, 8), torch.zeros(10, dtype=torch.long)
    net = ScoredByOps()
    best = enas.pick_best(epoch_end(net, enas, None, [(x, y)], evaluate=full))
    assert len(drawn) == 40
    first = [a.ops.count("conv3x3-bn-relu") for a in drawn]
    finalists = sorted(range(40), key=lambda i: (-first[i], i))[:5]
    expected = max(finalists, key=lambda i: (-drawn[i].ops.count("maxpool3x3"),
                                             -finalists.index(i)))
    assert best == drawn[expected]
    enas.best = best
    assert space.discretize(enas.strengths()) == space.validate(best)
    assert torch.equal(enas.eval_weights()["inputs"], enas.arch_weights(best)["inputs"])
    # the chosen cell survives a state-dict round trip (resume)
    _, other, _ = setup(space, "enas", candidates=40)
    other.load_state_dict(enas.state_dict())
    assert other.best == best


@pytest.mark.parametrize("i", [1, 2, 3])
def test_1shot1_configs_run_the_reference_settings(i):
    """The settings NAS-Bench-1shot1 runs (issue 13.4), not enas.py's argparse defaults."""
    from nasforge.config import load_config

    e = load_config(f"1shot1-ss{i}-enas-cifar10").search
    assert (e.entropy_weight, e.controller_lr, e.w_weight_decay, e.grad_clip) == (
        1e-4, 3.5e-4, 1e-4, 0.25)  # enas_child.py lines 14, 15, 17; enas.py line 173
    assert (e.batch_size, e.epochs, e.controller_steps, e.candidates, e.rescore) == (
        64, 100, 300, 1000, 5)  # enas.py 172, cluster scripts, enas_child.py 85, enas.py 57/77
    assert (e.tanh_constant, e.op_tanh_reduce, e.controller_temperature, e.baseline_decay,
            e.controller_hidden) == (2.5, 5.0, 5.0, 0.99, 64)
    assert (e.w_lr, e.w_lr_min, e.w_momentum, e.layers, e.channels) == (0.025, 0.001, 0.9, 9, 16)
    g = load_config(f"1shot1-ss{i}-gdas-cifar10").search
    assert (g.epochs, g.tau_max, g.tau_min, g.batch_size, g.grad_clip) == (
        100, 10.0, 1.0, 96, 5.0)  # gdas/train_search.py lines 27, 34, 44, 51, 52
    assert (g.arch_lr, tuple(g.arch_betas), g.arch_weight_decay, g.w_weight_decay) == (
        3e-4, (0.5, 0.999), 1e-3, 3e-4)
