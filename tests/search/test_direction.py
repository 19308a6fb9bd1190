"""Every gradient-based strategy's architecture step goes downhill (issue 19, item 1).

With the network weights fixed and one architecture batch, each test writes down the
objective the strategy optimises *itself* (from the method's definition, not by calling the
strategy's loss), then checks, with plain SGD on the architecture parameters:

- the step equals −lr·∇objective (so it is aligned with the negative gradient exactly),
- the objective drops by at least half of the first-order prediction lr·‖∇‖²,
- the network weights did not move;

and, with the strategy's own optimiser (Adam), that the first step's sign is −sign(∇) on
every entry whose gradient is not negligible. Sampling strategies are checked on the same
draw (the draw counter is reset, so the noise is the same); the straight-through ones (GDAS,
PR-DARTS, 1shot1 GDAS) on the first-order model of the loss in the op weights, whose gradient
is exactly what a straight-through step follows. ENAS: the REINFORCE step raises the
log-probability of a sample rewarded above the baseline and lowers it below the baseline.

Checked by hand on 2026-12-06 with a throw-away pytest plugin that monkeypatched the code
(nothing left in the code): reflecting every registered strategy's architecture step
(α ← 2α_old − α_new, i.e. a sign flip anywhere in the step) made 25 of the 26 tests fail
(all but the SDARTS-ADV attack test, which takes no architecture step); negating the
gradient in ``SearchStrategy.descend`` made every test of a strategy that uses it fail;
negating the advantage in ``ENAS.reinforce`` made all 6 ENAS tests fail. A flipped Hessian
term of second-order DARTS moves the step by 2ξ‖H·v‖, which the second-order test asserts
is more than 50× its tolerance.
"""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Beta, Dirichlet, kl_divergence
from torch.func import functional_call

from nasforge.config import SearchConfig
from nasforge.data import load_dataset
from nasforge.search import ONESHOT_STRATEGIES, STRATEGIES
from nasforge.search.base import StepContext
from nasforge.search.loop import build_search, resize
from nasforge.search.oneshot import softmax_weights
from nasforge.search.pcdarts import edge_weights
from nasforge.search.sampling import seeded_rng
from nasforge.search.sgas import UNDECIDED
from nasforge.spaces.nb101.space import ONESHOT_SPACES

STEP = 0.02  # ‖Δα‖ of the SGD step: small enough for the first-order prediction to hold


@pytest.fixture(autouse=True)
def _threads(one_thread):
    yield


def setup(algo: str, space: str = "darts", seed: int = 0, **overrides):
    """Tiny super-network + strategy, α drawn with std 0.5 (not at the symmetric start),
    weight-decay-free optimisers, and two fixed batches of noise images."""
    torch.manual_seed(seed)
    cfg = SearchConfig(**{"channels": 4, "layers": 3, "nodes": 2, "arch_init_std": 0.5,
                          "arch_weight_decay": 0.0, "algo": algo, "space": space,
                          **overrides})
    oneshot = ONESHOT_SPACES.get(space) if space in ONESHOT_SPACES else None
    registry = ONESHOT_STRATEGIES if oneshot is not None else STRATEGIES
    s, net, strategy, w_opt, _ = build_search(
        cfg, registry.get(algo), num_classes=10, in_channels=1, image_size=8,
        device=torch.device("cpu"), oneshot=oneshot)
    net.train()
    ctx = StepContext(w_optimizer=w_opt, w_lr=s.w_lr, autocast=contextlib.nullcontext)
    gen = torch.Generator().manual_seed(seed + 100)
    batches = [(torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 10, (16,),
                                                                       generator=gen))
               for _ in range(2)]
    if s.resolution is not None:  # EcoDARTS searches at half resolution (as the loop does)
        batches = [resize(b, s.resolution) for b in batches]
    return s, net, strategy, ctx, batches[0], batches[1]


def ce(net, batch, weights):
    x, y = batch
    return F.cross_entropy(net(x, weights).float(), y)


def reset_draw(strategy, draws):
    if draws is not None:
        strategy.draws = draws


