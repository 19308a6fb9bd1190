import math

import pytest
import torch

from nasforge.config import SearchConfig, load_config
from nasforge.derive import derive
from nasforge.runtime import autocast
from nasforge.search import STRATEGIES
from nasforge.search.base import StepContext
from nasforge.search.enas import ENAS
from nasforge.spaces.darts.genotype import PRIMITIVES
from nasforge.spaces.darts.search_network import SearchNetwork

SKIP = PRIMITIVES.index("skip_connect")


def _setup(seed: int = 0, nodes: int = 2, **cfg):
    torch.manual_seed(seed)
    net = SearchNetwork(4, 3, 3, nodes, in_channels=1)
    return net, ENAS(net, SearchConfig(algo="enas", nodes=nodes, **cfg))


def test_samples_have_two_distinct_inputs_and_one_non_none_op_each():
    net, strategy = _setup(nodes=4)
    assert net.sparse
    for _ in range(10):
        sample = strategy.sample()
        weights = strategy.arch_weights(sample.arch)
        for cell, choices in sample.arch.items():
            assert len(choices) == 4
            for node, (i1, o1, i2, o2) in enumerate(choices, 2):
                assert i1 != i2 and 0 <= i1 < node and 0 <= i2 < node
                assert PRIMITIVES[o1] != "none" and PRIMITIVES[o2] != "none"
            w = weights[cell]
            assert set(w.unique().tolist()) <= {0.0, 1.0}
            assert (w.sum(1) <= 1).all() and (w[:, 0] == 0).all()
            incoming = [(0, 2), (2, 5), (5, 9), (9, 14)]  # edges of nodes 2..5
            assert [int(w[a:b].sum()) for a, b in incoming] == [2, 2, 2, 2]
    assert strategy.draws == 10


def _manual_log_prob(s: ENAS, arch) -> float:
    """log π(arch) recomputed step by step from the controller's modules."""
    H, tc = s.cfg.controller_hidden, s.cfg.tanh_constant
    ops = [k for k, p in enumerate(PRIMITIVES) if p != "none"]
    fixed = torch.tensor([0.25 if PRIMITIVES[k] in ("sep_conv_3x3", "sep_conv_5x5") else -0.25
                          for k in ops])
    h, c = torch.zeros(1, H), torch.zeros(1, H)
    total = 0.0

    def logp(logits, k):
        p = torch.exp(logits) / torch.exp(logits).sum()
        return math.log(p[k].item())

    for cell in ("normal", "reduce"):
        x = s.g_emb
        anchors, hs = [], []
        for _ in range(2):
            h, c = s.lstm(x, (h, c))
            anchors.append(torch.zeros(1, H))
            hs.append(h)
        for node, (i1, o1, i2, o2) in enumerate(arch[cell], 2):
            for chosen, excluded in ((i1, None), (i2, i1)):
                h, c = s.lstm(x, (h, c))
                cands = [i for i in range(node) if i != excluded]
                scores = torch.stack([
                    (s.v_attn.weight[0] * torch.tanh(s.w_attn_1.weight @ hs[i][0]
                                                     + s.w_attn_2.weight @ h[0])).sum()
                    for i in cands])
                total += logp(tc * torch.tanh(scores), cands.index(chosen))
                x = anchors[chosen]
            for op in (o1, o2):
                h, c = s.lstm(x, (h, c))
                logits = (tc / 2.5) * torch.tanh(s.w_soft.weight @ h[0] + s.w_soft.bias)
                if cell == "normal":
                    logits = logits + fixed
                total += logp(logits, ops.index(op))
                x = s.w_emb[ops.index(op)][None]
            h, c = s.lstm(x, (h, c))
            anchors.append(h)
            hs.append(h)
            x = s.g_emb
    return total


def test_log_prob_of_a_sample_equals_an_independent_recomputation():
    _, strategy = _setup(3, nodes=3)
    with torch.no_grad():
        for _ in range(3):
            sample = strategy.sample()
            expected = _manual_log_prob(strategy, sample.arch)
            assert sample.log_prob.item() == pytest.approx(expected, abs=1e-4)
            assert strategy.log_prob_of(sample.arch).item() == pytest.approx(expected, abs=1e-4)
    # the op bias starts at 10 for the separable convolutions, 0 elsewhere
    bias = strategy.w_soft.bias.tolist()
    assert bias == [10.0 if "sep_conv" in p else 0.0 for p in PRIMITIVES if p != "none"]
    for p in strategy.parameters():
        if p is not strategy.w_soft.bias:
            assert p.abs().max() <= 0.1


