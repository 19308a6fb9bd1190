"""AutoSNN against the authors' code (nabk89/AutoSNN) and chapter 5: spaces, blocks, BN.

Parameter counts below were computed by building the authors' ``retrain/childnet.py`` and
``train_supernet/supernet.py`` networks (``space.py``'s AutoSNN_16, SNN_2 = Variant 1,
SNN_3 = Variant 2, SNN_4 = Variant 3; CIFAR-10, 10 classes) and counting their parameters.
"""

import copy

import pytest
import torch
from torch import nn

from nasforge.errors import NasforgeError
from nasforge.snn.backbone import SNNBackbone, SNNSuperNet, layout
from nasforge.snn.blocks import (
    SIB,
    FactorizedReduce,
    StepBN,
    bn_mode,
    build_block,
    set_bn_mode,
)
from nasforge.snn.neuron import is_neuron, reset_net

pytestmark = pytest.mark.usefixtures("one_thread")


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# (arch, variant, space, parameters of the authors' network)
AUTHORS_COUNTS = [
    ("SCB_k3," * 4 + "SCB_k3", None, "default", 269_596),  # Table 5.1 proposed / 5.2 SCB
    ("SCB_k3," * 4 + "SCB_k3", "v1", "default", 173_597),  # SNN_2
    ("SCB_k3," * 4 + "SCB_k3", "v3", "default", 269_599),  # SNN_4
    ("SRB_k3," * 4 + "SRB_k3", None, "default", 272_348),  # Table 5.2 SRB
    ("SIB_k3_e1," * 4 + "SIB_k3_e1", None, "default", 181_185),  # Table 5.2 SIB e1
    ("SIB_k3_e3," * 4 + "SIB_k3_e3", None, "default", 690_881),  # Table 5.2 SIB e3
    ("SIB_k5_e1," * 4 + "SIB_k5_e1", None, "default", 287_681),
    ("SIB_k5_e3," * 4 + "SIB_k5_e3", None, "default", 1_649_345),
    ("SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5", None, "default", 417_626),  # arch.AutoSNN
    ("SCB_k3," * 7 + "SCB_k3", "v2", "default", 686_242),  # SNN_3, Table 5.1 V2
    ("SRB_k3," * 7 + "SRB_k3", "v2", "default", 697_442),  # Table 5.9 V2, SRB_k3
    ("skip," * 7 + "skip", "v2", "default", 216_469),
    ("SRB_k5,skip,SCB_k3,SRB_k3,skip,SCB_k5,SRB_k5,skip", "v2", "default", 676_575),
    ("SCB_k3," * 7 + "SCB_k3", None, "v2-8tbd", 686_242),  # Table 5.9 = SNN_3
]


@pytest.mark.parametrize(("arch", "variant", "space", "count"), AUTHORS_COUNTS)
def test_parameter_counts_match_the_authors_networks(arch, variant, space, count) -> None:
    assert _params(SNNBackbone(arch, 16, 2, 10, 32, 3, variant, space)) == count


def test_supernet_counts_match_the_authors() -> None:
    assert _params(SNNSuperNet(16, 2)) == 1_367_868  # AutoSNN_16 super-network
    assert _params(SNNSuperNet(16, 2, variant="v2")) == 3_866_709  # SNN_3 super-network


def test_variant_2_doubles_channels_in_each_stride_2_block() -> None:
    slots = [(s.c_in, s.c_out, s.stride) for s in layout(16, "v2")]
    assert slots == [(16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 32, 1), (32, 64, 2),
                     (64, 64, 1), (64, 64, 1), (64, 128, 2)]
    net = SNNBackbone("skip," * 7 + "skip", 16, 2, variant="v2")
    assert net.head.fc[0].in_features == 128 * 4 * 4  # flatten 8C × 4 × 4
    assert all(isinstance(net.body[i].body, FactorizedReduce) for i in (1, 4, 7))


