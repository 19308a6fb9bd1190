"""Macro backbone, variants, enlarged spaces, parsing and the super-network."""

import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.snn.backbone import SNNBackbone, SNNSuperNet, layout, num_tbd, parse_arch
from nasforge.snn.neuron import reset_net

AUTOSNN = "SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5"


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("channels", "millions"),
                         [(16, 0.42), (32, 1.46), (64, 5.44), (128, 20.92)])
def test_autosnn_parameter_counts_match_table_5_4(channels: int, millions: float) -> None:
    model = SNNBackbone(AUTOSNN, channels, timesteps=2, num_classes=10)
    assert round(_params(model) / 1e6, 2) == millions


def test_autosnn_c16_exact_count() -> None:
    """Hand count: stem 465, TBDs 314,760, linear 1024·100 + PLIF 1."""
    assert _params(SNNBackbone(AUTOSNN, 16)) == 417_626


def test_parse_arch_errors() -> None:
    assert parse_arch(" SRB_k5, SRB_k5,skip,SRB_k3,SRB_k5 ") == AUTOSNN.split(",")
    with pytest.raises(NasforgeError, match=r"unknown SNN block 'SRB_k9'; choose from: SCB_k3"):
        parse_arch("SRB_k9,SRB_k5,skip,SRB_k3,SRB_k5")
    with pytest.raises(NasforgeError, match="needs 5 blocks, got 4"):
        parse_arch("SRB_k5,SRB_k5,skip,SRB_k3")
    with pytest.raises(NasforgeError) as err:
        SNNBackbone("SRB_k5,SRB_k5,conv,SRB_k3,SRB_k5", 4, 2)
    assert "\n" not in str(err.value)
    with pytest.raises(NasforgeError, match="unknown variant"):
        layout(4, "v4")
    with pytest.raises(NasforgeError, match="unknown SNN space"):
        layout(4, None, "huge")
    with pytest.raises(NasforgeError, match="takes no variant"):
        layout(4, "v1", "tbd-before-pool")
    assert layout(4, "v2", "v2-8tbd") == layout(4, None, "v2-8tbd") == layout(4, "v2")


def test_layout_sizes() -> None:
    assert num_tbd() == 5 and num_tbd("v1") == 5 and num_tbd("v3") == 5
    assert num_tbd("v2") == 8 and num_tbd(None, "v2-8tbd") == 8
    assert num_tbd(None, "tbd-before-pool") == 8
    strides = [s.stride for s in layout(4, "v2") if s.kind == "tbd"]
    assert strides == [1, 2, 1, 1, 2, 1, 1, 2]


CASES = [
    (AUTOSNN, None, "default"),
    ("SCB_k3,SCB_k3,SCB_k3,SCB_k3,SCB_k3", "v1", "default"),
    ("SCB_k3," * 7 + "skip", "v2", "default"),
    ("SRB_k3,skip,SCB_k5,SRB_k5,SCB_k3", "v3", "default"),
    ("SRB_k3," * 7 + "SCB_k5", None, "v2-8tbd"),
    ("SCB_k3,skip," * 4, None, "tbd-before-pool"),
    ("SIB_k3_e1,SIB_k3_e3,SIB_k5_e1,SIB_k5_e3,SIB_k3_e3", None, "default"),
]


@pytest.mark.parametrize(("arch", "variant", "space"), CASES)
def test_variants_forward_backward(arch: str, variant: str | None, space: str) -> None:
    torch.manual_seed(0)
    model = SNNBackbone(arch.strip(","), 4, timesteps=2, num_classes=10, variant=variant,
                        space=space)
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 10)
    assert ((out >= 0) & (out <= 1)).all()
    out.sum().backward()
    assert x.grad is not None
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("head"))


@pytest.mark.parametrize(("size", "channels", "frames", "classes"),
                         [(64, 3, False, 200), (128, 2, True, 11), (8, 1, False, 10)])
def test_dataset_stems(size: int, channels: int, frames: bool, classes: int) -> None:
    model = SNNBackbone(AUTOSNN, 4, timesteps=2, num_classes=classes, in_size=size,
                        in_channels=channels)
    shape = (2, 2, channels, size, size) if frames else (2, channels, size, size)
    x = torch.rand(shape)
    out = model((x < 0.2).float() if frames else x)
    assert out.shape == (2, classes)
    out.sum().backward()


def test_static_input_repeated_equals_frames() -> None:
    """Direct encoding: a static image equals the same image given as T identical frames."""
    model = SNNBackbone(AUTOSNN, 4, timesteps=2).eval()
    x = torch.rand(2, 3, 32, 32) * 4
    a = model(x)
    reset_net(model)
    b = model(x.unsqueeze(0).expand(2, *x.shape))
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("variant", "space", "path"), [
    (None, "default", AUTOSNN),
    ("v2", "default", "skip,SCB_k3,SRB_k5,skip,SRB_k3,SCB_k5,SRB_k3,skip"),
])
def test_supernet_path_equals_standalone(variant: str | None, space: str, path: str) -> None:
    torch.manual_seed(0)
    supernet = SNNSuperNet(4, timesteps=2, num_classes=10, variant=variant, space=space)
    # Perturb BN statistics so a wrong weight copy cannot match by accident.
    for m in supernet.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.weight.data.uniform_(0.5, 1.5)
    supernet.eval()
    single = supernet.extract(path).eval()
    assert _params(single) < _params(supernet)
    x = torch.rand(2, 3, 32, 32) * 3
    a = supernet(x, path)
    reset_net(supernet)
    b = single(x)
    torch.testing.assert_close(a, b)
    with pytest.raises(NasforgeError):
        supernet(x, "SIB_k3_e1,SRB_k5,skip,SRB_k3,SRB_k5")


def test_supernet_trains_one_path() -> None:
    supernet = SNNSuperNet(4, timesteps=2, num_classes=10)
    supernet(torch.rand(2, 3, 32, 32), AUTOSNN).sum().backward()
    grads = {n for n, p in supernet.named_parameters() if p.grad is not None}
    assert any(n.startswith("body.0.SRB_k5.") for n in grads)
    assert not any(n.startswith("body.0.SCB_k3.") for n in grads)
