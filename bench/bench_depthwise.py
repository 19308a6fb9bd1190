"""Depthwise convolutions on the CPU: backward against forward, and one alternative.

Why the DARTS search step cannot reach issue 16's CPU target by reorganising Python: in a
search step most of the time is the backward of the depthwise convolutions, and torch's
CPU (oneDNN) backward of a depthwise conv costs several times to 50× its forward for the
5×5 and dilated kernels of the DARTS space. This script measures, for each depthwise
geometry of the space (sep 3×3/5×5, dil 3×3/5×5, stride 1) at the three cell shapes of the
thesis search network at 16×16 (C=16 at 16×16, 32 at 8×8, 64 at 4×4; batch 64):

- ``fwd``: the forward (``F.conv2d``, groups = C);
- ``grad x`` / ``grad w``: torch's backward, input and weight gradient separately;
- ``alt grad x``: the input gradient computed as a forward conv of the output gradient
  with the flipped kernel (exact for stride 1 and 'same' padding).

``--step`` then times the whole search step (``nasforge.benchmarks.step``) with torch's
backward, with that alternative input gradient, and, as a bound on what any faster
depthwise kernel could give, with a depthwise backward that costs what two forwards cost
(its gradients are wrong: the row is a time, not a search), rounds interleaved. The
alternative is a benchmark-only formulation (it drops the second-order terms a
``create_graph`` backward needs), measured so that its verdict is a figure. No assertions.

    .venv/bin/python bench/bench_depthwise.py [--threads 2] [--step] [--layout cl|nchw]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KERNELS = {"sep 3x3": (3, 1), "sep 5x5": (5, 1), "dil 3x3": (3, 2), "dil 5x5": (5, 2)}
SHAPES = [(64, 16, 16), (64, 32, 8), (64, 64, 4)]


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls * 1e6


def conv_table(layout: str, calls: int) -> None:
    fmt = torch.channels_last if layout == "cl" else torch.contiguous_format
    print(f"depthwise conv, {layout}, microseconds per call (median of {calls} calls' mean "
          f"over 3 repeats); x fwd = the backward part over the forward")
    print(f"{'shape':<14}{'kernel':<9}{'fwd':>7}{'grad x':>8}{'grad w':>8}{'x fwd':>7}"
          f"{'alt grad x':>11}{'alt/torch':>10}")
    backward = torch.ops.aten.convolution_backward
    for n, c, h in SHAPES:
        x = torch.randn(n, c, h, h).contiguous(memory_format=fmt)
        for name, (k, d) in KERNELS.items():
            w = torch.randn(c, 1, k, k)
            p = d * (k - 1) // 2
            g = F.conv2d(x, w, None, 1, p, d, c).contiguous(memory_format=fmt)

            def grads(mask: tuple[bool, bool, bool], w: Tensor = w, g: Tensor = g,
                      x: Tensor = x, p: int = p, d: int = d, c: int = c) -> object:
                return backward(g, x, w, None, (1, 1), (p, p), (d, d), False, (0, 0), c, mask)

            def alt(w: Tensor = w, g: Tensor = g, p: int = p, d: int = d, c: int = c) -> Tensor:
                return F.conv2d(g, w.flip(2, 3), None, 1, p, d, c)

            def fwd(w: Tensor = w, x: Tensor = x, p: int = p, d: int = d, c: int = c) -> Tensor:
                return F.conv2d(x, w, None, 1, p, d, c)

            torch.testing.assert_close(alt(), grads((True, False, False))[0],
                                       rtol=1e-4, atol=1e-3)
            t = {key: statistics.median(per_call_us(fn, calls) for _ in range(3)) for key, fn in
                 (("fwd", fwd), ("gx", lambda: grads((True, False, False))),
                  ("gw", lambda: grads((False, True, False))), ("alt", alt))}
            print(f"{f'{n}x{c}x{h}x{h}':<14}{name:<9}{t['fwd']:>7.0f}{t['gx']:>8.0f}"
                  f"{t['gw']:>8.0f}{(t['gx'] + t['gw']) / t['fwd']:>7.1f}{t['alt']:>11.0f}"
                  f"{t['alt'] / t['gx']:>10.2f}")


class _InputGradAsConv(torch.autograd.Function):
    """Identity on ``y = conv(x.detach(), w)``; its backward adds x's gradient as a forward
    conv of the output gradient with the flipped kernel (stride 1, 'same' padding)."""

    @staticmethod
    def forward(ctx, y: Tensor, x: Tensor, w: Tensor, padding: tuple, dilation: tuple
                ) -> Tensor:
        ctx.save_for_backward(w)
        ctx.geometry = (padding, dilation)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple:
        (w,) = ctx.saved_tensors
        padding, dilation = ctx.geometry
        return g, F.conv2d(g, w.flip(2, 3), None, 1, padding, dilation, w.shape[0]), None, \
            None, None


class _BackwardAtForwardCost(torch.autograd.Function):
    """A depthwise conv whose backward costs two forward convs: a timing bound only, its
    gradients are not the conv's."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, conv: nn.Conv2d) -> Tensor:
        ctx.save_for_backward(x, w)
        ctx.conv = conv
        return F.conv2d(x, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple:
        x, w = ctx.saved_tensors
        c = ctx.conv
        cost = F.conv2d(x, w, None, c.stride, c.padding, c.dilation, c.groups)
        return x * 0.5, (cost.sum((0, 2, 3)).view(-1, 1, 1, 1) * 0 + w), None


@contextmanager
def alternative_input_grad(bound: bool = False) -> Iterator[None]:
    """Every stride-1 depthwise ``nn.Conv2d`` runs with the alternative input gradient;
    ``bound``: every depthwise conv runs with the two-forward-cost backward instead."""
    plain = nn.Conv2d.forward

    def forward(self: nn.Conv2d, x: Tensor) -> Tensor:
        depthwise = self.groups > 1 and self.groups == self.in_channels == self.out_channels
        if bound and depthwise and x.requires_grad:
            return _BackwardAtForwardCost.apply(x, self.weight, self)
        if not (depthwise and self.stride == (1, 1) and x.requires_grad) or bound:
            return plain(self, x)
        y = F.conv2d(x.detach(), self.weight, None, 1, self.padding, self.dilation, self.groups)
        return _InputGradAsConv.apply(y, x, self.weight.detach(), self.padding, self.dilation)

    nn.Conv2d.forward = forward
    try:
        yield
    finally:
        nn.Conv2d.forward = plain


def step_table(layout: str, resolution: int, rounds: int) -> None:
    from nasforge.benchmarks.step import SearchStep

    patches = {"torch backward": nullcontext, "alt grad x": alternative_input_grad,
               "bound": lambda: alternative_input_grad(bound=True)}
    rows = {name: SearchStep("darts", 16, 8, 64, resolution, "cpu",
                             channels_last=layout == "cl", mixed_op="plain")
            for name in patches}
    # the plain formulation in NCHW: issue 16's baseline
    rows["plain, NCHW"] = SearchStep("darts", 16, 8, 64, resolution, "cpu",
                                     channels_last=False, mixed_op="plain")
    patches["plain, NCHW"] = nullcontext
    times: dict[str, list[float]] = {name: [] for name in rows}
    for r in range(rounds + 1):  # round 0 warms up
        for name, run in rows.items():
            with patches[name]():
                t = time.perf_counter()
                run.step(r)
                if r:
                    times[name].append(time.perf_counter() - t)
    base = statistics.median(times["torch backward"])
    nchw = statistics.median(times["plain, NCHW"])
    print(f"DARTS search step (first order), C=16, 8 cells, batch 64, {resolution}x"
          f"{resolution}, rows in {layout} but the last, median of {rounds} interleaved rounds")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"  {name:<16}{m:>8.3f} s/step   x torch backward {base / m:.2f}   "
              f"x plain NCHW {nchw / m:.2f}")
    print("  (bound: every depthwise backward at the cost of two forwards; wrong gradients)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout", choices=("cl", "nchw"), default="cl")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--step", action="store_true", help="also time the search step")
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads")
    conv_table(args.layout, args.calls)
    if args.step:
        step_table(args.layout, args.resolution, args.rounds)


if __name__ == "__main__":
    main()