def check_descent(algo, objective, *, space="darts", setup_kw=None, before=None,
                  exact=True):
    """The SGD and Adam checks of the module docstring for ``objective(net, strategy, ba)``;
    ``before(net, strategy, bw, ba)`` runs after set-up (e.g. an SGAS decision)."""
    setup_kw = setup_kw or {}
    s, net, strategy, ctx, bw, ba = setup(algo, space, **setup_kw)
    if before is not None:
        before(net, strategy, bw, ba)
    params = strategy.arch_parameters()
    draws = getattr(strategy, "draws", None)

    def value():
        reset_draw(strategy, draws)
        return objective(net, strategy, ba)

    f0 = value()
    grads = [torch.zeros_like(p) if g is None else g
             for p, g in zip(params, torch.autograd.grad(f0, params, allow_unused=True),
                             strict=True)]
    gnorm = float(torch.sqrt(sum((g ** 2).sum() for g in grads)))
    assert gnorm > 1e-6, "the objective must depend on the architecture"
    lr = STEP / gnorm
    old = [p.detach().clone() for p in params]
    weights = {n: p.detach().clone() for n, p in net.named_parameters()}
    reset_draw(strategy, draws)
    strategy.arch_step(net, bw, ba, torch.optim.SGD(params, lr=lr), ctx)
    for n, p in net.named_parameters():
        assert torch.equal(p, weights[n]), f"the architecture step moved weight {n}"
    deltas = [p.detach() - o for p, o in zip(params, old, strict=True)]
    if exact:
        for d, g in zip(deltas, grads, strict=True):
            torch.testing.assert_close(d, -lr * g, rtol=2e-3, atol=1e-4 * STEP)
    with torch.no_grad():
        f1 = value()
    drop = float(f0.detach() - f1)
    assert drop > 0.5 * STEP * gnorm, (float(f0), float(f1), STEP * gnorm)

    # the strategy's own optimiser: its first step has the sign of −∇ (Adam: −lr·g/(|g|+ε))
    s, net, strategy, ctx, bw, ba = setup(algo, space, **setup_kw)
    if before is not None:
        before(net, strategy, bw, ba)
    params = strategy.arch_parameters()
    old = [p.detach().clone() for p in params]
    reset_draw(strategy, draws)
    strategy.arch_step(net, bw, ba, strategy.make_arch_optimizer(), ctx)
    big = max(float(g.abs().max()) for g in grads)
    for p, o, g in zip(params, old, grads, strict=True):
        sure = g.abs() > 1e-3 * big
        assert torch.equal(torch.sign(p.detach() - o)[sure], -torch.sign(g)[sure])
    return drop


# --------------------------------------------------------------------------- objectives


def darts_objective(net, strategy, ba):
    return ce(net, ba, {c: F.softmax(a, -1) for c, a in strategy.alphas.items()})


def elu_objective(net, strategy, ba):
    return ce(net, ba, {c: F.elu(a) + 1 for c, a in strategy.alphas.items()})


def fair_objective(net, strategy, ba):
    w = {c: torch.sigmoid(a) for c, a in strategy.alphas.items()}
    flat = torch.cat([v.reshape(-1) for v in w.values()])
    zero_one = -((flat - 0.5) ** 2).mean()  # FairDARTS's L01: pushes σ(α) towards 0 or 1
    return ce(net, ba, w) + strategy.cfg.zero_one_weight * zero_one


def pc_objective(net, strategy, ba):
    return ce(net, ba, {c: F.softmax(a, -1) * edge_weights(strategy.betas[c],
                                                           strategy.nodes)[:, None]
                        for c, a in strategy.alphas.items()})


def drnas_objective(net, strategy, ba):
    """CE under the Dirichlet(ELU(α)+1) draw of the strategy's current stream position."""
    with seeded_rng(strategy.seed + strategy.draws, torch.device("cpu")):
        theta = {c: Dirichlet(F.elu(a) + 1, validate_args=False).rsample()
                 for c, a in strategy.alphas.items()}
    return ce(net, ba, theta)


