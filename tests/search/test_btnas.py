import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from scipy import special

from conftest import TINY_SEARCH
from nasforge import derive as derive_module
from nasforge.checkpoint import load_checkpoint
from nasforge.cli import main
from nasforge.config import SearchConfig, load_config, save_config, shipped_configs
from nasforge.runtime import autocast, load_run_config
from nasforge.search import STRATEGIES
from nasforge.search.base import StepContext
from nasforge.search.btnas import BtNAS, kl_to_uniform
from nasforge.search.loop import derive_from_run, read_strengths, run_search
from nasforge.spaces.darts.genotype import cell_edges, parse_genotype, validate_genotype
from nasforge.spaces.darts.search_network import MixedOp, SearchNetwork
from nasforge.spaces.darts.spaces import SPACES


def _setup(seed: int = 0, primitives=None, **cfg):
    torch.manual_seed(seed)
    kwargs = {} if primitives is None else {"primitives": primitives}
    net = SearchNetwork(4, 3, 3, 2, in_channels=1, **kwargs)
    strategy = BtNAS(net, SearchConfig(algo="btnas", **cfg))
    g = torch.Generator().manual_seed(123)  # the same batches whatever the seed
    x, xa = torch.randn(6, 1, 8, 8, generator=g), torch.randn(6, 1, 8, 8, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    w_opt = torch.optim.SGD(net.parameters(), lr=0.1)
    ctx = StepContext(w_optimizer=w_opt, w_lr=0.1, autocast=lambda: autocast(x.device, None))
    return net, strategy, (x, y), (xa, y), ctx



def _cfg(proxy, *extra):
    return load_config(None, [*TINY_SEARCH, f"data.proxy={proxy}", "search.algo=btnas", *extra])


def test_pathwise_gradient_of_the_mean_matches_the_analytic_derivative():
    """d/dα E[θ] = β/(α+β)², d/dβ E[θ] = −α/(α+β)²; Monte-Carlo within 4 standard errors."""
    torch.manual_seed(0)
    n, a0, b0 = 200_000, 2.5, 4.0
    a = torch.full((n,), a0, dtype=torch.float64, requires_grad=True)
    b = torch.full((n,), b0, dtype=torch.float64, requires_grad=True)
    theta = torch.distributions.Beta(a, b).rsample()
    theta.sum().backward()  # per-sample pathwise derivatives dθ_i/dα, dθ_i/dβ
    assert theta.mean().item() == pytest.approx(a0 / (a0 + b0), abs=4 * theta.std().item()
                                                / math.sqrt(n))
    for grad, exact in ((a.grad, b0 / (a0 + b0) ** 2), (b.grad, -a0 / (a0 + b0) ** 2)):
        stderr = grad.std().item() / math.sqrt(n)
        assert abs(grad.mean().item() - exact) < 4 * stderr, (grad.mean().item(), exact)
        assert stderr < 0.02 * abs(exact)  # the check is tight enough to mean something


def _kl_reference(a, b):
    """KL(Beta(a,b) ‖ Beta(1,1)) = ln B(1,1) − ln B(a,b) + (a−1)ψ(a) + (b−1)ψ(b) − (a+b−2)ψ(a+b)."""
    log_beta = special.gammaln(a) + special.gammaln(b) - special.gammaln(a + b)
    return (0.0 - log_beta + (a - 1) * special.digamma(a) + (b - 1) * special.digamma(b)
            - (a + b - 2) * special.digamma(a + b))


@pytest.mark.parametrize(("a", "b"), [(1.0, 1.0), (1.5, 3.0), (7.0, 1.2), (20.0, 30.0)])
def test_kl_matches_the_closed_form(a, b):
    got = kl_to_uniform(torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64))
    assert got.item() == pytest.approx(_kl_reference(a, b), rel=1e-10, abs=1e-12)
    if (a, b) == (1.0, 1.0):
        assert got.item() == 0.0
    # ... and agrees with torch's own Beta–Beta KL
    beta = torch.distributions.Beta
    ref = torch.distributions.kl_divergence(beta(torch.tensor(a), torch.tensor(b)),
                                            beta(torch.tensor(1.0), torch.tensor(1.0)))
    assert got.item() == pytest.approx(ref.item(), rel=1e-4, abs=1e-6)


def test_upper_level_loss_adds_lambda_times_summed_kl():
    net, strategy, _, batch_a, _ = _setup(kl_weight=0.3)
    with torch.no_grad():
        for p in strategy.arch_parameters():
            p.normal_(0.0, 2.0)
    net.eval()
    theta = strategy.sample()
    loss = strategy.arch_loss(net, batch_a, theta)
    ce = F.cross_entropy(net(batch_a[0], theta), batch_a[1])
    kl = sum(_kl_reference(a.detach().double().numpy(), b.detach().double().numpy()).sum()
             for a, b in strategy.concentrations().values())
    assert (loss - ce).item() == pytest.approx(0.3 * kl, rel=1e-5)
    assert strategy.kl().item() == pytest.approx(kl, rel=1e-5)


