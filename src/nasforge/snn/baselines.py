"""Hand-crafted spiking baselines of thesis Table 5.4, at any initial channel count C.

They share AutoSNN's conventions so the comparison is fair: direct encoding through the
backbone's :class:`Stem`, bias-free convs each followed by BN and one PLIF, an average pool
always followed by its own PLIF (a max pool never), and the voting :class:`Head`. The
interface is :class:`SNNBackbone`'s: static images [N, C, H, W] or frames [T, N, C, H, W]
in, firing rates [N, classes] out. All T steps run (the authors' code dropped the last one).
"""

from collections.abc import Callable

import torch
from spikingjelly.activation_based.layer import SeqToANNContainer
from torch import nn

from nasforge.errors import NasforgeError
from nasforge.registry import Registry
from nasforge.snn.backbone import Head, SpikePool, Stem
from nasforge.snn.blocks import SRB, conv_bn
from nasforge.snn.neuron import plif

ModelBuilder = Callable[[int, int, int, int, int], "SpikingBaseline"]
SNN_MODELS: Registry[ModelBuilder] = Registry("SNN model")


class SpikingBaseline(nn.Module):
    """Stem → fixed body → voting head; ``forward`` returns firing rates [N, classes]."""

    def __init__(self, name: str, body: list[nn.Module], features: int, channels: int,
                 timesteps: int, num_classes: int, in_size: int, in_channels: int) -> None:
        super().__init__()
        self.name, self.channels, self.timesteps = name, channels, timesteps
        self.num_classes, self.in_size, self.in_channels = num_classes, in_size, in_channels
        self.stem = Stem(in_channels, channels, timesteps, in_size)
        self.body = nn.Sequential(*body)
        self.head = Head(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.stem(x))).mean(0)


class SpikingLinear(nn.Module):
    """Hidden fully connected layer: flatten → bias-free linear → PLIF, per time step."""

    def __init__(self, features: int, width: int) -> None:
        super().__init__()
        self.fc = SeqToANNContainer(nn.Linear(features, width, bias=False))
        self.neuron = plif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.fc(x.flatten(2)))


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [conv_bn(c_in, c_out, 3), plif()]


def _avg_pool() -> list[nn.Module]:
    """Average-pooled spikes are not binary, so a PLIF turns them back into spikes."""
    return [SpikePool("avg"), plif()]


def _side(name: str, in_size: int, factor: int) -> int:
    """Side of the last feature map: the body sees 32 after a 64/128 stem and shrinks by
    ``factor``; any other size must divide by it."""
    after = {64: 32, 128: 32}.get(in_size, in_size)
    if after < factor or after % factor:
        raise NasforgeError(
            f"input size {in_size} unsupported by {name}; use 64, 128 or a multiple of {factor}"
        )
    return after // factor


@SNN_MODELS.register("cifarnet-wu")
def cifarnet_wu(channels: int, timesteps: int, num_classes: int, in_size: int,
                in_channels: int) -> SpikingBaseline:
    """Wu et al.'s CIFARNet: five convs, two avg-pools, FC 8C → 4C → vote."""
    c, side = channels, _side("cifarnet-wu", in_size, 4)
    body = [*_conv(c, 2 * c), *_avg_pool(), *_conv(2 * c, 4 * c), *_avg_pool(),
            *_conv(4 * c, 8 * c), *_conv(8 * c, 4 * c),
            SpikingLinear(4 * c * side * side, 8 * c), SpikingLinear(8 * c, 4 * c)]
    return SpikingBaseline("cifarnet-wu", body, 4 * c, channels, timesteps, num_classes,
                           in_size, in_channels)


@SNN_MODELS.register("cifarnet-fang")
def cifarnet_fang(channels: int, timesteps: int, num_classes: int, in_size: int,
                  in_channels: int) -> SpikingBaseline:
    """Fang et al.'s CIFARNet: 2 × (3 convs, max-pool), FC 8C → vote, no dropout."""
    c, side = channels, _side("cifarnet-fang", in_size, 4)
    body = [*_conv(c, c), *_conv(c, c), SpikePool("max"),
            *_conv(c, c), *_conv(c, c), *_conv(c, c), SpikePool("max"),
            SpikingLinear(c * side * side, 8 * c)]
    return SpikingBaseline("cifarnet-fang", body, 8 * c, channels, timesteps, num_classes,
                           in_size, in_channels)


