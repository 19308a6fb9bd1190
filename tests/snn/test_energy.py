"""SNN energy (synaptic operations, MACs, profiles), the energy-aware evolution, its budget,
the warm start by proxy and the accuracy-vs-energy plot, against hand computations."""

import json
import math
import random

import pytest
import torch
from torch import nn

from conftest import run_cli
from nasforge.analysis.energy_plot import energy_pareto_figure, energy_pareto_front
from nasforge.config import load_config
from nasforge.errors import NasforgeError
from nasforge.snn.backbone import SNNBackbone
from nasforge.snn.data import load_snn_data, snn_batches
from nasforge.snn.energy import (
    PROFILES,
    conv_fanout,
    energy_counter,
    energy_pj,
    measure_energy,
)
from nasforge.snn.evolution import (
    DEFAULT_BLOCKS,
    SearchResult,
    evolutionary_search,
    fitness,
    random_search,
    sample_unique,
)
from nasforge.snn.neuron import is_neuron, neuron_kind
from nasforge.snn.train import load_snn_model, run_snn_train

# ---------------------------------------------------------------- counting


def brute_sops(conv: nn.Conv2d, x: torch.Tensor) -> int:
    """Σ over every output element of the non-zero inputs in its receptive field, by loops."""
    n, c_in, h, w = x.shape
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    ph, pw = conv.padding
    dh, dw = conv.dilation
    g = conv.groups
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    per_group_in, per_group_out = c_in // g, conv.out_channels // g
    total = 0
    for b in range(n):
        for co in range(conv.out_channels):
            grp = co // per_group_out
            for i in range(oh):
                for j in range(ow):
                    for ci in range(grp * per_group_in, (grp + 1) * per_group_in):
                        for a in range(kh):
                            for bb in range(kw):
                                r, s = i * sh - ph + a * dh, j * sw - pw + bb * dw
                                if 0 <= r < h and 0 <= s < w and x[b, ci, r, s] != 0:
                                    total += 1
    return total


@pytest.mark.parametrize("kwargs", [
    dict(in_channels=3, out_channels=5, kernel_size=3, stride=1, padding=1),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, groups=2),
    dict(in_channels=2, out_channels=3, kernel_size=(3, 2), stride=(2, 1), padding=(0, 1),
         dilation=(1, 2)),
    dict(in_channels=3, out_channels=4, kernel_size=1, stride=2, padding=0),
])
def test_conv_sops_equal_a_brute_force_count(kwargs) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(bias=False, **kwargs)
    x = (torch.rand(2, kwargs["in_channels"], 7, 6) < 0.35).float()
    with energy_counter(nn.Sequential(nn.Identity(), conv), timesteps=1) as counter:
        counter.model(x)
    counts = counter.counts()["1"]
    assert counts["sops"] * 2 == brute_sops(conv, x)  # per image: 2 images
    assert counts["macs"] == 0


def test_fanout_map_of_a_padded_3x3_conv() -> None:
    conv = nn.Conv2d(1, 1, 3, 1, 1)
    fan = conv_fanout(conv, 4, 4)
    # corners are read by 4 outputs, edges by 6, the inside by 9
    assert fan[0, 0] == 4 and fan[0, 1] == 6 and fan[1, 1] == 9
    # per axis the 4 outputs read 2 + 3 + 3 + 2 in-bounds taps: 10 · 10 in all
    assert fan.sum() == 10 * 10


def test_linear_sops_and_real_valued_inputs() -> None:
    lin = nn.Linear(5, 3, bias=False)
    x = torch.tensor([[1.0, 0, 1, 1, 0], [0, 0, 0, 1, 0]])
    with energy_counter(nn.Sequential(nn.Identity(), lin), timesteps=1) as counter:
        counter.model(x)
    assert counter.counts()["1"] == {"sops": 4 * 3 / 2, "macs": 0.0}
    real = x * 0.5  # not binary: every multiply-accumulate counts, zeros included
    with energy_counter(nn.Sequential(nn.Identity(), lin), timesteps=1) as counter:
        counter.model(real)
    assert counter.counts()["1"] == {"sops": 0.0, "macs": 5 * 3}