def btnas_objective(net, strategy, ba):
    """CE under the Beta(α, β) draw + λ·Σ KL(Beta(α, β) ‖ Beta(1, 1)), α = 1 + softplus(ρ)."""
    conc = [(1 + F.softplus(strategy.raw_alpha[c]), 1 + F.softplus(strategy.raw_beta[c]))
            for c in ("normal", "reduce")]
    dist = Beta(torch.stack([a for a, _ in conc]), torch.stack([b for _, b in conc]),
                validate_args=False)
    with seeded_rng(strategy.seed + strategy.draws, torch.device("cpu")):
        theta = dist.rsample()
    kl = sum(kl_divergence(Beta(a, b), Beta(torch.ones_like(a), torch.ones_like(b))).sum()
             for a, b in conc)
    return ce(net, ba, dict(zip(("normal", "reduce"), theta.unbind(0), strict=True))) + \
        strategy.cfg.kl_weight * kl


def linearised(weights_of, hard_of):
    """First-order model of the loss in the op weights around the sampled (hard) weights:
    Σ c·w(α) with c = ∂CE/∂w at the hard weights. A straight-through step descends it."""
    cache = {}

    def objective(net, strategy, ba):
        if "c" not in cache:
            hard = {k: v.detach().clone().requires_grad_(True)
                    for k, v in hard_of(strategy).items()}
            grads = torch.autograd.grad(ce(net, ba, hard), list(hard.values()),
                                        allow_unused=True)
            cache["c"] = {k: torch.zeros_like(v) if g is None else g
                          for (k, v), g in zip(hard.items(), grads, strict=True)}
        w = weights_of(strategy)
        return sum((cache["c"][k] * w[k]).sum() for k in cache["c"])

    return objective


def gdas_probabilities(strategy):
    return strategy.sample()[1]  # p = softmax((log_softmax(α) + g)/τ), same noise per draw


def gdas_hard(strategy):
    draws = strategy.draws
    h = strategy.sample()[0]
    strategy.draws = draws
    return h


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("algo", ["darts", "robustdarts-l2", "sdarts-rs", "sdarts-adv",
                                  "ecodarts"])
def test_softmax_strategies_step_downhill(algo):
    """DARTS (1st order) and the DARTS variants whose architecture step is DARTS's own."""
    check_descent(algo, darts_objective)


def test_darts_elu_steps_downhill():
    check_descent("darts-elu", elu_objective)


def test_fairdarts_steps_downhill_on_ce_plus_zero_one_loss():
    check_descent("fairdarts", fair_objective)


def test_pcdarts_steps_downhill_in_alpha_and_edge_betas():
    check_descent("pcdarts", pc_objective)


def test_sgas_steps_downhill_and_keeps_decided_edges():
    def decide(net, strategy, bw, ba):
        strategy.decide()  # one edge per cell type fixed: its α row must not move

    def objective(net, strategy, ba):
        w = {}
        for c, a in strategy.alphas.items():
            choice = strategy.choices(c)  # UNDECIDED, PRUNED or the index of the fixed op
            fixed = F.one_hot(choice.clamp(min=0), a.shape[-1]).to(a.dtype)
            fixed = fixed * (choice >= 0)[:, None]  # a pruned edge: weight 0
            w[c] = torch.where((choice != UNDECIDED)[:, None], fixed, F.softmax(a, -1))
        return ce(net, ba, w)

    check_descent("sgas", objective, before=decide)


def test_drnas_steps_downhill_on_the_same_dirichlet_draw():
    check_descent("drnas", drnas_objective)


def test_btnas_steps_downhill_on_the_same_beta_draw():
    check_descent("btnas", btnas_objective, setup_kw={"kl_weight": 0.05})


def test_gdas_straight_through_step_descends_the_first_order_loss():
    check_descent("gdas", linearised(gdas_probabilities, gdas_hard),
                  setup_kw={"tau_max": 1.0})


def test_prdarts_step_descends_first_order_loss_plus_regulariser():
    """PR-DARTS: the straight-through gates (same uniforms, drop-outs and masks) plus the
    strategy's regulariser R of the draw's kept ops."""
    cache = {}

    def hard(strategy):
        draws = strategy.draws
        draw = strategy.sample()
        strategy.draws = draws
        cache["masks"] = {c: g.mask for c, g in draw.items()}
        return cache["masks"]

    lin = linearised(lambda st: {c: g.gates for c, g in st.sample().items()}, hard)

    def objective(net, strategy, ba):
        first = lin(net, strategy, ba)
        return first + strategy.regulariser(cache["masks"])

    check_descent("prdarts", objective, setup_kw={"tau_max": 1.0})


