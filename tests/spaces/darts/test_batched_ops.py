"""The batched formulation of the DARTS super-network equals the plain one.

Same weights → same output, same gradients w.r.t. the network's parameters and the
strategy's architecture parameters, same BatchNorm running statistics: for every registered
strategy (dense and sparse weights, PC-DARTS's partial channels, GDAS's hard samples), every
restricted space (per-edge op sets of S1, none of S3, noise of S4), eval mode, channels_last,
and a checkpoint of one formulation loaded into the other.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from nasforge.benchmarks.step import SearchStep
from nasforge.errors import NasforgeError
from nasforge.search.base import STRATEGIES
from nasforge.spaces.darts.search_network import DEFAULT_MIXED_OP, SearchNetwork
from nasforge.spaces.darts.spaces import SPACES

ATOL = 2e-5


def _pass(network, strategy, x, y, mode: str, weights_of, seed: int) -> dict:
    """Forward + backward in ``mode``; outputs, gradients and buffers afterwards."""
    net, strat = copy.deepcopy(network), copy.deepcopy(strategy)
    net.mixed_op = mode
    torch.manual_seed(seed)
    weights = weights_of(net, strat)
    torch.manual_seed(seed + 1)  # noise ops draw here
    out = net(x, weights)
    F.cross_entropy(out, y).backward()
    return {
        "out": out.detach(),
        "grads": {n: p.grad for n, p in net.named_parameters()},
        "arch": [p.grad for p in strat.arch_parameters()],
        "buffers": {n: b.clone() for n, b in net.named_buffers()},
    }


def _assert_same(a: dict, b: dict) -> None:
    torch.testing.assert_close(a["out"], b["out"], atol=ATOL, rtol=1e-4)
    assert a["grads"].keys() == b["grads"].keys()
    for name, ga in a["grads"].items():
        gb = b["grads"][name]
        # an op that did not run gets no gradient in either formulation
        assert (ga is None) == (gb is None), name
        if ga is not None:
            torch.testing.assert_close(ga, gb, atol=ATOL, rtol=1e-4, msg=name)
    for ga, gb in zip(a["arch"], b["arch"], strict=True):
        assert (ga is None) == (gb is None)
        if ga is not None:
            torch.testing.assert_close(ga, gb, atol=ATOL, rtol=1e-4)
    for name, ba in a["buffers"].items():
        torch.testing.assert_close(ba.float(), b["buffers"][name].float(), atol=ATOL,
                                   rtol=1e-4, msg=name)


def _compare(run: SearchStep, seed: int = 0) -> None:
    """Both formulations on the architecture weights and on the weight step's weights."""
    x, y = run.data[0]
    for weights_of in (lambda net, strat: strat.op_weights(),
                       lambda net, strat: strat.weight_step_weights(net, run.data[1],
                                                                    run.ctx)):
        plain = _pass(run.network, run.strategy, x, y, "plain", weights_of, seed)
        batched = _pass(run.network, run.strategy, x, y, "batched", weights_of, seed)
        _assert_same(plain, batched)


def _tiny(algo: str, nodes: int = 3, **kw) -> SearchStep:
    return SearchStep(algo, channels=8, layers=3, batch=6, resolution=8, device="cpu",
                      nodes=nodes, **kw)


@pytest.mark.parametrize("algo", sorted(STRATEGIES.names()))
def test_every_strategy_gets_the_same_output_and_gradients(algo):
    try:
        run = _tiny(algo)
    except NasforgeError as err:  # e.g. random search: no super-network to train
        pytest.skip(str(err))
    run.step(0)  # one search step first: BN statistics and architecture away from init
    _compare(run)


@pytest.mark.parametrize("space", ["s1", "s2", "s3", "s4"])
@pytest.mark.parametrize("algo", ["darts", "gdas"])
def test_restricted_spaces(space, algo):
    s = SPACES.get(space)
    torch.manual_seed(0)
    network = SearchNetwork(8, 10, 3, 4, primitives=s.primitives, op_mask=s.op_mask(4))
    run = _tiny(algo, nodes=4, make_network=lambda *a: network)
    run.step(0)
    _compare(run)


def test_eval_mode_uses_the_running_statistics_alike():
    run = _tiny("darts")
    run.step(0)
    run.step(1)
    net = run.network.eval()
    x, _ = run.data[2]
    with torch.no_grad():
        weights = run.strategy.op_weights()
        net.mixed_op = "plain"
        plain = net(x, weights)
        net.mixed_op = "batched"
        batched = net(x, weights)
    torch.testing.assert_close(plain, batched, atol=ATOL, rtol=1e-4)


def test_channels_last_and_sparse_edges_without_ops():
    run = _tiny("darts", channels_last=True)
    run.network.sparse = True
    E, K = run.network.arch_shape
    weights = torch.softmax(torch.randn(E, K), -1)
    weights[0] = 0.0  # an edge with no op: skipped
    weights[1, 1:] = 0.0  # only none on this edge: zero term, still in the graph
    weights[2, :4] = 0.0  # convs only
    fixed = {"normal": weights, "reduce": weights.flip(0)}
    x, y = run.data[0]
    plain = _pass(run.network, run.strategy, x, y, "plain", lambda n, s: fixed, 0)
    batched = _pass(run.network, run.strategy, x, y, "batched", lambda n, s: fixed, 0)
    _assert_same(plain, batched)


def test_state_dicts_are_the_same_and_load_both_ways():
    torch.manual_seed(0)
    plain = SearchNetwork(8, 10, 3, 3, mixed_op="plain")
    batched = SearchNetwork(8, 10, 3, 3, mixed_op="batched")
    a, b = plain.state_dict(), batched.state_dict()
    assert list(a) == list(b)
    assert all(a[k].shape == b[k].shape for k in a)
    batched.load_state_dict(a)
    plain.load_state_dict(batched.state_dict())
    x = torch.randn(2, 3, 8, 8)
    w = {k: torch.softmax(torch.randn(9, 8), -1) for k in ("normal", "reduce")}
    plain.eval(), batched.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(x, w), batched(x, w), atol=ATOL, rtol=1e-4)


def test_unknown_formulation_is_a_user_error():
    assert DEFAULT_MIXED_OP in ("plain", "batched")
    with pytest.raises(NasforgeError, match="mixed_op"):
        SearchNetwork(4, 10, 3, 2, mixed_op="fused")
    net = SearchNetwork(4, 10, 3, 2)
    with pytest.raises(NasforgeError, match="mixed_op"):
        net.mixed_op = "fast"
    net.mixed_op = "batched"
    assert all(cell.mixed_op == "batched" for cell in net.cells)