def _fire_easily(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if is_neuron(m):
            m.v_threshold = 0.05
    return net


def test_encoding_layer_counts_macs_per_time_step_and_the_rest_sops() -> None:
    torch.manual_seed(0)
    net = _fire_easily(SNNBackbone("SRB_k3,SCB_k3,skip,SRB_k5,SCB_k5", 4, 3, 10, 8, 1).eval())
    x = torch.randn(5, 1, 8, 8)
    result = measure_energy(net, x, "45nm")
    stem = result["per_layer"]["stem.conv"]
    # C_out · H · W · C_in · 3 · 3 multiply-accumulates per step, T = 3 steps
    assert stem == {"sops": 0.0, "macs": 4 * 8 * 8 * 1 * 9 * 3, "energy_pj": 6912 * 4.6}
    # every other layer sees spikes: its SOPs are the brute-force count, summed over T·N
    inputs = {}

    def keep(name):
        def hook(_module, args, _out):
            inputs.setdefault(name, args[0].clone())  # returns None: the output stays

        return hook

    hooks = [m.register_forward_hook(keep(n)) for n, m in net.named_modules()
             if n in ("body.0.body.0.0", "head.fc.0")]
    measure_energy(net, x)
    for h in hooks:
        h.remove()
    conv = net.get_submodule("body.0.body.0.0")
    assert result["per_layer"]["body.0.body.0.0"]["sops"] * 5 == brute_sops(
        conv, inputs["body.0.body.0.0"])
    fc_in = inputs["head.fc.0"]
    assert result["per_layer"]["head.fc.0"]["sops"] * 5 == pytest.approx(
        float((fc_in != 0).sum()) * 100)
    assert result["sops"] > 0 and result["macs"] == 6912
    assert result["energy_uj"] == pytest.approx((result["sops"] * 0.9 + 6912 * 4.6) * 1e-6)


def test_event_frames_are_spikes_from_the_first_layer_on() -> None:
    torch.manual_seed(1)
    net = SNNBackbone("skip,skip,skip,skip,skip", 4, 2, 10, 8, 2).eval()
    frames = (torch.rand(2, 3, 2, 8, 8) < 0.2).float()  # [T, N, C, H, W] binary events
    result = measure_energy(net, frames)
    stem = result["per_layer"]["stem.conv"]
    assert stem["macs"] == 0
    assert stem["sops"] * 3 == brute_sops(net.stem.conv, frames.flatten(0, 1))


def test_relu_networks_count_macs_only_and_batches_do_not_matter() -> None:
    torch.manual_seed(0)
    with neuron_kind("relu"):
        net = SNNBackbone("SCB_k3,skip,skip,skip,skip", 2, 1, 10, 8, 1).eval()
    x = torch.randn(6, 1, 8, 8)
    whole = measure_energy(net, x)
    assert whole["sops"] == 0
    # stem 2·64·9; the SCB convs 2·64·2·9 each; head: 4C·1·1 = 8 features → 100 outputs
    assert whole["per_layer"]["stem.conv"]["macs"] == 2 * 64 * 9
    assert whole["per_layer"]["body.0.body.0.0"]["macs"] == 2 * 64 * 2 * 9
    assert whole["per_layer"]["head.fc.0"]["macs"] == 4 * 2 * 1 * 1 * 100
    with energy_counter(net) as counter:
        net(x[:2])
        net(x[2:])
    assert counter.result()["macs"] == whole["macs"]


# ---------------------------------------------------------------- profiles


def test_profiles_are_horowitz_45nm_figures_and_the_arithmetic() -> None:
    # Horowitz (ISSCC 2014): add / multiply energies at 45 nm, a MAC = one of each
    table = {"45nm": (3.7, 0.9), "45nm-fp16": (1.1, 0.4), "45nm-int32": (3.1, 0.1),
             "45nm-int8": (0.2, 0.03)}
    assert PROFILES.names() == sorted(table)
    for name, (mult, add) in table.items():
        p = PROFILES.get(name)
        assert p.e_mac == pytest.approx(mult + add) and p.e_ac == add
        assert energy_pj(1000, 10, name) == pytest.approx(1000 * add + 10 * (mult + add))
    assert energy_pj(1000, 10) == pytest.approx(946.0)
    with pytest.raises(NasforgeError, match="unknown energy profile '7nm'"):
        energy_pj(1, 1, "7nm")


# ---------------------------------------------------------------- fitness, budget


def test_fitness_formula_with_energy() -> None:
    assert fitness(80.0, 500, 1000, -0.08) == 80.0 * 0.5 ** -0.08
    assert fitness(80.0, 500, 1000, -0.08, energy=2.0, e_avg=4.0, energy_lam=-0.5) == \
        pytest.approx(80.0 * 0.5 ** -0.08 * 0.5 ** -0.5)
    assert fitness(80.0, 500, 1000, 0.0, energy=8.0, e_avg=4.0, energy_lam=-1.0) == 40.0
    # energy_lam = 0: exactly the spike-aware value, whatever the energy
    assert fitness(80.0, 500, 1000, -0.08, energy=9.0, e_avg=1.0) == fitness(80.0, 500, 1000,
                                                                           -0.08)
    with pytest.raises(NasforgeError):
        fitness(80.0, 500, 1000, -0.08, energy=None, e_avg=1.0, energy_lam=-0.5)


def synthetic(arch):
    """acc = SRB_k5 count + noise; spikes 1000; energy = 1 + SCB_k5 count (µJ)."""
    noise = 0.1 * random.Random(",".join(arch)).random()
    return arch.count("SRB_k5") + noise, 1000.0, 1.0 + arch.count("SCB_k5")


SMALL = dict(rounds=4, pool=10, top_k=4, mutations=3, crossovers=3, n_avg=1000.0, seed=3)


def test_default_fitness_unchanged_by_measured_energy() -> None:
    plain = evolutionary_search(lambda a: synthetic(a)[:2], **SMALL)
    measured = evolutionary_search(synthetic, **SMALL)
    assert [(r.arch, r.fitness) for r in plain.history] == \
        [(r.arch, r.fitness) for r in measured.history]
    assert plain.params == measured.params and measured.e_avg is None
    assert all(r.energy == synthetic(r.arch)[2] for r in measured.history)


def test_energy_aware_fitness_uses_the_first_rounds_mean() -> None:
    result = evolutionary_search(synthetic, lam=0.0, energy_lam=-1.0, **SMALL)
    first = [r for r in result.history if r.round == 1]
    e_avg = sum(r.energy for r in first) / len(first)
    assert result.e_avg == pytest.approx(e_avg)
    for r in result.history:
        assert r.fitness == pytest.approx(r.acc * (r.energy / e_avg) ** -1.0)
    data = result.to_json()
    assert data["e_avg"] == result.e_avg and data["params"]["energy_lam"] == -1.0
    assert SearchResult.from_json(json.loads(json.dumps(data))).history == result.history


def test_budget_keeps_expensive_architectures_out() -> None:
    result = evolutionary_search(synthetic, max_energy=2.0, **SMALL)
    assert result.history and result.over_budget
    assert all(r.energy <= 2.0 for r in result.history)
    assert all(r.energy > 2.0 for r in result.over_budget)
    assert all(a.count("SCB_k5") <= 1 for a in result.top)
    total = len(result.history) + len(result.over_budget)
    assert total == SMALL["rounds"] * SMALL["pool"]
    assert len({r.arch for r in result.history + result.over_budget}) == total
    rnd = random_search(synthetic, max_energy=2.0, budget=30, n_avg=1000.0, seed=1)
    assert all(r.energy <= 2.0 for r in rnd.history) and rnd.over_budget
    with pytest.raises(NasforgeError, match="no evaluated architecture fits the energy budget "
                       "of 0.5 µJ per image"):
        evolutionary_search(synthetic, max_energy=0.5, **SMALL)
    with pytest.raises(NasforgeError, match="must be positive"):
        evolutionary_search(synthetic, max_energy=-1.0, **SMALL)
    with pytest.raises(NasforgeError, match="measured no energy"):
        evolutionary_search(lambda a: synthetic(a)[:2], max_energy=2.0, **SMALL)


# ---------------------------------------------------------------- warm start


class Failing:
    """``synthetic`` that raises at its ``fail_at``-th call."""

    def __init__(self, fail_at: int) -> None:
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, arch):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("interrupted")
        return synthetic(arch)