def test_concentrations_exceed_one_and_strengths_are_the_beta_means():
    net, strategy, *_ = _setup()
    with torch.no_grad():
        strategy.raw_alpha["normal"].copy_(torch.linspace(-15, 30, 40).reshape(5, 8))
        strategy.raw_beta["reduce"].normal_(0.0, 5.0)
    strengths = strategy.strengths()
    for cell, (a, b) in strategy.concentrations().items():
        assert (a > 1).all() and (b > 1).all()
        assert torch.allclose(strengths[cell], (a / (a + b)).detach())
        assert strengths[cell].shape == (net.num_edges, len(net.primitives))
        assert not strengths[cell].requires_grad
    # at initialisation every op has mean ≈ 1/2 and α ≈ β ≈ 1 + ln 2
    _, fresh, *_ = _setup()
    a, b = fresh.concentrations()["normal"]
    assert torch.allclose(a, torch.full_like(a, 1 + math.log(2)), atol=0.01)
    assert torch.allclose(fresh.strengths()["reduce"], torch.full((5, 8), 0.5), atol=0.01)


def test_samples_lie_in_the_unit_interval_and_do_not_sum_to_one():
    _, strategy, *_ = _setup()
    theta = strategy.op_weights()
    for w in theta.values():
        assert ((w > 0) & (w < 1)).all()
    assert not torch.allclose(theta["normal"].sum(-1), torch.ones(5), atol=0.1)
    # every call (weight step, validation batch) draws a fresh θ and advances the stream
    again = strategy.op_weights()
    assert strategy.draws == 2 and not torch.equal(again["normal"], theta["normal"])


def test_mixed_op_is_the_unnormalised_weighted_sum():
    torch.manual_seed(0)
    op = MixedOp(4, 1, ("none", "skip_connect", "sep_conv_3x3", "avg_pool_3x3")).eval()
    x = torch.randn(2, 4, 6, 6)
    theta = torch.tensor([0.9, 0.3, 0.7, 0.2])
    expected = sum(t * o(x) for t, o in zip(theta, op.ops, strict=True))
    assert torch.allclose(op(x, theta), expected, atol=1e-6)
    # no softmax or re-normalisation: doubling θ doubles the output
    assert torch.allclose(op(x, 2 * theta), 2 * expected, atol=1e-5)


def test_arch_step_moves_parameters_deterministically():
    net, strategy, bw, ba, ctx = _setup(0)
    before = [p.detach().clone() for p in strategy.arch_parameters()]
    cpu_rng = torch.get_rng_state()
    strategy.arch_step(net, bw, ba, strategy.make_arch_optimizer(), ctx)
    assert torch.equal(torch.get_rng_state(), cpu_rng)  # sampling leaves the global RNG alone
    assert strategy.draws == 1
    after = [p.detach().clone() for p in strategy.arch_parameters()]
    moved = torch.cat([(p - q).abs().reshape(-1) for p, q in zip(after, before, strict=True)])
    # Adam's first step moves every coordinate with a gradient by ≈ lr (the KL reaches all)
    assert moved.min() > 0.5 * strategy.cfg.arch_lr
    assert all(p.grad is None for p in net.parameters())

    net2, twin, bw2, ba2, ctx2 = _setup(0)
    twin.arch_step(net2, bw2, ba2, twin.make_arch_optimizer(), ctx2)
    assert all(torch.equal(p, q) for p, q in zip(after, twin.arch_parameters(), strict=True))
    _, other, *_ = _setup(1)  # another seed: another sampling stream
    assert not torch.equal(other.sample()["normal"], _setup(0)[1].sample()["normal"])

def test_validation_loss_reaches_alpha_and_beta_through_the_sample():
    """With λ = 0 only the pathwise gradient of θ carries the loss to ρ_α, ρ_β."""
    net, strategy, _, batch_a, _ = _setup(kl_weight=0.0)
    loss = strategy.arch_loss(net, batch_a, strategy.sample())
    grads = torch.autograd.grad(loss, [strategy.raw_alpha["normal"], strategy.raw_beta["normal"]])
    none = net.primitives.index("none")
    for g in grads:
        assert torch.all(g[:, none] == 0)  # the zero op's output does not depend on θ
        others = torch.cat([g[:, :none], g[:, none + 1:]], dim=1)
        assert (others != 0).all()


def test_state_dict_restores_the_sampling_stream():
    _, a, *_ = _setup(0)
    a.sample()
    state = {k: (v.clone() if torch.is_tensor(v) else dict(v)) for k, v in a.state_dict().items()}
    expected = a.sample()
    _, b, *_ = _setup(5)
    b.load_state_dict(state)
    got = b.sample()
    assert all(torch.equal(got[c], expected[c]) for c in got)