def _skip_frequency(strategy: ENAS, n: int = 60) -> float:
    seed, draws = strategy.seed, strategy.draws
    strategy.draws = 10**6  # a fixed block of the stream, the same before and after training
    with torch.no_grad():
        archs = [strategy.sample().arch for _ in range(n)]
    strategy.seed, strategy.draws = seed, draws
    ops = [o for a in archs for ch in a.values() for node in ch for o in node[1::2]]
    return sum(o == SKIP for o in ops) / len(ops)


def test_policy_gradient_raises_the_probability_of_a_rewarded_op():
    _, strategy = _setup(0, tanh_constant=2.5, controller_lr=0.05, entropy_weight=0.0,
                         baseline_decay=0.9)
    opt = strategy.make_arch_optimizer()
    before = _skip_frequency(strategy)
    first = True
    for _ in range(40):
        sample = strategy.sample()
        ops = [o for ch in sample.arch.values() for node in ch for o in node[1::2]]
        reward = sum(o == SKIP for o in ops) / len(ops)
        strategy.reinforce(sample, reward, opt)
        if first:  # b ← b − (1 − 0.9)(b − R) from b = 0
            assert strategy.baseline.item() == pytest.approx(0.1 * reward)
            first = False
    after = _skip_frequency(strategy)
    # op logits are bounded by tanh (±1 here) and the sep convs keep their bias-10 prior, so
    # p(skip) can rise from ≈ 0.09 to at most ≈ 0.25; 40 updates more than double it
    assert after > 2 * before and after > before + 0.07, (before, after)


def test_arch_step_updates_only_the_controller_and_the_baseline():
    net, strategy = _setup(0, entropy_weight=0.5)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(6, 1, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2]))
    ctx = StepContext(w_optimizer=torch.optim.SGD(net.parameters(), lr=0.1), w_lr=0.1,
                      autocast=lambda: autocast(batch[0].device, None))
    before = [p.detach().clone() for p in strategy.parameters()]
    cpu_rng = torch.get_rng_state()
    strategy.arch_step(net, batch, batch, strategy.make_arch_optimizer(), ctx)
    assert torch.equal(torch.get_rng_state(), cpu_rng)  # sampling leaves the global RNG alone
    assert strategy.baseline.item() > 0  # the entropy bonus makes R > 0
    assert any(not torch.equal(p, q) for p, q in zip(strategy.parameters(), before,
                                                     strict=True))
    assert all(p.grad is None for p in net.parameters())
    # the weight step trains one freshly sampled architecture
    w = strategy.weight_step_weights(net, batch, ctx)
    assert strategy.draws == 2 and torch.equal(strategy.op_weights()["normal"], w["normal"])


def test_strengths_derive_the_greedy_architecture():
    _, strategy = _setup(2, nodes=4)
    strengths = strategy.strengths()
    assert all(torch.equal(strengths[c], strategy.strengths()[c]) for c in strengths)
    genotype = derive("argmax", strengths, nodes=4)
    greedy = strategy.greedy().arch
    for cell in ("normal", "reduce"):
        got = {(op, i, n) for op, i, n in getattr(genotype, cell).ops}
        want = {(PRIMITIVES[o], i, n) for n, (i1, o1, i2, o2) in enumerate(greedy[cell], 2)
                for i, o in ((i1, o1), (i2, o2))}
        assert got == want
    assert torch.equal(strategy.eval_weights()["normal"],
                       strategy.arch_weights(greedy)["normal"])


@pytest.mark.parametrize("name", ["enas-cifar10", "enas-digits"])
def test_configs_load(name):
    cfg = load_config(name)
    assert cfg.search.algo == "enas" and "enas" in STRATEGIES.names()
    s = cfg.search
    assert (s.controller_hidden, s.controller_lr, s.tanh_constant) == (64, 0.0035, 1.1)
    assert (s.entropy_weight, s.baseline_decay) == (1e-4, 0.99)
