import math

import pytest
import torch
import torch.nn.functional as F

from nasforge.config import SearchConfig, load_config
from nasforge.errors import NasforgeError
from nasforge.runtime import autocast
from nasforge.search import STRATEGIES
from nasforge.search.base import CELL_TYPES, StepContext
from nasforge.search.prdarts import PRDARTS, hard_concrete_gates
from nasforge.spaces.darts.search_network import SearchNetwork
from nasforge.spaces.darts.spaces import SPACES


def _setup(seed: int = 0, primitives=None, **cfg):
    torch.manual_seed(seed)
    kwargs = {} if primitives is None else {"primitives": primitives}
    net = SearchNetwork(4, 3, 3, 2, in_channels=1, **kwargs)
    strategy = PRDARTS(net, SearchConfig(algo="prdarts", **cfg))
    g = torch.Generator().manual_seed(123)
    x, xa = torch.randn(6, 1, 8, 8, generator=g), torch.randn(6, 1, 8, 8, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    w_opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ctx = StepContext(w_optimizer=w_opt, w_lr=0.1, autocast=lambda: autocast(x.device, None))
    return net, strategy, (x, y), (xa, y), ctx


def test_registered_and_sparse():
    net, strategy, *_ = _setup()
    assert STRATEGIES.get("prdarts") is PRDARTS and PRDARTS.sparse and net.sparse


@pytest.mark.parametrize("keep", [1, 2, 3])
def test_exactly_keep_ops_ops_run_per_edge(keep):
    net, strategy, batch, *_ = _setup(keep_ops=keep)
    calls = {}
    handles = []
    for c, cell in enumerate(net.cells):
        for e, mixed in enumerate(cell.ops):
            calls[(c, e)] = []
            for k, op in enumerate(mixed.ops):
                handles.append(op.register_forward_hook(
                    lambda *_, key=(c, e), k=k: calls[key].append(k)))
    draw = strategy.sample()
    net(batch[0], {c: g.weights for c, g in draw.items()})
    for h in handles:
        h.remove()
    for (c, e), ran in calls.items():
        kind = "reduce" if net.cells[c].reduction else "normal"
        mask = draw[kind].mask[e]
        assert len(ran) == keep and sorted(ran) == mask.nonzero()[:, 0].tolist()
    for g in draw.values():  # the weights are exactly the mask in value
        assert torch.equal(g.weights.detach(), g.mask)
        assert torch.equal(g.mask.sum(-1), torch.full((5,), float(keep)))


def test_gates_follow_the_stretched_clamped_sigmoid_and_lie_in_the_unit_interval():
    gen = torch.Generator().manual_seed(0)
    alpha = 3 * torch.randn(200, 8, generator=gen)
    u = torch.rand(200, 8, generator=gen)
    for tau in (1.0, 0.3, 0.1):
        s = hard_concrete_gates(alpha, tau, u)
        z = (alpha + torch.log(u) - torch.log(1 - u)) / tau
        expected = (1 / (1 + torch.exp(-z)) * 1.2 - 0.1).clamp(0, 1)
        assert torch.allclose(s, expected, atol=1e-6)
        assert ((s >= 0) & (s <= 1)).all()
        assert (s == 0).any() and (s == 1).any()  # the stretch makes exact 0s and 1s
    _, strategy, *_ = _setup(arch_init_std=3.0)
    for _ in range(5):
        for g in strategy.sample().values():
            assert ((g.gates >= 0) & (g.gates <= 1)).all()


def _hand_regulariser(alpha, masks, primitives, tau, hinge, lambdas, chain):
    """R as docs/zoo.md (PR-DARTS) defines it, with plain Python loops."""
    shift = -tau * math.log(0.1 / 1.1)

    def pi(c, e, k):
        return 1.0 / (1.0 + math.exp(-(alpha[c][e][k] + shift)))

    groups = {"skip": {"skip_connect"}, "pool": {"max_pool_3x3", "avg_pool_3x3"}}
    groups["nonskip"] = set(primitives) - groups["skip"] - groups["pool"]
    values = {}
    for name, members in groups.items():
        total = 0.0
        for c in CELL_TYPES:
            picked = [pi(c, e, k) for e in range(len(masks[c])) for k, p in enumerate(primitives)
                      if masks[c][e][k] and p in members]
            total += 0.5 * (sum(picked) / len(picked) if picked else 0.0)
        values[name] = max(0.0, total - hinge)
    convs = [k for k, p in enumerate(primitives) if "conv" in p]
    path = 0.0
    for c in CELL_TYPES:
        means = []
        for e in chain:
            picked = [pi(c, e, k) for k in convs if masks[c][e][k]]
            if picked:
                means.append(sum(picked) / len(picked))
        path += 0.5 * (math.prod(means) if means else 0.0)
    l1, l2, l3 = lambdas
    return l1 * values["skip"] + l2 * (values["nonskip"] + values["pool"]) - l3 * path


def _rows(picks, K):
    return [[1.0 if k in row else 0.0 for k in range(K)] for row in picks]


def test_regulariser_matches_a_hand_computation():
    # DARTS op order: none 0, max_pool 1, avg_pool 2, skip 3, sep3 4, sep5 5, dil3 6, dil5 7
    _, strategy, *_ = _setup(reg_hinge=0.05, reg_weights=(0.3, 0.2, 0.1))
    strategy.tau = 0.5
    with torch.no_grad():
        strategy.alphas["normal"].copy_(torch.linspace(-2, 2, 40).reshape(5, 8))
        strategy.alphas["reduce"].copy_(torch.linspace(1.5, -2.5, 40).reshape(5, 8))
    assert strategy.chain == [1, 4]  # node 2 <- c_{k-1}, node 3 <- node 2
    masks = {
        # chain edges 1 and 4 both keep convs in the normal cell
        "normal": _rows([{3, 4}, {4, 7}, {0, 1}, {2, 3}, {5, 3}], 8),
        # no chain edge keeps a conv in the reduce cell: its path term is 0
        "reduce": _rows([{1, 2}, {3, 0}, {4, 6}, {0, 1}, {2, 3}], 8),
    }
    alpha = {c: strategy.alphas[c].detach().double().tolist() for c in CELL_TYPES}
    expected = _hand_regulariser(alpha, masks, list(strategy.primitives), 0.5, 0.05,
                                 (0.3, 0.2, 0.1), [1, 4])
    got = strategy.regulariser({c: torch.tensor(m) for c, m in masks.items()})
    assert got.item() == pytest.approx(expected, rel=1e-5)
    assert expected != 0.0
    # π is counted on the kept ops only: the gradient never reaches an unkept op's α
    got.backward()
    for c in CELL_TYPES:
        unkept = torch.tensor(masks[c]) == 0
        assert (strategy.alphas[c].grad[unkept] == 0).all()


def test_regulariser_with_a_space_lacking_groups():
    # s3 = (none, sep_conv_3x3, skip_connect): no pool; random draws, hinge 0
    ops = SPACES.get("s3").primitives
    _, strategy, *_ = _setup(1, ops, reg_hinge=0.0, reg_weights=(0.3, 0.2, 0.1),
                             arch_init_std=1.0)
    assert strategy.groups["pool"] == []
    for _ in range(3):
        masks = {c: g.mask for c, g in strategy.sample().items()}
        alpha = {c: strategy.alphas[c].detach().double().tolist() for c in CELL_TYPES}
        expected = _hand_regulariser(alpha, {c: m.tolist() for c, m in masks.items()},
                                     list(ops), strategy.tau, 0.0, (0.3, 0.2, 0.1), [1, 4])
        assert strategy.regulariser(masks).item() == pytest.approx(expected, rel=1e-5)


def test_op_dropout_probability_and_its_effect_on_the_selection():
    _, strategy, *_ = _setup(op_dropout=0.4, tau_max=1.0)
    with torch.no_grad():  # every gate saturates at 1: only dropout and ties decide
        for a in strategy.alphas.values():
            a.fill_(40.0)
    dropped, picked, n = 0.0, torch.zeros(8), 0
    for _ in range(200):
        for g in strategy.sample().values():
            assert torch.equal(g.gates, torch.ones_like(g.gates))
            dropped += g.dropped.sum().item()
            survivors = 1 - g.dropped
            for e in range(5):
                if survivors[e].sum() >= 2:  # kept ops come from the survivors
                    assert (g.mask[e] <= survivors[e]).all()
                else:  # too few survivors: all of them are kept
                    assert (g.mask[e] >= survivors[e]).all()
            picked += g.mask.sum(0)
            n += 5
    total = 200 * 2 * 5 * 8
    stderr = math.sqrt(0.4 * 0.6 / total)
    assert abs(dropped / total - 0.4) < 4 * stderr
    # ties are broken at random: every op is kept about k/K = 1/4 of the time
    assert torch.allclose(picked / n, torch.full((8,), 0.25), atol=0.05)
    _, none, *_ = _setup(op_dropout=0.0)
    assert all((g.dropped == 0).all() for g in none.sample().values())


def test_sampling_is_seeded_and_resumable_and_leaves_the_global_rng_alone():
    _, a, *_ = _setup(3)
    _, b, *_ = _setup(3)
    rng = torch.get_rng_state()
    first, twin = a.op_weights(), b.op_weights()
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(first[c], twin[c]) for c in CELL_TYPES)
    later = [a.op_weights()["normal"] for _ in range(4)]
    assert any(not torch.equal(w, first["normal"]) for w in later) and a.draws == 5
    _, c, *_ = _setup(11)
    c.load_state_dict(a.state_dict())
    got, expected = c.op_weights(), a.op_weights()
    assert all(torch.equal(got[k], expected[k]) for k in CELL_TYPES)


