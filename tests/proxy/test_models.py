import pytest
import torch

from nasforge.errors import NasforgeError
from nasforge.proxy.models import AUX_MODELS, BasicBlock, cifar_resnet


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet20_cifar10_has_the_papers_0_27m_parameters():
    # He et al. (2016) Table 6: ResNet-20, 0.27M. Option A shortcuts are parameter-free:
    # stem 432 + BN 32, stage 1: 3 blocks x (2 x 2,304 + 64) = 14,016, stage 2: 13,952 +
    # 2 x 18,560 = 51,072, stage 3: 55,552 + 2 x 73,984 = 203,520, fc 64 x 10 + 10 = 650.
    model = AUX_MODELS.get("resnet20")(10, 3)
    assert n_params(model) == 432 + 32 + 14_016 + 51_072 + 203_520 + 650 == 269_722
    # option B would add 1x1 conv + BN projections at the two stage changes: 272,474
    assert 269_722 + (16 * 32 + 64) + (32 * 64 + 128) == 272_474


def test_registry_depths_and_sizes():
    assert AUX_MODELS.names() == ["resnet20", "resnet32", "resnet44", "resnet56"]
    blocks = {name: AUX_MODELS.get(name)(100, 3).blocks for name in AUX_MODELS}
    assert blocks == {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9}
    assert round(n_params(AUX_MODELS.get("resnet56")(10, 3)) / 1e6, 2) == 0.85  # paper: 0.85M
    with pytest.raises(NasforgeError, match="unknown auxiliary model 'resnet18'"):
        AUX_MODELS.get("resnet18")
    with pytest.raises(ValueError, match="6n \\+ 2"):
        cifar_resnet(21)


@pytest.mark.parametrize("size", [8, 9, 32])
def test_features_and_logits_for_any_input_size(size):
    model = cifar_resnet(8, num_classes=7, in_channels=1).eval()
    x = torch.randn(3, 1, size, size)
    with torch.no_grad():
        h, logits = model.features(x), model(x)
    assert h.shape == (3, 64) and logits.shape == (3, 7)
    assert torch.allclose(model.fc(h), logits)


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    block = BasicBlock(16, 32, stride=2)
    x = torch.randn(2, 16, 5, 5)
    s = block.shortcut(x)
    assert s.shape == (2, 32, 3, 3) == block(x).shape
    assert torch.equal(s[:, 8:24], x[:, :, ::2, ::2])
    assert not s[:, :8].any() and not s[:, 24:].any()