@SNN_MODELS.register("resnet11-lee")
def resnet11_lee(channels: int, timesteps: int, num_classes: int, in_size: int,
                 in_channels: int) -> SpikingBaseline:
    """Lee et al.'s ResNet11: avg-pool, four SRB_k3 (two with stride 2), FC 16C → vote.

    :class:`SRB`'s 1×1 shortcut on every shape change, the 8C→8C stride-2 block's
    included, reproduces Table 5.4's counts.
    """
    c, side = channels, _side("resnet11-lee", in_size, 8)
    body = [*_avg_pool(), SRB(c, 2 * c, 3), SRB(2 * c, 4 * c, 3, stride=2),
            SRB(4 * c, 8 * c, 3), SRB(8 * c, 8 * c, 3, stride=2),
            SpikingLinear(8 * c * side * side, 16 * c)]
    return SpikingBaseline("resnet11-lee", body, 16 * c, channels, timesteps, num_classes,
                           in_size, in_channels)


@SNN_MODELS.register("resnet19-zheng")
def resnet19_zheng(channels: int, timesteps: int, num_classes: int, in_size: int,
                   in_channels: int) -> SpikingBaseline:
    """Zheng et al.'s ResNet19: 3/3/2 SRB_k3 at C/2C/4C, avg-pool, FC 2C → vote."""
    c, side = channels, _side("resnet19-zheng", in_size, 8)
    body = [SRB(c, c, 3), SRB(c, c, 3), SRB(c, c, 3),
            SRB(c, 2 * c, 3, stride=2), SRB(2 * c, 2 * c, 3), SRB(2 * c, 2 * c, 3),
            SRB(2 * c, 4 * c, 3, stride=2), SRB(4 * c, 4 * c, 3),
            *_avg_pool(), SpikingLinear(4 * c * side * side, 2 * c)]
    return SpikingBaseline("resnet19-zheng", body, 2 * c, channels, timesteps, num_classes,
                           in_size, in_channels)


def build_snn_model(name: str, channels: int = 16, timesteps: int = 8, num_classes: int = 10,
                    in_size: int = 32, in_channels: int = 3) -> nn.Module:
    """Build a registered baseline; unknown names and bad sizes raise a one-line
    :class:`NasforgeError`."""
    builder = SNN_MODELS.get(name)
    for what, value in (("channels", channels), ("timesteps", timesteps),
                        ("num_classes", num_classes), ("in_channels", in_channels)):
        if value < 1:
            raise NasforgeError(f"{what} must be at least 1, got {value}")
    return builder(channels, timesteps, num_classes, in_size, in_channels)


def describe_snn_model(name: str, channels: int = 16, dataset: str = "cifar10",
                       timesteps: int = 8, measure: bool = False, batch: int = 4,
                       convention: str = "thesis", profile: str = "45nm") -> dict:
    """Parameters, neurons and (``measure``) spikes per image of a hand-crafted baseline,
    as :func:`nasforge.snn.spikes.describe_snn` reports them for a searched architecture
    (Table 5.4's baseline rows: ``nasforge snn describe --model NAME --channels C``)."""
    from nasforge.describe import MAX_DESCRIBE_PARAMS, check_snn_input
    from nasforge.snn.spikes import dataset_shape, spike_report

    in_channels, size, classes, _frames = dataset_shape(dataset, profile)
    check_snn_input(channels, timesteps, batch, size)
    with torch.device("meta"):
        params = sum(p.numel() for p in build_snn_model(
            name, channels, timesteps, classes, size, in_channels).parameters())
    if params > MAX_DESCRIBE_PARAMS:
        raise NasforgeError(f"{name} with C={channels} has {params:,} parameters; describe "
                            f"builds networks of up to {MAX_DESCRIBE_PARAMS:,} parameters: "
                            "lower --channels")
    model = build_snn_model(name, channels, timesteps, classes, size, in_channels)
    model.eval()
    return {"model": name, "arch": name, "dataset": dataset, "channels": channels,
            "timesteps": timesteps, "params": params, "params_m": params / 1e6,
            **spike_report(model, dataset, timesteps, batch, measure, convention, profile)}