@pytest.mark.parametrize("space", SPACES.names())
def test_every_registered_space_runs_an_arch_step(space):
    primitives = SPACES.get(space).primitives
    net, strategy, bw, ba, ctx = _setup(0, primitives)
    strategy.arch_step(net, bw, ba, strategy.make_arch_optimizer(), ctx)
    assert strategy.strengths()["normal"].shape == (5, len(primitives))


def test_second_order_is_rejected():
    from nasforge.errors import NasforgeError

    with pytest.raises(NasforgeError, match="first-order only"):
        _setup(order="second")


def test_search_cli_and_resume_reproduce_the_full_run(capsys, tmp_path, small_proxy):
    full = tmp_path / "full"
    results = run_search(_cfg(small_proxy), full)
    genotype = parse_genotype(results["genotype"])
    validate_genotype(genotype, nodes=2)
    assert results["algo"] == "btnas"
    saved = read_strengths(full)
    assert saved["algo"] == "btnas"
    for cell in ("normal", "reduce"):
        assert ((saved[cell] > 0) & (saved[cell] < 1)).all()
    # the saved strengths are the Beta means of the checkpointed parameters
    state = load_checkpoint(full / "checkpoint.pt")["strategy"]
    a = 1 + F.softplus(state["raw_alpha.normal"])
    b = 1 + F.softplus(state["raw_beta.normal"])
    assert torch.allclose(saved["normal"], a / (a + b))
    assert state["_extra_state"]["draws"] > 0

    # `nasforge search --algo btnas` for epoch 0 only, then `--resume` to 2 epochs: the
    # resumed run draws the same θ as the uninterrupted one, so it ends with the same result
    part = tmp_path / "part"
    sets = [a for s in [*TINY_SEARCH, "search.epochs=1"] for a in ("--set", s)]
    assert main(["search", "--algo", "btnas", "--dataset", "digits", "--proxy",
                 str(small_proxy), "--out", str(part), *sets]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("Genotype(")
    assert json.loads((part / "results.json").read_text())["algo"] == "btnas"
    cfg = load_run_config(part)
    cfg.search.epochs = 2
    save_config(cfg, part / "config.yaml")
    assert main(["search", "--resume", str(part)]) == 0
    for name in ("strengths.json", "genotype.txt"):
        assert (part / name).read_text() == (full / name).read_text()


def test_topk_derivation_keeps_exactly_the_k_strongest_ops(tmp_path, small_proxy):
    out = tmp_path / "run"
    results = run_search(_cfg(small_proxy, "search.epochs=1", "search.rule=topk", "search.k=6"),
                         out)
    genotype = parse_genotype(results["genotype"])
    assert genotype == derive_from_run(out, "topk", k=6)
    # the 6 strongest non-none (cell, op, input, node) by Beta mean, ranked independently
    saved, edges = read_strengths(out), cell_edges(2)
    ranked = sorted(((-saved[c][e, k].item(), c, p, *edges[e])
                     for c in ("normal", "reduce") for e in range(len(edges))
                     for k, p in enumerate(saved["primitives"]) if p != "none"))
    top = {r[1:] for r in ranked[:6]}
    got = {(c, *op) for c in ("normal", "reduce") for op in getattr(genotype, c).ops}
    assert got == top and len(genotype.normal.ops) + len(genotype.reduce.ops) == 6
    act_all = derive_from_run(out, "topk", k=6, act_all=True)
    assert len(act_all.normal.ops) + len(act_all.reduce.ops) == 6


BTNAS_CONFIGS = sorted(name for name, path in shipped_configs().items()
                       if "algo: btnas" in path.read_text())


def test_the_table_configs_exist():
    expected = {"btnas-digits", "btnas-cifar10"}
    expected |= {f"t4.2-btnas-cifar10-k{k}" for k in (10, 12, 14, 16)}
    expected |= {f"t4.3-btnas-cifar10-lambda{x}" for x in ("1e-2", "1e-3", "1e-4")}
    expected |= {f"t4.6-btnas-actall-cifar10-k{k}" for k in (10, 12, 14, 16)}
    assert expected <= set(BTNAS_CONFIGS)


@pytest.mark.parametrize("name", BTNAS_CONFIGS)
def test_btnas_configs_load(name):
    cfg = load_config(name)
    assert cfg.search.algo == "btnas"
    assert shipped_configs(name)[name].read_text().startswith("# ")
    assert cfg.search.algo in STRATEGIES.names()
    if name.startswith("t4."):
        assert cfg.search.rule == "topk"
        match = re.search(r"-k(\d+)", name)
        assert cfg.search.k == (int(match.group(1)) if match else 14)
        assert cfg.search.act_all == ("actall" in name)
        if "lambda" in name:
            assert cfg.search.kl_weight == float(name.rsplit("lambda", 1)[1])
        if "-s2" in name or "-s4" in name:
            assert cfg.search.space == name[-2:]
    derive_module.rule_options(cfg.search, primitives=SPACES.get(cfg.search.space).primitives,
                               nodes=cfg.search.nodes)