def test_arch_step_tau_eval_and_strengths():
    net, strategy, bw, ba, ctx = _setup(tau_max=1.0, tau_min=0.1)
    strategy.start_epoch(0, 10)
    assert strategy.tau == 1.0
    strategy.start_epoch(9, 10)
    assert strategy.tau == pytest.approx(0.1)
    before = {c: a.detach().clone() for c, a in strategy.alphas.items()}
    strategy.arch_step(net, bw, ba, strategy.make_arch_optimizer(), ctx)
    assert strategy.draws == 1 and all(p.grad is None for p in net.parameters())
    assert all(not torch.equal(before[c], strategy.alphas[c]) for c in CELL_TYPES)
    w = strategy.weight_step_weights(net, bw, ctx)
    assert all(not v.requires_grad for v in w.values()) and strategy.draws == 2
    ev = strategy.eval_weights()
    for c, a in strategy.alphas.items():
        top2 = a.detach().topk(2, dim=-1).indices.sort(-1).values
        assert torch.equal(ev[c].nonzero()[:, 1].reshape(5, 2), top2)
        assert torch.allclose(strategy.strengths()[c], F.softmax(a.detach(), -1))
    assert strategy.draws == 2  # evaluation and strengths draw nothing


def test_second_order_is_rejected():
    with pytest.raises(NasforgeError, match="prdarts is first-order only"):
        _setup(order="second")


