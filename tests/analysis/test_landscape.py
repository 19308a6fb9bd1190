"""Loss landscapes over θ: centre = an independent loss at θ, d1 ⟂ d2, d1 climbs, seeded."""

import json

import matplotlib.image as mpimg
import pytest
import torch
import torch.nn.functional as F

from nasforge.analysis.landscape import (
    loss_landscape,
    plot_landscape,
    plot_landscape_runs,
    plot_landscapes,
)
from nasforge.checkpoint import load_checkpoint
from nasforge.data import load_dataset, split_weight_arch
from nasforge.errors import NasforgeError
from nasforge.runtime import load_run_config
from nasforge.spaces.darts.search_network import SearchNetwork

SMALL = dict(batches=2, batch_size=16)  # 32 validation examples


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(search_runs):
    return search_runs


def _independent(run_dir):
    """θ, the loss at θ and ∇θ loss, rebuilt from the run's files without the module under test."""
    cfg = load_run_config(run_dir)
    state = load_checkpoint(run_dir / "checkpoint.pt")
    s = cfg.search
    data = load_dataset("digits")
    net = SearchNetwork(s.channels, 10, s.layers, s.nodes, in_channels=data.channels)
    net.load_state_dict(state["network"])
    net.eval()
    arch = state["strategy"]
    if s.algo == "btnas":
        a = {c: 1 + F.softplus(arch[f"raw_alpha.{c}"]) for c in ("normal", "reduce")}
        b = {c: 1 + F.softplus(arch[f"raw_beta.{c}"]) for c in ("normal", "reduce")}
        theta = {c: a[c] / (a[c] + b[c]) for c in a}
    else:
        theta = {c: arch[f"alphas.{c}"].softmax(-1) for c in ("normal", "reduce")}
    theta = {c: t.detach().clone().requires_grad_(True) for c, t in theta.items()}
    lines = (run_dir.parent / "proxy.txt").read_text().split()
    _, arch_half = split_weight_arch(torch.tensor([int(v) for v in lines]), cfg.run.seed)
    idx = arch_half[:32]
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    x = (data.train.x[idx].float() / 255 - mean) / std
    loss = F.cross_entropy(net(x, theta), data.train.y[idx].long())
    grads = torch.autograd.grad(loss, [theta["normal"], theta["reduce"]])
    flat = torch.cat([t.detach().flatten() for t in theta.values()])
    return flat, float(loss.detach()), torch.cat([g.flatten() for g in grads])


@pytest.mark.parametrize("algo", ["btnas", "darts"])
def test_centre_is_the_loss_at_theta(runs, algo):
    result = loss_landscape(runs[algo], points=3, radius=0.01, **SMALL)
    theta, loss, grad = _independent(runs[algo])
    assert result["examples"] == 32 and result["shape"] == [2, 5, 8]
    assert torch.allclose(torch.tensor(result["theta"]).float(), theta, atol=1e-6)
    assert result["loss"][1][1] == pytest.approx(loss, rel=1e-5)
    assert result["theta_loss"] == pytest.approx(loss, rel=1e-5)
    assert result["clamped"][1][1] == 0.0
    # d1 is the normalised gradient; d2 is orthogonal to it with the same (unit) norm
    d1, d2 = (torch.tensor(result[k], dtype=torch.float64) for k in ("d1", "d2"))
    assert torch.allclose(d1, (grad / grad.norm()).double(), atol=1e-4)
    assert d1.norm().item() == pytest.approx(1.0, abs=1e-12)
    assert d2.norm().item() == pytest.approx(d1.norm().item(), abs=1e-12)
    assert abs(float(d1 @ d2)) < 1e-12
    # a small step against the gradient lowers the loss, along it raises it, at rate ‖∇L‖
    row = result["loss"][1]
    assert row[0] < row[1] < row[2]
    slope = (row[2] - row[0]) / (2 * 0.01)
    assert slope == pytest.approx(result["grad_norm"], rel=0.1)


def test_deterministic_for_a_seed_and_rng_untouched(runs):
    state = torch.get_rng_state()
    first = loss_landscape(runs["btnas"], points=3, radius=0.5, seed=3, **SMALL)
    assert torch.equal(torch.get_rng_state(), state)
    again = loss_landscape(runs["btnas"], points=3, radius=0.5, seed=3, **SMALL)
    other = loss_landscape(runs["btnas"], points=3, radius=0.5, seed=4, **SMALL)
    assert first == again
    assert first["d1"] == other["d1"] and first["d2"] != other["d2"]
    assert first["loss"][1] == other["loss"][1]  # the b = 0 row does not involve d2


def test_far_points_are_clamped_and_plotted(runs, tmp_path):
    result = loss_landscape(runs["btnas"], points=5, radius=3.0, batches=1, batch_size=16)
    assert len(result["loss"]) == 5 and all(len(r) == 5 for r in result["loss"])
    assert result["a"][2] == 0.0 and result["a"][0] == -3.0
    assert result["theta_range"] == [0.0, 1.0]
    assert result["clamped"][0][0] > 0 and result["clamped"][2][2] == 0.0
    assert all(torch.isfinite(torch.tensor(result["loss"])).flatten())
    path = plot_landscape(result, tmp_path / "sub" / "landscape.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert mpimg.imread(path).shape[0] > 100
    pair = plot_landscapes({"BtNAS": result, "again": result}, tmp_path / "pair.png")
    assert mpimg.imread(pair).shape[1] > mpimg.imread(path).shape[1]


def test_several_runs_on_one_figure_with_json(runs, tmp_path):
    path = plot_landscape_runs([runs["btnas"], runs["darts"]], tmp_path / "both.png",
                               json_path=tmp_path / "both.json", points=2, batches=1,
                               batch_size=8)
    assert mpimg.imread(path).shape[0] > 100
    saved = json.loads((tmp_path / "both.json").read_text())
    assert list(saved) == ["btnas", "darts"] and saved["darts"]["examples"] == 8
    with pytest.raises(NasforgeError, match="labels"):
        plot_landscape_runs([runs["btnas"]], tmp_path / "x.png", labels=["a", "b"])


def test_bad_arguments_are_user_errors(runs, tmp_path):
    with pytest.raises(NasforgeError, match="points"):
        loss_landscape(runs["darts"], points=0)
    with pytest.raises(NasforgeError, match="radius"):
        loss_landscape(runs["darts"], radius=-1.0)
    with pytest.raises(NasforgeError, match="not a nasforge run"):
        loss_landscape(tmp_path)
    with pytest.raises(NasforgeError, match="at least 2 points"):
        plot_landscape({"a": [0.0], "b": [0.0], "loss": [[1.0]], "theta_loss": 1.0},
                       tmp_path / "x.png")