@pytest.mark.parametrize("space", ["1shot1-ss1", "1shot1-ss3"])
def test_oneshot_darts_steps_downhill(space):
    check_descent("darts", lambda net, st, ba: ce(net, ba, softmax_weights(st.space, st.alphas)),
                  space=space)


@pytest.mark.parametrize("space", ["1shot1-ss1", "1shot1-ss2"])
def test_oneshot_gdas_step_descends_the_first_order_loss(space):
    check_descent("gdas", linearised(gdas_probabilities, gdas_hard), space=space,
                  setup_kw={"tau_max": 1.0})


def digits_batches(n=64):
    """Two disjoint batches of real digits (normalised): the unrolled objective is far from
    smooth on noise images."""
    data = load_dataset("digits")
    x = (data.train.x.float() - data.mean[0]) / data.std[0]
    return (x[:n], data.train.y[:n]), (x[n:2 * n], data.train.y[n:2 * n])


def unrolled_objective(net, bw, ba, w_unrolled, weights):
    """DARTS's second-order objective L_val(w′(α), α), w′ = ``w_unrolled(α)``."""
    x, y = ba
    return F.cross_entropy(functional_call(net, w_unrolled(weights), (x, weights),
                                           strict=False), y)


@pytest.mark.parametrize("space", ["darts", "1shot1-ss1"])
def test_second_order_darts_step_is_the_unrolled_gradient_estimate(space):
    """Second-order DARTS: the step is −lr·[∇α L_val(w′) − ξ·(∇α L_train(w⁺) −
    ∇α L_train(w⁻))/2ε] with w′ = w − ξ(μm + ∇w L_train + λw), w± = w ± ε∇w′ L_val(w′),
    ε = 0.01/‖∇w′ L_val‖ (DARTS Eq. 7–8), recomputed here term by term; flipping the Hessian
    term's sign moves it by far more than the tolerance (checked below).

    Not checked against the exact unrolled gradient: on this tiny ReLU/BN network the
    unrolled objective is too rough for a finite difference to match it (measured on 64
    digits, ξ = 0.025: the estimate is 26% off the double-backprop gradient, and the
    objective's own directional differences at h = 1e-3 and 1e-4 disagree by 20%), so the
    descent check is the weaker one: the step makes an acute angle (cos > 0.8) with the
    exact gradient of the unrolled objective."""
    s, net, strategy, ctx, _, _ = setup("darts", space, order="second")
    bw, ba = digits_batches()
    xi, mu, wd = s.w_lr, s.w_momentum, s.w_weight_decay
    # one weight step first, so that the unrolled step includes the momentum buffer
    ctx.w_optimizer.zero_grad()
    ce(net, bw, {k: v.detach() for k, v in strategy.op_weights().items()}).backward()
    ctx.w_optimizer.step()
    ctx.w_optimizer.zero_grad(set_to_none=True)
    names = [n for n, _ in net.named_parameters()]
    params = [p for _, p in net.named_parameters()]
    bufs = [ctx.w_optimizer.state[p]["momentum_buffer"] for p in params]
    alphas = strategy.arch_parameters()

    def weights_of():
        if space == "darts":
            return {c: F.softmax(a, -1) for c, a in strategy.alphas.items()}
        return softmax_weights(strategy.space, strategy.alphas)

    def alpha_grad(loss):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, alphas)])

    train_grads = torch.autograd.grad(ce(net, bw, weights_of()), params)
    unrolled = {n: (p.detach() - xi * (mu * m + g + wd * p.detach())).requires_grad_(True)
                for n, p, g, m in zip(names, params, train_grads, bufs, strict=True)}
    xa, ya = ba
    val = F.cross_entropy(functional_call(net, unrolled, (xa, weights_of()), strict=False), ya)
    grads = torch.autograd.grad(val, alphas + list(unrolled.values()))
    d_alpha = torch.cat([g.reshape(-1) for g in grads[:len(alphas)]])
    d_w = grads[len(alphas):]
    eps = 0.01 / torch.cat([g.reshape(-1) for g in d_w]).norm()

    def train_alpha_grad(sign):
        shifted = {n: p.detach() + sign * eps * g for n, p, g in zip(names, params, d_w,
                                                                        strict=True)}
        xw, yw = bw
        return alpha_grad(F.cross_entropy(functional_call(net, shifted, (xw, weights_of()),
                                                          strict=False), yw))

    hessian_term = xi * (train_alpha_grad(1.0) - train_alpha_grad(-1.0)) / (2 * eps)
    expected = d_alpha - hessian_term

    # the exact gradient of the unrolled objective (double back-propagation), for the angle
    def w_unrolled(weights):
        g = torch.autograd.grad(ce(net, bw, weights), params, create_graph=True)
        return {n: p - xi * (mu * m + gi + wd * p)
                for n, p, gi, m in zip(names, params, g, bufs, strict=True)}

    exact = alpha_grad(unrolled_objective(net, bw, ba, w_unrolled, weights_of()))

    lr = STEP / float(expected.norm())
    old = torch.cat([a.detach().reshape(-1).clone() for a in alphas])
    weights = {n: p.detach().clone() for n, p in net.named_parameters()}
    strategy.arch_step(net, bw, ba, torch.optim.SGD(alphas, lr=lr), ctx)
    for n, p in net.named_parameters():
        assert torch.equal(p, weights[n])
    used = -(torch.cat([a.detach().reshape(-1) for a in alphas]) - old) / lr
    err = float((used - expected).norm() / expected.norm())
    assert err < 1e-3, err
    assert float((2 * hessian_term).norm() / expected.norm()) > 0.05  # a flip: 50× the error
    assert float(F.cosine_similarity(used, exact, dim=0)) > 0.8


