"""Parameter, multiply-add and peak-memory counts, checked against hand formulas and papers."""

import json

import pytest
import torch
from torch import nn

from nasforge.cli import main
from nasforge.describe import (
    count_flops,
    count_parameters,
    describe_genotype,
    peak_forward_memory,
)
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import CellGenotype, Genotype, load_genotype


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
    if info["peak_memory_device"] == "cpu":
        # Live tensor bytes of a batch-1 training forward (82.95 MB with torch 2.13).
        assert info["peak_memory_mb"] == pytest.approx(83.0, rel=0.05)


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


# ------------------------------------------------------------------------- peak memory


class Chain(nn.Module):
    """``fn(fn(x * w)).sum()`` on 4 floats: which intermediates stay alive depends on fn."""

    def __init__(self, fn, requires_grad: bool = True) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(4), requires_grad=requires_grad)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.fn(x * self.w)).sum()


def test_peak_memory_counts_what_autograd_keeps():
    held = 16 + 16  # w and the input x: 4 float32 each
    # sin saves its input for backward: x*w, sin, sin and the sum (4 B) all stay alive.
    assert peak_forward_memory(Chain(torch.sin), (4,)) == held + 3 * 16 + 4
    # exp saves its output instead: x*w dies after the first exp; two results plus the sum.
    assert peak_forward_memory(Chain(torch.exp), (4,)) == held + 2 * 16 + 4
    # Without autograd state nothing is saved: the peak is two 16-byte tensors side by side.
    assert peak_forward_memory(Chain(torch.sin, requires_grad=False), (4,)) == held + 2 * 16


def test_peak_memory_of_a_small_mlp_and_mode_restored():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).eval()
    params = (4 * 8 + 8 + 8 * 2 + 2) * 4
    # input 16 B; first linear out (32 B) and its ReLU (32 B) both live at the peak.
    assert peak_forward_memory(mlp, (4,)) == params + 16 + 32 + 32
    assert not mlp.training
    with pytest.raises(NasforgeError, match="input_shape"):
        peak_forward_memory(mlp, (0,))


def test_describe_reports_peak_memory_and_ext_cells_use_less():
    small = dict(dataset="digits", channels=4, layers=3, device="cpu")
    info = describe_genotype(darts_v2(), **small)
    assert info["peak_memory_device"] == "cpu"
    assert info["peak_memory"] > 4 * info["params"]  # parameters plus activations
    assert info["peak_memory_mb"] == round(info["peak_memory"] / 2**20, 2)
    ext = CellGenotype((("sep_conv_3x3", 0, 2), ("skip_connect", 1, 2)), (2,))
    ext_info = describe_genotype(Genotype(ext, ext), **small)
    assert ext_info["peak_memory"] < info["peak_memory"]
    assert ext_info["params"] < info["params"] and ext_info["flops"] < info["flops"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_memory_close_to_cpu_count():
    small = dict(dataset="cifar10", channels=8, layers=5)
    cpu = describe_genotype(darts_v2(), **small, device="cpu")["peak_memory"]
    cuda = describe_genotype(darts_v2(), **small, device="cuda")
    assert cuda["peak_memory_device"] == "cuda"
    # Same tensors; CUDA adds 512-byte rounding and kernel workspaces.
    assert cpu * 0.9 <= cuda["peak_memory"] <= cpu * 1.5


def test_describe_cli_prints_peak_memory(capsys):
    argv = ["describe", "--genotype", "DARTS_V2", "--dataset", "digits", "--channels", "4",
            "--layers", "3"]
    assert main(argv) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("params: ") and "peak memory: " in line and "MB (" in line
    assert main([*argv, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"peak_memory", "peak_memory_mb", "peak_memory_device"} <= set(info)
