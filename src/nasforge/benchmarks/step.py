"""Timing one search step of a differentiable strategy on random data (``nasforge bench step``).

A step is what :func:`nasforge.search.loop.run_search` does per mini-batch pair: one
architecture step on an architecture batch, then one weight step (SGD, gradient-norm clip,
AMP scaler where fp16) on a weight batch, both of ``batch`` images, first order. The network
and strategy are built the way the search loop builds them, the data are random tensors
already on the device, warm-up steps are not timed and CUDA is synchronised before and after
the timed steps (never inside them). The layout is the search's (channels_last on CUDA and
CPU, :func:`nasforge.runtime.use_channels_last`) unless ``channels_last`` says otherwise; on
CPU channels_last runs this step 1.3–1.8× faster than NCHW (bench/README.md).

``step_s`` is the mean wall time of one step; ``imgs_per_s = batch / step_s``, the training
images (weight batch) per second. Each step also forwards and back-propagates an architecture
batch of the same size, so the network processes twice that many images per second — the
same convention as DARTS's own "images per second" of its training loader.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.config import AMP_CHOICES, COMPILE_CHOICES, SearchConfig
from nasforge.errors import NasforgeError
from nasforge.runtime import amp_dtype, autocast, pick_device, use_channels_last
from nasforge.search.base import STRATEGIES, StepContext
from nasforge.search.loop import build_search, resize

__all__ = ["SearchStep", "time_search_step"]

COMPILE_MODES = COMPILE_CHOICES[1:]  # without "off"


def _positive(name: str, value: object, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise NasforgeError(f"{name} must be an integer >= {lo}, got {value!r}")
    return value


class SearchStep:
    """One search step, ready to run repeatedly on random data held on the device.

    ``step(i)`` runs step ``i`` (batches cycle through four random ones). Used by
    :func:`time_search_step` and by the benchmark scripts (``bench/``) that count host
    synchronisations or profile a step.
    """

    def __init__(self, algo: str = "darts", channels: int = 16, layers: int = 8,
                 batch: int = 64, resolution: int = 32, device: str = "auto", nodes: int = 4,
                 *, amp: str = "auto", channels_last: bool | None = None,
                 compile: bool | str = False, num_classes: int = 10, in_channels: int = 3,
                 seed: int = 0, make_network: Callable[..., nn.Module] | None = None,
                 mixed_op: str | None = None) -> None:
        for name, value in (("channels", channels), ("layers", layers), ("batch", batch),
                            ("resolution", resolution), ("nodes", nodes),
                            ("num_classes", num_classes), ("in_channels", in_channels)):
            _positive(name, value)
        if layers < 3:
            raise NasforgeError(f"layers must be >= 3 (two reduction cells and a normal one), "
                                f"got {layers}")
        if amp not in AMP_CHOICES:
            raise NasforgeError(f"unknown amp '{amp}'; choose from: {', '.join(AMP_CHOICES)}")
        mode = "default" if compile is True else compile or None
        if mode is not None and mode not in COMPILE_MODES:
            raise NasforgeError(f"unknown compile mode '{mode}'; choose from: "
                                f"{', '.join(COMPILE_MODES)}")
        self.device = pick_device(device)
        self.dtype = amp_dtype(self.device, amp)
        if channels_last is None:  # as run_search lays it out
            channels_last = use_channels_last(True, self.device)
        self.batch, self.channels_last, self.compile = batch, channels_last, mode
        cfg = replace(SearchConfig(), algo=algo, channels=channels, layers=layers,
                      nodes=nodes, batch_size=batch, order="first")
        torch.manual_seed(seed)
        self.cfg, self.network, self.strategy, self.w_opt, self.a_opt = build_search(
            cfg, STRATEGIES.get(algo), num_classes=num_classes, in_channels=in_channels,
            image_size=resolution, device=self.device, channels_last=channels_last,
            compile=mode or "off", make_network=make_network)
        if mixed_op is not None:
            if not hasattr(self.network, "mixed_op"):
                raise NasforgeError("mixed_op applies to the DARTS-space super-network only")
            self.network.mixed_op = mixed_op
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.dtype == torch.float16)
        self.ctx = StepContext(w_optimizer=self.w_opt, w_lr=self.cfg.w_lr,
                               autocast=lambda: autocast(self.device, self.dtype))
        self.strategy.start_epoch(0, self.cfg.epochs)
        self.network.train()
        self.data = [_random_batch(batch, in_channels, resolution, num_classes, self.device,
                                   channels_last) for _ in range(4)]

    def step(self, i: int = 0) -> None:
        """Architecture step, then weight step, as ``run_search`` does them."""
        cfg, network, strategy = self.cfg, self.network, self.strategy
        batch_w, batch_a = self.data[(2 * i) % 4], self.data[(2 * i + 1) % 4]
        if cfg.resolution is not None:  # EcoDARTS's reduced resolution
            batch_w, batch_a = resize(batch_w, cfg.resolution), resize(batch_a, cfg.resolution)
        strategy.arch_step(network, batch_w, batch_a, self.a_opt, self.ctx)
        x, y = batch_w
        weights = strategy.weight_step_weights(network, batch_w, self.ctx)
        self.w_opt.zero_grad(set_to_none=True)
        with self.ctx.autocast():
            loss = F.cross_entropy(network(x, weights).float(), y)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.w_opt)
            torch.nn.utils.clip_grad_norm_(network.parameters(), cfg.grad_clip)
        self.scaler.step(self.w_opt)
        self.scaler.update()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def time_search_step(algo: str = "darts", channels: int = 16, layers: int = 8, batch: int = 64,
                     resolution: int = 32, steps: int = 10, threads: int | None = None,
                     device: str = "auto", nodes: int = 4, *, amp: str = "auto",
                     channels_last: bool | None = None, compile: bool | str = False,
                     warmup: int = 2,
                     num_classes: int = 10, in_channels: int = 3, seed: int = 0,
                     make_network: Callable[..., nn.Module] | None = None,
                     mixed_op: str | None = None) -> dict:
    """Time ``steps`` search steps (after ``warmup`` untimed ones) on random data.

    Returns ``{"imgs_per_s", "step_s"}`` plus what was measured: ``algo``, ``device``,
    ``amp`` (the autocast dtype, ``fp32`` when none), ``channels_last``, ``compile``,
    ``threads``, ``steps``, ``batch``. ``amp`` is ``run.amp``'s choice (``auto``: bf16 on
    CUDA where supported; CPU always runs fp32). ``compile`` (True or a ``torch.compile``
    mode) compiles the network in place, so both steps run compiled; the warm-up absorbs
    compilation. ``make_network``: see :func:`nasforge.search.loop.build_search`.
    """
    _positive("steps", steps)
    _positive("warmup", warmup, lo=0)
    if threads is not None:
        _positive("threads", threads)
        most = 8 * (os.cpu_count() or 1)  # more only slows a step; tens of thousands crash
        if threads > most:
            raise NasforgeError(f"threads must be at most {most} (8 per CPU of this machine), "
                                f"got {threads}")
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        run = SearchStep(algo, channels, layers, batch, resolution, device, nodes, amp=amp,
                         channels_last=channels_last, compile=compile,
                         num_classes=num_classes, in_channels=in_channels, seed=seed,
                         make_network=make_network, mixed_op=mixed_op)
        for i in range(warmup):
            run.step(i)
        run.synchronize()
        start = time.perf_counter()
        for i in range(steps):
            run.step(warmup + i)
        run.synchronize()
        step_s = (time.perf_counter() - start) / steps
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
    return {"imgs_per_s": batch / step_s, "step_s": step_s, "algo": algo,
            "device": str(run.device),
            "amp": "fp32" if run.dtype is None else str(run.dtype).removeprefix("torch."),
            "channels_last": run.channels_last, "compile": run.compile or False,
            "threads": used_threads, "steps": steps, "batch": batch,
            "mixed_op": getattr(run.network, "mixed_op", None)}


def _random_batch(batch: int, channels: int, size: int, classes: int, device: torch.device,
                  channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(batch, channels, size, size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.randint(0, classes, (batch,), device=device)
