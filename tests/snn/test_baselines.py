"""Hand-crafted spiking baselines of Table 5.4: sizes, interface, gradients, spikes, errors."""

import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.snn.backbone import SpikePool
from nasforge.snn.baselines import SNN_MODELS, SpikingLinear, build_snn_model
from nasforge.snn.neuron import is_neuron, reset_net
from nasforge.snn.spikes import count_spikes

NAMES = ["cifarnet-fang", "cifarnet-wu", "resnet11-lee", "resnet19-zheng"]

# Table 5.4, millions of parameters on CIFAR-10. The thesis prints 1.17 for ResNet11-Lee at
# C=16; the exact count 1,164,828 rounds to 1.16 (1.17 is 1.1648 → 1.165 → 1.17).
TABLE = {
    "cifarnet-wu": {16: 0.71, 32: 2.83, 64: 11.28, 128: 45.05},
    "cifarnet-fang": {16: 0.16, 32: 0.60, 64: 2.34, 128: 9.23, 256: 36.72},
    "resnet11-lee": {16: 1.16, 32: 4.60, 64: 18.30},
    "resnet19-zheng": {16: 0.23, 32: 0.93, 64: 3.68, 128: 14.69},
}
CASES = [(name, c, m) for name, row in TABLE.items() for c, m in row.items()]


def _params(name: str, channels: int, **kwargs: int) -> int:
    with torch.device("meta"):  # counting needs shapes, not memory
        model = build_snn_model(name, channels, **kwargs)
    return sum(p.numel() for p in model.parameters())


# Independent hand count from the layer lists: conv weights + BN (γ, β) + one w per PLIF.
def _conv(c_in: int, c_out: int, k: int = 3) -> int:
    return c_in * c_out * k * k + 2 * c_out


def _srb(c_in: int, c_out: int, stride: int = 1) -> int:
    shortcut = _conv(c_in, c_out, 1) if c_in != c_out or stride != 1 else 0
    return _conv(c_in, c_out) + _conv(c_out, c_out) + shortcut + 2  # two PLIFs


def _hand_count(name: str, c: int, classes: int = 10) -> int:
    if name == "cifarnet-wu":
        convs = _conv(3, c) + _conv(c, 2 * c) + _conv(2 * c, 4 * c) + _conv(4 * c, 8 * c)
        convs += _conv(8 * c, 4 * c) + 5 + 2  # 5 conv PLIFs, 2 avg-pool PLIFs
        return convs + 4 * c * 64 * 8 * c + 8 * c * 4 * c + 4 * c * 10 * classes + 3
    if name == "cifarnet-fang":
        convs = _conv(3, c) + 5 * _conv(c, c) + 6
        return convs + c * 64 * 8 * c + 8 * c * 10 * classes + 2
    if name == "resnet11-lee":
        body = _srb(c, 2 * c) + _srb(2 * c, 4 * c, 2) + _srb(4 * c, 8 * c) + _srb(8 * c, 8 * c, 2)
        return _conv(3, c) + 1 + 1 + body + 8 * c * 16 * 16 * c + 16 * c * 10 * classes + 2
    body = 3 * _srb(c, c) + _srb(c, 2 * c, 2) + 2 * _srb(2 * c, 2 * c)
    body += _srb(2 * c, 4 * c, 2) + _srb(4 * c, 4 * c) + 1  # + avg-pool PLIF
    return _conv(3, c) + 1 + body + 4 * c * 16 * 2 * c + 2 * c * 10 * classes + 2


@pytest.mark.parametrize(("name", "channels", "millions"), CASES)
def test_parameter_counts_match_table_5_4(name: str, channels: int, millions: float) -> None:
    count = _params(name, channels)
    assert count == _hand_count(name, channels)
    assert round(count / 1e6, 2) == millions


def test_resnet11_lee_c16_exact() -> None:
    assert _hand_count("resnet11-lee", 16) == 1_164_828
    assert _params("resnet11-lee", 16) == 1_164_828


def test_registry_and_attributes() -> None:
    assert SNN_MODELS.names() == NAMES
    model = build_snn_model("resnet19-zheng", 4, timesteps=3, num_classes=7)
    assert (model.name, model.channels, model.timesteps, model.num_classes) == (
        "resnet19-zheng", 4, 3, 7)


def _linear_inputs(model: torch.nn.Module) -> int:
    first = next(m for m in model.modules() if isinstance(m, SpikingLinear))
    return first.fc[0].in_features


