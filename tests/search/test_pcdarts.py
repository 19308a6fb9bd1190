import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_SEARCH
from nasforge.analysis.landscape import load_search_run
from nasforge.config import SearchConfig, load_config
from nasforge.errors import NasforgeError
from nasforge.runtime import autocast
from nasforge.search.base import StepContext
from nasforge.search.loop import run_search
from nasforge.search.pcdarts import PCDARTS, PartialChannelMixedOp, channel_shuffle
from nasforge.spaces.darts.genotype import PRIMITIVES, parse_genotype, validate_genotype
from nasforge.spaces.darts.search_network import SearchNetwork
from nasforge.spaces.darts.spaces import SPACES


def _shuffle_by_index(x, k):
    """Channel shuffle written out: output channel j·K + g is input channel g·(C/K) + j."""
    c = x.shape[1]
    return x[:, [g * (c // k) + j for j in range(c // k) for g in range(k)]]


def _record_inputs(mixed):
    seen = []
    for op in mixed.ops:
        op.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1]))
    return seen


def test_channel_shuffle_matches_index_form():
    x = torch.randn(2, 12, 3, 3)
    assert torch.equal(channel_shuffle(x, 4), _shuffle_by_index(x, 4))
    assert torch.equal(channel_shuffle(x, 1), x)


