import pytest
import torch
import torch.nn.functional as F

from nasforge.config import SearchConfig, load_config
from nasforge.runtime import autocast
from nasforge.search import sdarts
from nasforge.search.base import StepContext
from nasforge.search.sdarts import SDARTSADV, SDARTSRS, clip_to_simplex, epsilon_at
from nasforge.spaces.darts.search_network import SearchNetwork
from nasforge.spaces.darts.spaces import SPACES


def _setup(cls, epoch=9, epochs=10, seed=0, **cfg):
    torch.manual_seed(seed)
    net = SearchNetwork(4, 3, 3, 2, in_channels=1)
    strategy = cls(net, SearchConfig(arch_init_std=0.5, **cfg))
    strategy.start_epoch(epoch, epochs)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 1, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    ctx = StepContext(w_optimizer=torch.optim.SGD(net.parameters(), lr=0.1), w_lr=0.1,
                      autocast=lambda: autocast(x.device, None))
    return net, strategy, (x, y), ctx


def _on_simplex(w):
    return bool((w >= 0).all()) and torch.allclose(w.sum(-1), torch.ones(w.shape[0]))


@pytest.fixture
def clip_inputs(monkeypatch):
    """Every row block handed to clip_to_simplex, i.e. each perturbation before clipping."""
    seen = []

    def recording(w, mask=None):
        seen.append(w.detach().clone())
        return clip_to_simplex(w, mask)

    monkeypatch.setattr(sdarts, "clip_to_simplex", recording)
    return seen


def test_epsilon_schedule_endpoints():
    assert epsilon_at(0, 50, 0.03, 0.3) == pytest.approx(0.03)
    assert epsilon_at(50, 50, 0.03, 0.3) == pytest.approx(0.3)
    assert epsilon_at(25, 50, 0.03, 0.3) == pytest.approx(0.165)
    _, strategy, *_ = _setup(SDARTSRS)
    assert strategy.epsilon == pytest.approx(0.03 + 0.27 * 9 / 10)
    strategy.start_epoch(0, 10)
    assert strategy.epsilon == pytest.approx(0.03)


def test_clip_to_simplex():
    w = torch.tensor([[0.2, 0.5, 0.3], [-0.5, -0.1, -0.3], [1.4, -0.2, 0.6], [0.0, 0.0, 0.0]])
    out = clip_to_simplex(w)
    assert _on_simplex(out)
    assert torch.equal(out[0], w[0])  # a row on the simplex is kept
    assert torch.equal(out[1], torch.tensor([0.0, 1.0, 0.0]))  # all clamped away: argmax
    assert torch.allclose(out[2], torch.tensor([1.0, 0.0, 0.6]) / 1.6)
    held = torch.tensor([[True, False, True], [True, False, True], [False, True, True],
                         [True, True, False]])
    out = clip_to_simplex(w, held)
    assert _on_simplex(out) and not out[~held].any()
    assert torch.allclose(out[0], torch.tensor([0.4, 0.0, 0.6]))
    assert torch.equal(out[1], torch.tensor([0.0, 0.0, 1.0]))  # argmax over the held ops


@pytest.mark.parametrize("cls", [SDARTSRS, SDARTSADV])
def test_perturbations_respect_per_edge_spaces(cls, one_thread):
    space = SPACES.get("s1")
    torch.manual_seed(0)
    net = SearchNetwork(4, 3, 3, 4, in_channels=1, primitives=space.primitives,
                        op_mask=space.op_mask(4))
    strategy = cls(net, SearchConfig(arch_init_std=0.5, attack_steps=1))
    strategy.start_epoch(1, 1)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    ctx = StepContext(w_optimizer=torch.optim.SGD(net.parameters(), lr=0.1), w_lr=0.1,
                      autocast=lambda: autocast(x.device, None))
    out = strategy.weight_step_weights(net, (x, y), ctx)
    for kind, w in out.items():
        assert _on_simplex(w) and not w[~net.op_mask[kind]].any()


def test_random_smoothing_stays_in_the_ball_then_on_the_simplex(clip_inputs):
    net, strategy, batch, ctx = _setup(SDARTSRS)
    clean = {k: v.detach() for k, v in strategy.op_weights().items()}
    alphas = {k: v.detach().clone() for k, v in strategy.alphas.items()}
    out = strategy.weight_step_weights(net, batch, ctx)
    eps = strategy.epsilon
    assert len(clip_inputs) == 2  # one clip per cell type
    for raw, k in zip(clip_inputs, ("normal", "reduce"), strict=True):
        delta = (raw - clean[k]).abs()
        assert delta.max() <= eps + 1e-6 and delta.max() > 0.5 * eps
    for k, w in out.items():
        assert not w.requires_grad and _on_simplex(w)
        assert torch.equal(strategy.alphas[k].detach(), alphas[k])  # α itself is untouched


def _eval_loss(net, weights, batch):
    net.eval()
    with torch.no_grad():
        loss = F.cross_entropy(net(batch[0], weights), batch[1])
    net.train()
    return float(loss)


def test_adversarial_perturbation_raises_the_train_loss_within_the_ball(clip_inputs, one_thread):
    net, strategy, batch, ctx = _setup(SDARTSADV, attack_steps=3)
    net.train()
    clean = {k: v.detach() for k, v in strategy.op_weights().items()}
    out = strategy.weight_step_weights(net, batch, ctx)
    eps = strategy.epsilon
    assert net.training and all(p.grad is None for p in net.parameters())
    # random start + attack_steps projections, one clip per cell type each
    assert len(clip_inputs) == 2 * (1 + strategy.cfg.attack_steps)
    for i, raw in enumerate(clip_inputs):
        assert (raw - clean[("normal", "reduce")[i % 2]]).abs().max() <= eps + 1e-6
    for w in out.values():
        assert not w.requires_grad and _on_simplex(w)
    assert _eval_loss(net, out, batch) > _eval_loss(net, clean, batch)


def test_adversarial_falls_back_to_clean_weights_when_the_attack_loses(monkeypatch, one_thread):
    net, strategy, batch, ctx = _setup(SDARTSADV, attack_steps=3)
    clean = {k: v.detach() for k, v in strategy.op_weights().items()}
    # make every attack step descend instead of ascend: the attacked loss ends below the clean
    real_sign = torch.Tensor.sign
    monkeypatch.setattr(torch.Tensor, "sign", lambda t: -real_sign(t))
    out = strategy.weight_step_weights(net, batch, ctx)
    monkeypatch.undo()
    for k in clean:
        assert torch.equal(out[k], clean[k])


@pytest.mark.parametrize("variant", ["rs", "adv"])
def test_configs(variant):
    for data in ("cifar10", "digits"):
        s = load_config(f"sdarts-{variant}-{data}").search
        assert (s.algo, s.epsilon_min, s.epsilon_max, s.attack_steps) == (
            f"sdarts-{variant}", 0.03, 0.3, 7)
