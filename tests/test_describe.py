"""Parameter and multiply-add counts, checked against hand formulas and published numbers."""

import pytest
import torch
from torch import nn

from nasforge.describe import count_flops, count_parameters, describe_genotype
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import Genotype, load_genotype


def darts_v2() -> Genotype:
    return load_genotype("DARTS_V2")


class WithAux(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(6, 4)
        self.auxiliary_head = nn.Linear(6, 100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.auxiliary_head(x).sum()


def test_count_flops_conv_and_linear_hand_formulas():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert count_flops(conv, (3, 16, 16)) == 8 * 16 * 16 * 3 * 3 * 3
    strided = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
    assert count_flops(strided, (3, 15, 15)) == 8 * 8 * 8 * 3 * 3 * 3
    depthwise = nn.Conv2d(4, 4, 5, padding=2, groups=4)
    assert count_flops(depthwise, (4, 6, 6)) == 4 * 6 * 6 * 1 * 25
    assert count_flops(nn.Linear(20, 5), (20,)) == 20 * 5


def test_auxiliary_is_excluded_from_counts_and_mode_restored():
    model = WithAux().train()
    assert count_parameters(model) == 6 * 4 + 4
    assert count_parameters(model, exclude_auxiliary=False) == 6 * 4 + 4 + 6 * 100 + 100
    assert count_flops(model, (6,)) == 24
    assert model.training


def test_count_flops_rejects_bad_shape():
    with pytest.raises(NasforgeError, match="input_shape"):
        count_flops(nn.Linear(2, 2), (0, 2))


def test_darts_v2_cifar10_matches_published_size_and_cost():
    info = describe_genotype(darts_v2())
    assert (info["dataset"], info["channels"], info["layers"]) == ("cifar10", 36, 20)
    assert info["params"] == 3_349_342  # the DARTS repo's count, auxiliary excluded
    assert round(info["params"] / 1e6, 2) == 3.35
    # The literature quotes 528M MACs; conv/linear MACs are exact integers, so 0.1% is ample.
    assert info["flops"] == pytest.approx(528e6, rel=1e-3)


def test_darts_v2_imagenet_size_and_cost():
    info = describe_genotype(darts_v2(), dataset="imagenet")
    assert (info["channels"], info["layers"], info["num_classes"]) == (48, 14, 1000)
    assert info["params"] == 4_718_752  # DARTS paper: 4.7M
    # Conv+linear MACs; the DARTS paper's 574M is ~8% higher (its counting rule is not
    # published), so this pins our own number to catch regressions.
    assert info["flops"] == 529_911_552


def test_describe_small_overrides_and_digits():
    info = describe_genotype(darts_v2(), dataset="digits", channels=4, layers=3, num_classes=3)
    assert info["input_shape"] == [1, 8, 8]
    assert (info["channels"], info["layers"], info["num_classes"]) == (4, 3, 3)
    assert info["params"] > 0 and info["flops_m"] > 0


def test_unknown_dataset_lists_choices():
    with pytest.raises(NasforgeError, match="cifar10, cifar100, svhn, digits, imagenet"):
        describe_genotype(darts_v2(), dataset="mnist")