@pytest.mark.parametrize("stride", [1, 2])
def test_partial_mixed_op_runs_c_over_k_channels_and_shuffles(stride):
    torch.manual_seed(0)
    mixed = PartialChannelMixedOp(8, stride, PRIMITIVES, k=4).eval()
    seen = _record_inputs(mixed)
    x = torch.randn(2, 8, 6, 6)
    w = F.softmax(torch.randn(len(PRIMITIVES)), -1)
    out = mixed(x, w)
    # C/K = 2 channels enter every candidate op that runs (all but none: a zero term)
    assert seen == [2] * (len(PRIMITIVES) - 1)
    processed = sum(w[k] * op(x[:, :2]) for k, op in enumerate(mixed.ops))
    bypass = x[:, 2:] if stride == 1 else F.max_pool2d(x[:, 2:], 2, 2)
    expected = _shuffle_by_index(torch.cat([processed, bypass], 1), 4)
    assert out.shape == (2, 8, 6 // stride, 6 // stride)
    assert torch.allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("stride", [1, 2])
def test_k_1_is_the_plain_mixed_op(stride):
    """partial_k=1 sends every channel through the ops (no bypass): the plain DARTS mixed op
    with the same weights (it crashed on the empty bypass of stride-2 edges before)."""
    torch.manual_seed(0)
    mixed = PartialChannelMixedOp(4, stride, PRIMITIVES, k=1).eval()
    x = torch.randn(2, 4, 6, 6)
    w = F.softmax(torch.randn(len(PRIMITIVES)), -1)
    expected = sum(w[k] * op(x) for k, op in enumerate(mixed.ops))
    out = mixed(x, w)
    assert out.shape == (2, 4, 6 // stride, 6 // stride)
    assert torch.allclose(out, expected, atol=1e-6)


def test_edge_weight_scales_the_whole_mixed_op_bypass_included():
    """Weights softmax(α)·b make the edge b · MixedOp(x): the edge-normalised node term."""
    torch.manual_seed(0)
    mixed = PartialChannelMixedOp(8, 2, PRIMITIVES, k=4).eval()
    x = torch.randn(2, 8, 6, 6)
    w = F.softmax(torch.randn(len(PRIMITIVES)), -1)
    assert torch.allclose(mixed(x, 0.3 * w), 0.3 * mixed(x, w), atol=1e-6)


def _setup(nodes=2, **cfg):
    torch.manual_seed(0)
    net = SearchNetwork(4, 3, 3, nodes, in_channels=1)
    strategy = PCDARTS(net, SearchConfig(algo="pcdarts", arch_init_std=0.5, **cfg))
    return net, strategy


def test_strategy_swaps_in_partial_ops_and_owns_only_alpha_and_beta(one_thread):
    net, strategy = _setup()
    for cell in net.cells:
        C = cell.out_channels // cell.nodes
        for e, (i, _) in enumerate(cell.edges):
            op = cell.ops[e]
            assert isinstance(op, PartialChannelMixedOp) and op.k == 4 and op.C == C
            assert op.stride == (2 if cell.reduction and i < 2 else 1)
    assert sorted(n for n, _ in strategy.named_parameters()) == [
        "alphas.normal", "alphas.reduce", "betas.normal", "betas.reduce"]
    assert strategy.betas["normal"].shape == (5,)
    seen = []
    for cell in net.cells:
        for m in cell.ops:
            for op in m.ops:
                op.register_forward_pre_hook(
                    lambda _m, a, C=m.C: seen.append((a[0].shape[1], C // 4)))
    net(torch.randn(2, 1, 8, 8), strategy.op_weights())
    assert seen and all(got == want for got, want in seen)


def test_edge_normalisation_by_hand():
    _, strategy = _setup()
    for c in ("normal", "reduce"):
        a, b = strategy.alphas[c].detach(), strategy.betas[c].detach()
        # nodes=2: edges 0,1 enter node 2 and edges 2,3,4 enter node 3
        e = torch.cat([b[:2].exp() / b[:2].exp().sum(), b[2:].exp() / b[2:].exp().sum()])
        expected = a.exp() / a.exp().sum(-1, keepdim=True) * e[:, None]
        assert torch.allclose(strategy.op_weights()[c], expected, atol=1e-6)
        assert torch.allclose(strategy.strengths()[c], expected, atol=1e-6)


def test_arch_step_updates_alpha_and_beta_only(one_thread):
    net, strategy = _setup()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 1, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    ctx = StepContext(w_optimizer=torch.optim.SGD(net.parameters(), lr=0.1), w_lr=0.1,
                      autocast=lambda: autocast(x.device, None))
    before = {n: p.detach().clone() for n, p in strategy.named_parameters()}
    strategy.arch_step(net, (x, y), (x, y), strategy.make_arch_optimizer(), ctx)
    for n, p in strategy.named_parameters():
        assert (p.detach() - before[n]).abs().max() > 0.5 * strategy.cfg.arch_lr, n
    assert all(p.grad is None for p in net.parameters())


def test_per_edge_spaces_keep_their_ops(one_thread):
    space = SPACES.get("s1")
    torch.manual_seed(0)
    net = SearchNetwork(4, 3, 3, 4, in_channels=1, primitives=space.primitives,
                        op_mask=space.op_mask(4))
    held = [list(m.allowed) for cell in net.cells for m in cell.ops]
    strategy = PCDARTS(net, SearchConfig(algo="pcdarts"))
    assert [list(m.allowed) for cell in net.cells for m in cell.ops] == held
    assert all(isinstance(m, PartialChannelMixedOp) and len(m.ops) == 2
               for cell in net.cells for m in cell.ops)
    w = strategy.op_weights()
    for kind in ("normal", "reduce"):
        assert not w[kind].detach()[~net.op_mask[kind]].any()
    assert net(torch.randn(2, 1, 8, 8), w).shape == (2, 3)


def test_rejects_second_order_and_indivisible_channels():
    with pytest.raises(NasforgeError, match="pcdarts is first-order only"):
        _setup(order="second")
    with pytest.raises(NasforgeError, match="divisible"):
        _setup(partial_k=3)


def test_one_epoch_on_digits_and_reload(proxy_file, tmp_path, one_thread):
    cfg = load_config(None, [*TINY_SEARCH, f"data.proxy={proxy_file}", "search.epochs=1",
                             "search.algo=pcdarts"])
    results = run_search(cfg, tmp_path / "r")
    assert results["algo"] == "pcdarts" and results["cost"]["epochs"] == 1
    validate_genotype(parse_genotype(results["genotype"]), nodes=2)
    run = load_search_run(tmp_path / "r")  # the checkpoint reloads into a rebuilt network
    assert isinstance(run.network.cells[0].ops[0], PartialChannelMixedOp)


def test_configs():
    cifar = load_config("pcdarts-cifar10").search
    assert (cifar.algo, cifar.batch_size, cifar.w_lr, cifar.w_lr_min, cifar.partial_k,
            cifar.warmup_epochs, cifar.arch_lr) == ("pcdarts", 256, 0.1, 0.0, 4, 15, 6e-4)
    digits = load_config("pcdarts-digits").search
    assert (digits.algo, digits.warmup_epochs, digits.channels % digits.partial_k) == (
        "pcdarts", 1, 0)