def test_sib_is_full_conv_with_projection_shortcut() -> None:
    """Table 5.2's SIB networks change by ~4x against a depthwise reading of Fig. 5.6."""
    sib = build_block("SIB_k3_e3", 4, 8)
    mid = sib.body[2][0]
    assert mid.groups == 1 and mid.weight.shape == (12, 12, 3, 3)
    assert isinstance(sib.shortcut[0], nn.Conv2d) and sib.shortcut[0].kernel_size == (1, 1)
    assert isinstance(sib.shortcut[1], nn.BatchNorm2d)
    assert isinstance(build_block("SIB_k3_e3", 4, 4).shortcut, nn.Identity)
    assert build_block("SIB_k3_e3", 4, 8, 2).shortcut is None  # MobileNetV2 Fig. 4(d)
    depthwise = 153_313  # the same network with a depthwise middle conv and no projection
    assert 4.4 < 690_881 / depthwise < 4.6


def test_factorized_reduce_matches_its_definition() -> None:
    torch.manual_seed(0)
    fr = FactorizedReduce(3, 6).eval()
    for m in fr.modules():
        if is_neuron(m):
            m.v_threshold = 0.1
    x = torch.rand(2, 4, 3, 8, 8)
    y = fr(x)
    flat = x.flatten(0, 1)
    a = nn.functional.conv2d(flat, fr.conv_1.weight, stride=2)
    b = nn.functional.conv2d(flat[:, :, 1:, 1:], fr.conv_2.weight, stride=2)
    reset_net(fr)
    expected = fr.out(fr.bn(torch.cat([a, b], 1)).unflatten(0, (2, 4)))
    assert y.shape == (2, 4, 6, 4, 4) and y.sum() > 0
    assert torch.equal(y, expected)
    with pytest.raises(NasforgeError, match="even number of output channels"):
        build_block("skip", 4, 5, 2)


def _spiky(model: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    for m in model.modules():
        if is_neuron(m):
            m.v_threshold = 0.3
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.3)
    return model


def _step_loop(model: SNNBackbone, x: torch.Tensor) -> torch.Tensor:
    """The authors' single-step loop: stem once, then every layer on one time step at a
    time (a [1, N, ...] slice: batch norm sees that step alone), neurons keep their state."""
    s = model.stem(x)
    outs = []
    for t in range(model.timesteps):
        y = s[t : t + 1]
        for layer in model.body:
            y = layer(y)
        outs.append(model.head(model.gap(y)))
    return torch.cat(outs).mean(0)


def _bn_state(model: nn.Module) -> list[torch.Tensor]:
    return [t.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
            for t in (m.running_mean, m.running_var, m.num_batches_tracked)]


@pytest.mark.parametrize(("arch", "variant"), [
    ("SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5", None),
    ("SRB_k5,skip,SCB_k3,SRB_k3,SIB_k3_e3,SCB_k5,SRB_k5,skip", "v2"),
])
def test_per_step_batch_norm_equals_the_single_step_loop(arch, variant) -> None:
    torch.manual_seed(0)
    model = _spiky(SNNBackbone(arch, 4, 3, 10, 16, 3, variant)).train()
    loop = copy.deepcopy(model)
    x = torch.rand(6, 3, 16, 16) * 3
    with torch.no_grad():
        a = model(x)
        reset_net(model)
        b = _step_loop(loop, x)
        reset_net(loop)
    assert a.sum() > 0
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    for u, v in zip(_bn_state(model), _bn_state(loop), strict=True):
        torch.testing.assert_close(u, v)
    # merged statistics are a different computation in training, the same one in eval
    merged = set_bn_mode(copy.deepcopy(loop), "merged")
    per_step = copy.deepcopy(loop)
    with torch.no_grad():
        assert not torch.equal(_bn_after(merged, x), _bn_after(per_step, x))
        merged = set_bn_mode(copy.deepcopy(loop), "merged").eval()
        assert torch.equal(merged(x), copy.deepcopy(loop).eval()(x))


def _bn_after(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model(x)
    reset_net(model)
    return torch.cat([t.flatten().float() for t in _bn_state(model)])


def test_bn_mode_is_chosen_at_build_time_and_checked() -> None:
    assert all(m.per_step for m in SNNBackbone("SCB_k3," * 4 + "SCB_k3", 4, 2).modules()
               if isinstance(m, StepBN))
    with bn_mode("merged"):
        net = SNNBackbone("SCB_k3," * 4 + "SCB_k3", 4, 2)
    assert not any(m.per_step for m in net.modules() if isinstance(m, StepBN))
    with pytest.raises(NasforgeError, match="unknown batch-norm mode 'x'"), bn_mode("x"):
        pass
    assert isinstance(build_block("SIB_k3_e1", 4, 4), SIB)