class SkipProxy:
    """Synthetic proxy: the number of skip blocks (ties broken by the draw order)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, archs):
        self.calls += 1
        return [float(a.count("skip")) for a in archs]


def test_warm_start_keeps_the_proxy_best_and_is_reproducible(tmp_path) -> None:
    proxy = SkipProxy()
    kw = dict(SMALL, warm_start=40, proxy=proxy, proxy_name="skips")
    first = evolutionary_search(synthetic, **kw)
    again = evolutionary_search(synthetic, **kw)
    assert [r.arch for r in first.history] == [r.arch for r in again.history]
    drawn = sample_unique(random.Random(SMALL["seed"]), DEFAULT_BLOCKS, 5, 40, set())
    best = sorted(range(40), key=lambda i: (-drawn[i].count("skip"), i))[:SMALL["pool"]]
    assert [r.arch for r in first.history if r.round == 1] == [drawn[i] for i in best]
    assert first.params["warm_start"] == 40 and first.params["warm_proxy"] == "skips"
    assert len(first.to_json()["warm_scores"]) == 40
    # a resumed run replays the saved proxy scores instead of scoring again
    proxy.calls = 0
    state = dict(kw, state_path=tmp_path / "state.json")
    with pytest.raises(RuntimeError, match="interrupted"):
        evolutionary_search(Failing(15), **state)  # in round 2
    assert proxy.calls == 1
    resumed = evolutionary_search(synthetic, **state)
    assert proxy.calls == 1
    assert [r.arch for r in resumed.history] == [r.arch for r in first.history]
    with pytest.raises(NasforgeError, match="must exceed the pool"):
        evolutionary_search(synthetic, **dict(kw, warm_start=10))


# ---------------------------------------------------------------- plot, train, CLI


def test_energy_pareto_front_and_figure() -> None:
    rows = [{"arch": "a", "acc": 80.0, "energy": 1.0}, {"arch": "b", "acc": 70.0, "energy": 2.0},
            {"arch": "c", "acc": 90.0, "energy": 3.0}, {"arch": "d", "acc": 90.0, "energy": 4.0},
            {"arch": "e", "acc": 80.0, "energy": 1.0}]
    assert [r["arch"] for r in energy_pareto_front(rows)] == ["a", "e", "c"]
    fig = energy_pareto_figure(rows, [{"arch": "f", "acc": 95.0, "energy": 9.0}], best="c",
                               max_energy=5.0)
    ax = fig.axes[0]
    front = next(line for line in ax.lines if line.get_gid() == "front")
    assert list(front.get_xdata()) == [1.0, 1.0, 3.0]
    best = next(c for c in ax.collections if c.get_gid() == "best")
    assert best.get_offsets().tolist() == [[3.0, 90.0]]
    over = next(c for c in ax.collections if c.get_gid() == "over")
    assert over.get_offsets().tolist() == [[9.0, 95.0]]
    with pytest.raises(NasforgeError):
        energy_pareto_figure([])


def test_snn_train_records_the_energy_of_its_test_pass(tmp_path, one_thread) -> None:
    cfg = load_config(None, ["snn.channels=4", "snn.timesteps=2", "snn.batch_size=64",
                             "snn.epochs=1", "snn.lr=0.005", "run.progress=false",
                             "snn.arch=SRB_k3,skip,SCB_k5,SRB_k5,SCB_k3",
                             "snn.energy_profile=45nm-int8"])
    results = run_snn_train(cfg, tmp_path / "t")
    model = load_snn_model(tmp_path / "t")
    data = load_snn_data("digits")
    ((x, _y),) = list(snn_batches(data, data.test, 1000, device=torch.device("cpu"),
                                  shuffle=False).epoch(0))
    own = measure_energy(model, x, "45nm-int8")
    assert results["energy_profile"] == "45nm-int8"
    assert results["sops"] == pytest.approx(own["sops"])
    assert results["macs"] == own["macs"] == 4 * 64 * 9 * 2
    assert results["energy_uj"] == pytest.approx((results["sops"] * 0.03
                                                  + results["macs"] * 0.23) * 1e-6)
    assert math.isfinite(results["energy_uj"]) and results["sops"] > 0


@pytest.mark.parametrize("argv, message", [
    (["snn", "describe", "--arch", "SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5", "--measure",
      "--energy-profile", "7nm"], "unknown energy profile '7nm'"),
    (["snn", "search", "--supernet", "x", "--out", "y", "--max-energy", "-1"],
     "--max-energy: must be above 0"),
    (["snn", "search", "--supernet", "x", "--out", "y", "--max-energy", "0"],
     "--max-energy: must be above 0"),
    (["snn", "train", "--arch", "SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5", "--dataset", "digits",
      "--energy-profile", "bogus", "--out", "OUT"], "unknown energy profile 'bogus'"),
    (["snn", "search", "--resume", "OUT", "--max-energy", "1", "--energy-lam", "-1"],
     "cannot honour --energy-lam, --max-energy"),
])
def test_cli_rejects_bad_energy_options_in_one_line(argv, message, tmp_path) -> None:
    argv = [str(tmp_path / "t") if a == "OUT" else a for a in argv]
    res = run_cli(*argv)
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and message in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "t").exists()


def test_cli_describe_prints_layers_and_the_total(tmp_path) -> None:
    res = run_cli("snn", "describe", "--arch", "SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5", "--dataset",
                  "digits", "--channels", "4", "--timesteps", "2", "--measure",
                  "--energy-profile", "45nm-int8", check=True)
    lines = res.stdout.splitlines()
    stem = next(line for line in lines if line.startswith("stem.conv"))
    assert stem.split()[1:3] == ["0", "4,608"]  # 4·8·8·1·9 MACs per step, T = 2
    assert "profile 45nm-int8" in lines[-1] and "uJ" in lines[-1]
    info = json.loads(run_cli("snn", "describe", "--arch", "SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5",
                              "--dataset", "digits", "--channels", "4", "--timesteps", "2",
                              "--measure", "--json", check=True).stdout)
    assert info["energy"]["profile"] == "45nm" and info["energy"]["macs"] == 4608