@pytest.mark.parametrize("name", ["prdarts-cifar10", "prdarts-digits"])
def test_configs_load(name):
    s = load_config(name).search
    assert s.algo == "prdarts" and (s.tau_max, s.tau_min) == (1.0, 0.1)
    assert (s.keep_ops, s.op_dropout, tuple(s.reg_weights), s.reg_hinge) == (
        2, 0.4, (0.01, 0.005, 0.005), 0.2)
    if name == "prdarts-cifar10":
        assert (s.epochs, s.batch_size, s.layers, s.channels, s.w_weight_decay) == (
            200, 250, 6, 16, 5e-4)


def test_per_edge_spaces_never_keep_an_op_the_edge_does_not_hold():
    if "s1" not in SPACES.names():
        pytest.skip("no per-edge space registered")
    space = SPACES.get("s1")
    torch.manual_seed(0)
    net = SearchNetwork(4, 3, 3, 4, in_channels=1, primitives=space.primitives,
                        op_mask=space.op_mask(4))
    strategy = PRDARTS(net, SearchConfig(algo="prdarts", space="s1", keep_ops=3,
                                         arch_init_std=1.0))
    held = space.op_mask(4)
    for _ in range(20):
        for c, g in strategy.sample().items():
            assert (g.mask[~held[c]] == 0).all() and (g.weights.detach()[~held[c]] == 0).all()
    for c in CELL_TYPES:
        assert (strategy.eval_weights()[c][~held[c]] == 0).all()
        assert (strategy.strengths()[c][~held[c]] == 0).all()
    x = torch.randn(2, 1, 8, 8)
    strategy.arch_step(net, (x, torch.tensor([0, 1])), (x, torch.tensor([0, 1])),
                       strategy.make_arch_optimizer(),
                       StepContext(w_optimizer=None, w_lr=0.1,
                                   autocast=lambda: autocast(x.device, None)))
    assert all(torch.isfinite(a).all() for a in strategy.alphas.values())