@pytest.mark.parametrize(("name", "width", "side"), [
    ("cifarnet-wu", 4, 2), ("cifarnet-fang", 1, 2),
    ("resnet11-lee", 8, 1), ("resnet19-zheng", 4, 1),
])
def test_flatten_follows_input_size(name: str, width: int, side: int) -> None:
    with torch.device("meta"):
        digits = build_snn_model(name, 4, in_size=8, in_channels=1)
        tiny = build_snn_model(name, 4, in_size=64, num_classes=200)
    assert _linear_inputs(digits) == width * 4 * side * side
    assert _linear_inputs(tiny) == width * 4 * (4 * side) ** 2  # 64 → 32 in the stem


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("in_channels", "size"), [(1, 8), (3, 32)])
def test_forward_backward_votes(name: str, in_channels: int, size: int) -> None:
    torch.manual_seed(0)
    timesteps = 2
    model = build_snn_model(name, 4, timesteps, num_classes=10, in_size=size,
                            in_channels=in_channels)
    # At init, a PLIF fed avg-pooled spikes (≤ 1) stays below threshold 1 for ~24 steps, so
    # the vote would be all zeros; a low threshold makes the check below non-vacuous.
    for module in model.modules():
        if is_neuron(module):
            module.v_threshold = 0.1
    x = torch.rand(2, in_channels, size, size) * 4
    out = model(x)
    assert out.shape == (2, 10)
    assert out.min() >= 0 and out.max() <= 1 and out.sum() > 0
    votes = out * 10 * timesteps  # voting of spikes: multiples of 1/(10·T)
    assert torch.allclose(votes, votes.round(), atol=1e-5)
    out.sum().backward()
    grad = model.stem.conv.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    reset_net(model)


def test_frame_input_dvs() -> None:
    torch.manual_seed(0)
    model = build_snn_model("resnet11-lee", 2, timesteps=2, num_classes=11, in_size=128,
                            in_channels=2)
    frames = (torch.rand(2, 1, 2, 128, 128) < 0.2).float()
    with torch.no_grad():
        out = model(frames)
    assert out.shape == (1, 11)
    assert out.min() >= 0 and out.max() <= 1


def test_fang_max_pool_counted_in_thesis_convention_only() -> None:
    torch.manual_seed(0)
    # Train mode: BN normalises with batch statistics, so spikes reach both max-pools.
    model = build_snn_model("cifarnet-fang", 4, timesteps=2, in_size=8, in_channels=1)
    pools = [n for n, m in model.named_modules() if isinstance(m, SpikePool) and m.kind == "max"]
    assert len(pools) == 2
    x = torch.rand(2, 1, 8, 8) * 4
    thesis = count_spikes(model, x, "thesis")
    neurons = count_spikes(model, x, "neurons")
    assert set(pools) <= set(thesis["per_layer"])
    assert not set(pools) & set(neurons["per_layer"])
    assert thesis["neurons"][pools[0]] == 4 * 4 * 4 and thesis["neurons"][pools[1]] == 4 * 2 * 2
    extra = sum(thesis["per_layer"][p] for p in pools)
    assert extra > 0
    assert thesis["total"] == pytest.approx(neurons["total"] + extra)


def test_errors() -> None:
    with pytest.raises(NasforgeError, match=(
            "unknown SNN model 'resnet20'; choose from: cifarnet-fang, cifarnet-wu, "
            "resnet11-lee, resnet19-zheng")):
        build_snn_model("resnet20")
    with pytest.raises(NasforgeError, match="input size 12 unsupported by resnet11-lee") as err:
        build_snn_model("resnet11-lee", 2, in_size=12)
    assert "\n" not in str(err.value) and "multiple of 8" in str(err.value)
    for name in NAMES:
        with pytest.raises(NasforgeError, match="input size 30 unsupported"):
            build_snn_model(name, 2, in_size=30)
    with pytest.raises(NasforgeError, match="input size 4 unsupported by resnet19-zheng"):
        build_snn_model("resnet19-zheng", 2, in_size=4)
    with pytest.raises(NasforgeError, match="channels must be at least 1"):
        build_snn_model("cifarnet-wu", 0)
    with torch.device("meta"):
        wu12 = build_snn_model("cifarnet-wu", 2, in_size=12)  # 12 → 3×3: fine for Wu
    assert _linear_inputs(wu12) == 4 * 2 * 3 * 3
