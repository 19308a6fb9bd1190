import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_SEARCH
from nasforge.cli import main
from nasforge.config import SearchConfig, load_config, save_config
from nasforge.derive import derive
from nasforge.errors import NasforgeError
from nasforge.runtime import autocast, load_run_config
from nasforge.search import STRATEGIES
from nasforge.search.base import StepContext
from nasforge.search.loop import run_search
from nasforge.search.sgas import PRUNED, SGAS, UNDECIDED, sgas_scores
from nasforge.spaces.darts.genotype import PRIMITIVES
from nasforge.spaces.darts.search_network import SearchNetwork

SEP3 = PRIMITIVES.index("sep_conv_3x3")
DIL5 = PRIMITIVES.index("dil_conv_5x5")


def _setup(seed: int = 0, **cfg):
    torch.manual_seed(seed)
    net = SearchNetwork(4, 3, 3, 2, in_channels=1)  # 2 nodes: edges 0-1 → node 2, 2-4 → node 3
    strategy = SGAS(net, SearchConfig(algo="sgas", **cfg))
    g = torch.Generator().manual_seed(123)
    x, xa = torch.randn(6, 1, 8, 8, generator=g), torch.randn(6, 1, 8, 8, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    w_opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ctx = StepContext(w_optimizer=w_opt, w_lr=0.1, autocast=lambda: autocast(x.device, None))
    return net, strategy, (x, y), (xa, y), ctx


def _hand_scores(alpha: list[list[float]]) -> list[float]:
    """Criterion 1 with plain floats: op 0 is 'none'."""
    ei, sc = [], []
    for row in alpha:
        z = sum(math.exp(a) for a in row)
        p = [math.exp(a) / z for a in row]
        importance = sum(p[1:])
        q = [v / importance for v in p[1:]]
        entropy = -sum(v * math.log(v) for v in q if v > 0)
        ei.append(importance)
        sc.append(1 - entropy / math.log(len(q)))

    def norm(v):
        lo, hi = min(v), max(v)
        return [(x - lo) / (hi - lo) if hi > lo else 0.0 for x in v]

    return [a * b for a, b in zip(norm(ei), norm(sc), strict=True)]


ALPHA = [
    [0.0, 0.1, -0.2, 0.3, 1.5, 0.0, 0.2, -0.1],
    [2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [-1.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0],
    [0.3, -0.3, 0.6, -0.6, 0.9, -0.9, 1.2, -1.2],
]


def test_scores_equal_a_hand_computation():
    got = sgas_scores(torch.tensor(ALPHA), PRIMITIVES)
    assert got.tolist() == pytest.approx(_hand_scores(ALPHA), abs=1e-6)
    # both factors are min-max normalised over all edges, so scores lie in [0, 1]
    assert got.min() >= 0.0 and got.max() <= 1.0
    # a constant factor normalises to 0 (SGAS's normalize), so every score is 0
    flat = torch.zeros(5, 8)
    assert torch.equal(sgas_scores(flat, PRIMITIVES), torch.zeros(5, dtype=torch.float64))


def test_decision_epochs_fix_the_best_undecided_edge_to_its_argmax_op():
    _, strategy, *_ = _setup(decision_start=1, decision_every=2)
    with torch.no_grad():
        for a in strategy.alphas.values():
            a.copy_(torch.tensor(ALPHA))
    expected_edge = int(torch.tensor(_hand_scores(ALPHA)).argmax())
    expected_op = 1 + int(torch.tensor(ALPHA[expected_edge][1:]).argmax())
    strategy.start_epoch(0, 10)
    strategy.start_epoch(1, 10)  # after epoch 0 < decision_start: nothing
    assert (strategy.choice_normal == UNDECIDED).all()
    strategy.start_epoch(2, 10)  # after epoch 1: the first decision
    for c in ("normal", "reduce"):
        choice = strategy.choices(c).tolist()
        assert choice[expected_edge] == expected_op
        assert sum(v != UNDECIDED for v in choice) == 1
    assert int(strategy.decided_after) == 1
    strategy.start_epoch(2, 10)  # called again: no second decision
    strategy.start_epoch(3, 10)  # after epoch 2: (2 - 1) % 2 != 0
    assert sum(v != UNDECIDED for v in strategy.choice_normal.tolist()) == 1
    strategy.start_epoch(4, 10)  # after epoch 3: the second decision, best remaining edge
    scores = torch.tensor(_hand_scores(ALPHA))
    scores[expected_edge] = -math.inf
    second = int(scores.argmax())
    assert strategy.choice_normal[second] != UNDECIDED
    # fixed edges weigh a constant one-hot, the rest softmax(α)
    w = strategy.op_weights()["normal"]
    assert torch.equal(w[expected_edge], F.one_hot(torch.tensor(expected_op), 8).float())
    undecided = [e for e in range(5) if strategy.choice_normal[e] == UNDECIDED]
    assert torch.allclose(w[undecided], F.softmax(torch.tensor(ALPHA)[undecided], -1))


def _peak(strategy, edge: int, op: int) -> None:
    with torch.no_grad():
        for a in strategy.alphas.values():
            a[edge].zero_()
            a[edge, op] = 5.0


def _grads(module) -> list:
    return [p.grad for p in module.parameters()]


def test_pruned_and_unchosen_ops_get_no_gradient_and_frozen_alpha_stays():
    net, strategy, bw, ba, ctx = _setup()
    _peak(strategy, 2, SEP3)
    assert strategy.decide() == {"normal": (2, SEP3), "reduce": (2, SEP3)}
    _peak(strategy, 3, DIL5)
    assert strategy.decide()["normal"] == (3, DIL5)
    # node 3 now has 2 fixed edges: its third edge (4) is pruned; node 2 stays undecided
    assert strategy.choice_normal.tolist() == [UNDECIDED, UNDECIDED, SEP3, DIL5, PRUNED]
    assert strategy.choice_reduce.tolist() == strategy.choice_normal.tolist()
    w = strategy.op_weights()
    assert torch.equal(w["reduce"][4], torch.zeros(8))

    x, y = bw
    F.cross_entropy(net(x, {k: v.detach() for k, v in w.items()}), y).backward()
    for cell in net.cells:
        for k, op in enumerate(cell.ops[4].ops):  # pruned edge: nothing runs
            assert all(g is None for g in _grads(op)), k
        for e, chosen in ((2, SEP3), (3, DIL5)):
            for k, op in enumerate(cell.ops[e].ops):
                grads = _grads(op)
                if k == chosen:
                    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
                else:
                    assert all(g is None for g in grads), (e, k)
        # undecided edges still run and train every op that has parameters
        assert all(g is not None for g in _grads(cell.ops[0].ops[SEP3]))

    before = {c: a.detach().clone() for c, a in strategy.alphas.items()}
    opt = strategy.make_arch_optimizer()
    for _ in range(2):  # Adam's momentum and weight decay must not move frozen rows either
        strategy.arch_step(net, bw, ba, opt, ctx)
    for c, a in strategy.alphas.items():
        assert torch.equal(a[2:], before[c][2:])
        assert not torch.equal(a[:2], before[c][:2])
    # the argmax derivation yields the fixed edges and ops of node 3
    genotype = derive("argmax", strategy.strengths(), nodes=2)
    node3 = sorted((op, i) for op, i, n in genotype.normal.ops if n == 3)
    assert node3 == sorted([("sep_conv_3x3", 0), ("dil_conv_5x5", 1)])


def test_decisions_are_in_the_state_dict():
    _, a, *_ = _setup(0, decision_start=0)
    _peak(a, 1, SEP3)
    a.start_epoch(1, 5)
    _, b, *_ = _setup(1, decision_start=0)
    b.load_state_dict(a.state_dict())
    assert torch.equal(b.choice_normal, a.choice_normal) and int(b.decided_after) == 0
    b.start_epoch(1, 5)  # already applied before the checkpoint: not repeated
    assert torch.equal(b.choice_normal, a.choice_normal)


def test_second_order_is_rejected():
    with pytest.raises(NasforgeError, match="first-order only"):
        _setup(order="second")


def test_search_decides_and_resume_reproduces_the_full_run(capsys, tmp_path, small_proxy,
                                                          one_thread):
    sets = [*TINY_SEARCH, "search.decision_start=0", "search.decision_every=1"]
    full = tmp_path / "full"
    run_search(load_config(None, [*sets, f"data.proxy={small_proxy}", "search.algo=sgas",
                                  "search.epochs=3"]), full)
    history = [json.loads(ln) for ln in (full / "strengths.jsonl").read_text().splitlines()]

    def fixed(record, cell):  # rows that are an exact one-hot
        return sum(sorted(row)[-1] == 1.0 and sum(row) == 1.0 for row in record[cell])

    # decisions after epochs 0 and 1: one, then two fixed edges per cell type
    assert [fixed(r, "normal") for r in history] == [0, 1, 2]
    assert [fixed(r, "reduce") for r in history] == [0, 1, 2]

    part = tmp_path / "part"
    args = [a for s in [*sets, "search.epochs=1"] for a in ("--set", s)]
    assert main(["search", "--algo", "sgas", "--dataset", "digits", "--proxy",
                 str(small_proxy), "--out", str(part), *args]) == 0
    capsys.readouterr()
    cfg = load_run_config(part)
    cfg.search.epochs = 3
    save_config(cfg, part / "config.yaml")
    assert main(["search", "--resume", str(part)]) == 0
    for name in ("strengths.json", "genotype.txt"):
        assert (part / name).read_text() == (full / name).read_text()


@pytest.mark.parametrize("name", ["sgas-cifar10", "sgas-digits"])
def test_configs_load(name):
    cfg = load_config(name)
    assert cfg.search.algo == "sgas" and "sgas" in STRATEGIES.names()
    assert cfg.search.order == "first"
    if name == "sgas-cifar10":
        assert (cfg.search.epochs, cfg.search.decision_start, cfg.search.decision_every) == (
            50, 9, 5)
    else:  # enough epochs for all 2 * nodes decisions of a cell
        s = cfg.search
        assert s.decision_start + (2 * s.nodes - 1) * s.decision_every < s.epochs - 1
