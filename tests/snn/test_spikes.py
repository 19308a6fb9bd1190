"""Spike counts equal spikes recorded independently; the describe command works."""

import json

import pytest
import torch
from torch import nn

from conftest import run_cli
from nasforge.errors import NasforgeError
from nasforge.snn.backbone import SNNBackbone, SNNSuperNet
from nasforge.snn.neuron import is_neuron, reset_net
from nasforge.snn.spikes import count_spikes, describe_snn, spike_counter

AUTOSNN = "SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5"


def _recorded(model: nn.Module, x: torch.Tensor) -> tuple[dict, dict]:
    """Whole outputs of neurons and of max-pools, kept by plain hooks (the reference)."""
    neurons: dict[str, torch.Tensor] = {}
    pools: dict[str, torch.Tensor] = {}
    handles = []
    for name, m in model.named_modules():
        if is_neuron(m):
            handles.append(m.register_forward_hook(
                lambda _m, _i, out, name=name: neurons.__setitem__(name, out.clone())))
        if isinstance(m, nn.MaxPool2d):  # inside SeqToANNContainer: output is [T·N, ...]
            handles.append(m.register_forward_hook(
                lambda _m, _i, out, name=name: pools.__setitem__(name, out.clone())))
    reset_net(model)
    with torch.no_grad():
        model(x)
    reset_net(model)
    for h in handles:
        h.remove()
    return neurons, pools


@pytest.fixture
def model() -> SNNBackbone:
    torch.manual_seed(0)
    net = SNNBackbone(AUTOSNN, 4, timesteps=2, num_classes=10).eval()
    _excite(net)
    return net


def _excite(net: nn.Module) -> None:
    """Raise BN gains so an untrained network fires in every layer (pools included)."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(2.0)
            m.bias.data.fill_(0.5)


def test_counts_equal_recorded_spikes(model: SNNBackbone) -> None:
    x = torch.rand(2, 3, 32, 32) * 4
    neurons, pools = _recorded(model, x)
    for out in neurons.values():
        assert set(out.unique().tolist()) <= {0.0, 1.0}
    neuron_total = sum(o.double().sum().item() for o in neurons.values()) / 2
    pool_total = sum(o.double().sum().item() for o in pools.values()) / 2
    assert neuron_total > 0 and pool_total > 0

    only = count_spikes(model, x, "neurons")
    assert only["total"] == pytest.approx(neuron_total)
    assert set(only["per_layer"]) == set(neurons)
    for name, out in neurons.items():
        assert only["per_layer"][name] == pytest.approx(out.double().sum().item() / 2)
        assert only["neurons"][name] == out[0, 0].numel()
        assert only["rates"][name] == pytest.approx(out.double().mean().item())

    thesis = count_spikes(model, x)  # default convention
    assert thesis["total"] == pytest.approx(neuron_total + pool_total)
    assert len(thesis["per_layer"]) == len(neurons) + 3


def test_counter_accumulates_and_survives_supernet() -> None:
    torch.manual_seed(0)
    supernet = SNNSuperNet(4, timesteps=2, num_classes=10).eval()
    _excite(supernet)
    x = torch.rand(2, 3, 32, 32) * 4
    one = count_spikes(supernet, x, path=AUTOSNN)
    standalone = count_spikes(supernet.extract(AUTOSNN).eval(), x)
    assert one["total"] > 0
    assert one["total"] == pytest.approx(standalone["total"])
    with torch.no_grad(), spike_counter(supernet) as counter:
        for _ in range(2):
            supernet(x, AUTOSNN)
            reset_net(supernet)
    both = counter.result(timesteps=2)
    assert counter.images == 4
    assert both["total"] == pytest.approx(one["total"])  # per image: same batch twice


def test_unknown_convention(model: SNNBackbone) -> None:
    with pytest.raises(NasforgeError, match="unknown spike convention"):
        count_spikes(model, torch.rand(1, 3, 32, 32), "events")


def test_describe_snn() -> None:
    info = describe_snn(AUTOSNN, 16, "cifar10", timesteps=2)
    assert round(info["params_m"], 2) == 0.42
    # stem 16·32² + TBD1 2·16·32² + TBD2,3 2·32·16² + TBD4,5 2·2·64·8² + linear PLIF 100
    assert info["neurons"] == 16 * 1024 * 3 + 2 * 32 * 256 + 4 * 64 * 64 + 100
    measured = describe_snn(AUTOSNN, 4, "digits", timesteps=2, measure=True, batch=2)
    assert measured["spikes_per_image"] >= 0 and measured["data"] == "digits"


def test_cli_snn_describe() -> None:
    res = run_cli("snn", "describe", "--arch", AUTOSNN, "--channels", "4", "--timesteps", "2",
                  "--dataset", "digits", "--measure", "--batch", "2", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["dataset"] == "digits" and "spikes_per_image" in info
    bad = run_cli("snn", "describe", "--arch", "SRB_k5,SRB_k9", "--channels", "4")
    assert bad.returncode == 2
    assert "unknown SNN block 'SRB_k9'" in bad.stderr
