"""Candidate spiking blocks for the TBD positions (thesis Fig. 5.2b, 5.6; docs/snn.md §Blocks).

Every block maps a multi-step tensor [T, N, C_in, H, W] to [T, N, C_out, H/s, W/s].
Convolutions run once over the merged T·N axis; batch norm normalises each time step with
that step's own batch statistics, as the authors' one-step-at-a-time loop does (``per-step``,
the default), or once over all T·N images (``merged``, :func:`bn_mode`). In eval mode the
two are the same computation. Convs carry no bias. ``BLOCKS`` maps the names users type
(``SRB_k5``) to builders ``(c_in, c_out, stride) -> nn.Module``.
"""

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import torch
from torch import nn

from nasforge.errors import NasforgeError
from nasforge.registry import Registry
from nasforge.snn.neuron import plif

BlockBuilder = Callable[[int, int, int], nn.Module]
BLOCKS: Registry[BlockBuilder] = Registry("SNN block")

# The five candidates of the AutoSNN search space, in the thesis's order; SIB blocks are
# registered too but only for the design-choice study (Table 5.2).
SEARCH_BLOCKS = ("SCB_k3", "SCB_k5", "SRB_k3", "SRB_k5", "skip")

BN_MODES = ("per-step", "merged")
_BN_MODE: contextvars.ContextVar[str] = contextvars.ContextVar("nasforge_bn", default="per-step")


def check_bn_mode(mode: str) -> str:
    if mode not in BN_MODES:
        raise NasforgeError(f"unknown batch-norm mode '{mode}'; choose from: "
                            f"{', '.join(BN_MODES)}")
    return mode


@contextlib.contextmanager
def bn_mode(mode: str) -> Iterator[None]:
    """Build networks whose batch norms are ``per-step`` (the authors') or ``merged``."""
    token = _BN_MODE.set(check_bn_mode(mode))
    try:
        yield
    finally:
        _BN_MODE.reset(token)


class StepBN(nn.BatchNorm2d):
    """BatchNorm2d over a merged ``[T·N, C, H, W]`` tensor of ``steps`` time steps.

    ``per_step`` (training only): each step is normalised with its own batch statistics and
    updates the running statistics once, in time order: what T calls of the authors'
    single-step loop do. Otherwise one call over all T·N images. ``steps`` is set by the
    caller before each forward (:class:`ConvBN`, the stem).
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels)
        self.per_step = _BN_MODE.get() == "per-step"
        self.steps = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.per_step and self.training and self.steps > 1):
            return super().forward(x)
        return torch.cat([super(StepBN, self).forward(c) for c in x.chunk(self.steps)])


def set_bn_mode(model: nn.Module, mode: str) -> nn.Module:
    """Switch every :class:`StepBN` of ``model`` to ``mode`` (parameters are unchanged)."""
    per_step = check_bn_mode(mode) == "per-step"
    for m in model.modules():
        if isinstance(m, StepBN):
            m.per_step = per_step
    return model


class ConvBN(nn.Sequential):
    """Bias-free conv + :class:`StepBN` on ``[T, N, C, H, W]``: the conv once over T·N."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, n = x.shape[:2]
        self[1].steps = t
        return super().forward(x.flatten(0, 1)).unflatten(0, (t, n))


def conv_bn(c_in: int, c_out: int, k: int, stride: int = 1, groups: int = 1) -> nn.Module:
    """Bias-free k×k conv + BN applied to every time step (BN per :func:`bn_mode`)."""
    conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)
    return ConvBN(conv, StepBN(c_out))


class SCB(nn.Module):
    """Spiking convolution block: conv–BN–PLIF–conv–BN–PLIF (stride on the first conv)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(c_in, c_out, k, stride), plif(), conv_bn(c_out, c_out, k), plif()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SRB(nn.Module):
    """Spiking residual block: conv–BN–PLIF–conv–BN, + shortcut, then PLIF.

    The shortcut is the identity, or 1×1 conv + BN when channels or resolution change.
    """

    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(c_in, c_out, k, stride), plif(), conv_bn(c_out, c_out, k))
        same = c_in == c_out and stride == 1
        self.shortcut = nn.Identity() if same else conv_bn(c_in, c_out, 1, stride)
        self.out = plif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x) + self.shortcut(x))


class FactorizedReduce(nn.Module):
    """Stride-2 skip (the authors' ``FactorizedReduce``): two 1×1 stride-2 convs of c_out/2
    channels, the second shifted by one pixel, concatenated → BN → PLIF."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        if c_out % 2:
            raise NasforgeError(f"a stride-2 skip needs an even number of output channels, "
                                f"got {c_out}")
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, 2, bias=False)
        self.bn = StepBN(c_out)
        self.out = plif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, n = x.shape[:2]
        x = x.flatten(0, 1)
        self.bn.steps = t
        y = self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))
        return self.out(y.unflatten(0, (t, n)))


class Skip(nn.Module):
    """Identity when shapes match; 1×1 conv–BN–PLIF when only channels change; a
    :class:`FactorizedReduce` at stride 2 (the authors' ``skip_connect``)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        if stride == 2:
            self.body: nn.Module = FactorizedReduce(c_in, c_out)
        elif stride != 1:
            raise NasforgeError(f"skip supports stride 1 or 2, got {stride}")
        elif c_in == c_out:
            self.body = nn.Identity()
        else:
            self.body = nn.Sequential(conv_bn(c_in, c_out, 1), plif())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SIB(nn.Module):
    """Spiking inverted bottleneck (Fig. 5.6) as the authors built it.

    1×1 expand (×e)–BN–PLIF → full k×k conv (stride s)–BN–PLIF → 1×1 project–BN, plus a
    shortcut at stride 1 (identity, or 1×1 conv + BN when channels change; none at
    stride 2) → PLIF. hw(2e·c_in + c_out) neurons, the count §5.2.2 states for SIB_k3_e1
    and SIB_k3_e3. (The middle conv is not depthwise: the authors' code, which Table 5.2's
    networks come from, uses a full convolution.)
    """

    def __init__(self, c_in: int, c_out: int, k: int, e: int, stride: int = 1) -> None:
        super().__init__()
        mid = c_in * e
        self.body = nn.Sequential(
            conv_bn(c_in, mid, 1), plif(),
            conv_bn(mid, mid, k, stride), plif(),
            conv_bn(mid, c_out, 1),
        )
        self.residual = c_in == c_out and stride == 1
        self.shortcut: nn.Module | None = None
        if stride == 1:
            self.shortcut = nn.Identity() if self.residual else conv_bn(c_in, c_out, 1)
        self.out = plif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.out(y if self.shortcut is None else y + self.shortcut(x))


def _register_conv_blocks() -> None:
    for k in (3, 5):
        BLOCKS.register(f"SCB_k{k}")(lambda ci, co, s, k=k: SCB(ci, co, k, s))
        BLOCKS.register(f"SRB_k{k}")(lambda ci, co, s, k=k: SRB(ci, co, k, s))
        for e in (1, 3):
            BLOCKS.register(f"SIB_k{k}_e{e}")(lambda ci, co, s, k=k, e=e: SIB(ci, co, k, e, s))


_register_conv_blocks()
BLOCKS.register("skip")(lambda ci, co, s: Skip(ci, co, s))


def build_block(name: str, c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    """Instantiate a registered block; unknown names raise a one-line NasforgeError."""
    return BLOCKS.get(name)(c_in, c_out, stride)