def test_sdarts_adv_attack_raises_the_train_loss():
    """SDARTS-ADV's perturbation is an ascent: the weight step sees a worse α than the clean
    softmax (a sign flip in the PGD would make it a descent)."""
    s, net, strategy, ctx, bw, _ = setup("sdarts-adv", epsilon_min=0.3)
    strategy.start_epoch(0, 1)
    clean = {k: v.detach() for k, v in strategy.op_weights().items()}
    perturbed = strategy.weight_step_weights(net, bw, ctx)
    with torch.no_grad():
        net.eval()
        loss_clean, loss_adv = ce(net, bw, clean), ce(net, bw, perturbed)
    assert float(loss_adv) > float(loss_clean) + 1e-3


# --------------------------------------------------------------------------- ENAS


def draw_with_picks(strategy, draws):
    """The strategy's own sample at stream position ``draws`` and the choices it made."""
    picks = []
    walk = strategy.walk

    def recording(pick):
        def rec(logits):
            k = pick(logits)
            picks.append(k)
            return k
        return walk(rec)

    strategy.walk = recording
    try:
        reset_draw(strategy, draws)
        sample = strategy.sample()
    finally:
        del strategy.walk
    return sample, picks


def log_prob_of_picks(strategy, picks):
    it = iter(picks)
    with torch.no_grad():
        return float(strategy.walk(lambda logits: next(it)).log_prob)


@pytest.mark.parametrize("space", ["darts", "1shot1-ss1", "1shot1-ss3"])
@pytest.mark.parametrize("baseline,sign", [(-1.0, 1), (1e3, -1)])
def test_enas_reinforce_moves_log_prob_with_the_advantage(space, baseline, sign):
    """A sample rewarded above the baseline (accuracy ≥ 0 > −1) becomes more likely after
    the controller's step, one below it (accuracy ≤ 100% < 1000) less likely; checked with SGD
    and with ENAS's own Adam, through the full ``arch_step`` (reward = batch accuracy)."""
    for make_opt in (lambda st: torch.optim.SGD(st.arch_parameters(), lr=0.05),
                     lambda st: st.make_arch_optimizer()):
        s, net, strategy, ctx, bw, ba = setup("enas", space)
        strategy.baseline.fill_(baseline)
        draws = strategy.draws
        sample, picks = draw_with_picks(strategy, draws)
        before = float(sample.log_prob.detach())
        assert log_prob_of_picks(strategy, picks) == pytest.approx(before, abs=1e-5)
        reset_draw(strategy, draws)
        weights = {n: p.detach().clone() for n, p in net.named_parameters()}
        strategy.arch_step(net, bw, ba, make_opt(strategy), ctx)
        assert all(torch.equal(p, weights[n]) for n, p in net.named_parameters())
        after = log_prob_of_picks(strategy, picks)
        assert sign * (after - before) > 1e-4, (before, after)
