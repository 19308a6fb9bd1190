"""Size and cost of a network: parameters, multiply-adds and peak memory, as NAS papers report.

Conventions (those of the DARTS papers, so numbers compare with published tables):

- parameters: every trainable and frozen parameter, except those of modules whose name
  contains ``auxiliary`` (the auxiliary head is dropped after training);
- FLOPs: multiply-accumulates (MACs) of ``Conv2d`` and ``Linear`` layers for one input
  (batch 1) in eval mode. Biases, BatchNorm, activations, pooling and the additions that
  merge cell nodes are not counted; neither is the auxiliary head.
- peak memory: the most tensor memory alive during one training-mode forward pass of one
  input with autograd on (so the activations kept for backward count): parameters, buffers,
  the input and every tensor the forward creates, while it is alive. See
  :func:`peak_forward_memory` for how it is measured on CPU and on CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from nasforge.errors import NasforgeError
from nasforge.spaces.darts.eval_network import NetworkCIFAR, NetworkImageNet
from nasforge.spaces.darts.genotype import Genotype


def count_parameters(model: nn.Module, *, exclude_auxiliary: bool = True) -> int:
    """Number of parameters, leaving out the auxiliary head unless told otherwise."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if not (exclude_auxiliary and "auxiliary" in name)
    )


def _input_spec(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and float dtype for a probe input: those of the model's first parameter."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return device, dtype


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of the Conv2d and Linear layers for one input of ``input_shape``.

    ``input_shape`` is the shape of one example without the batch dimension, e.g.
    ``(3, 32, 32)``. The model runs once in eval mode without gradients and is put back in
    its previous mode. A conv costs ``output elements × in_channels/groups × kh × kw``; a
    linear layer ``output elements × in_features``.
    """
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise NasforgeError(f"input_shape must be positive integers like (3, 32, 32), got {shape}")
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        total += output.numel() * per_output

    def linear_hook(module: nn.Linear, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for name, module in model.named_modules():
        if "auxiliary" in name:
            continue
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    device, dtype = _input_spec(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=device, dtype=dtype))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return total


def _tensors(value: object) -> Iterator[Tensor]:
    """The tensors in an op's arguments or results (nested tuples, lists and dicts)."""
    if isinstance(value, Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class _LiveBytes(TorchDispatchMode):
    """Peak bytes of the storages that ops allocate while this mode is active.

    Every aten op's results pass through here (below autograd, so decomposed ops show their
    intermediates too). A result whose storage is not one of the op's inputs' is a fresh
    allocation and is tracked through a weak reference to its storage, which expires when
    the last tensor using it (autograd's saved copies included) is freed. The live total is
    recomputed from the weak references whenever a new allocation might set a new peak, so
    the peak is exact at op boundaries. Buffers an op uses only internally (e.g. a kernel's
    workspace) are not seen.
    """

    # The raw storage weak-reference calls behind torch's StorageWeakRef, minus its Python
    # wrapper: the live total is rescanned often, so this is the hot loop.
    _expired = staticmethod(torch.UntypedStorage._expired)  # type: ignore[attr-defined]
    _free = staticmethod(torch.UntypedStorage._free_weak_ref)  # type: ignore[attr-defined]

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[int, tuple[int, int]] = {}  # data_ptr -> (weak ref, bytes)
        self._bound = 0  # bytes of the tracked storages: the live total after _refresh
        self.peak = 0

    def _drop(self, ptr: int) -> None:
        ref, nbytes = self._live.pop(ptr)
        self._free(ref)
        self._bound -= nbytes

    def _refresh(self) -> None:
        expired = self._expired
        for ptr in [p for p, (ref, _) in self._live.items() if expired(ref)]:
            self._drop(ptr)

    def __exit__(self, *exc: object) -> None:
        for ptr in list(self._live):
            self._drop(ptr)
        super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = {t.untyped_storage().data_ptr() for t in _tensors((args, kwargs))}
        for t in _tensors(out):
            storage = t.untyped_storage()
            ptr, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or ptr in inputs:
                continue  # a view of an input or an in-place result
            if ptr in self._live:
                if not self._expired(self._live[ptr][0]):
                    continue  # another view of a storage already counted
                self._drop(ptr)  # freed, and its address reused by this allocation
            self._live[ptr] = (storage._weak_ref(), nbytes)
            self._bound += nbytes
            if self._bound > self.peak:
                self._refresh()
                self.peak = max(self.peak, self._bound)
        return out


def _storage_bytes(tensors: list[Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (shared storages count once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def peak_forward_memory(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Peak bytes alive during one training-mode forward of a batch-1 input, with autograd.

    Training mode with gradients on is how the network runs while it is trained, and it keeps
    every activation backward needs. The count starts from the parameters, buffers and the
    input, and adds what the forward allocates:

    - CUDA: ``torch.cuda.max_memory_allocated`` minus what was allocated before the input
      was made, i.e. what the caching allocator handed out (rounded up to its 512-byte
      blocks, kernel workspaces included); memory held by other tensors is not counted.
    - CPU: :class:`_LiveBytes` follows every tensor the forward creates through weak
      references to its storage and keeps the largest live total: exact tensor bytes at op
      boundaries, independent of the allocator, without kernels' internal scratch buffers.

    No gradients or optimizer state are counted, since no backward pass runs. The model is
    put back in its previous mode; BatchNorm running statistics see one batch.
    """
    shape = tuple(input_shape)
    if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
        raise NasforgeError(f"input_shape must be positive integers like (3, 32, 32), got {shape}")
    device, dtype = _input_spec(model)
    was_training = model.training
    model.train()
    try:
        with torch.enable_grad():
            if device.type == "cuda":
                return _cuda_peak(model, shape, device, dtype)
            x = torch.zeros((1, *shape), device=device, dtype=dtype)
            held = _storage_bytes([*model.parameters(), *model.buffers(), x])
            with _LiveBytes() as tracker:
                out = model(x)
            del out
            return held + tracker.peak
    finally:
        model.train(was_training)


def _cuda_peak(model: nn.Module, shape: tuple[int, ...], device: torch.device,
               dtype: torch.dtype) -> int:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    held = _storage_bytes([*model.parameters(), *model.buffers()])
    x = torch.zeros((1, *shape), device=device, dtype=dtype)
    torch.cuda.reset_peak_memory_stats(device)
    out = model(x)
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device) - before
    del out, x
    return held + peak


@dataclass(frozen=True)
class _DatasetSpec:
    """What the evaluation network for a dataset looks like by default."""

    in_channels: int
    size: int
    num_classes: int
    imagenet: bool = False

    @property
    def channels(self) -> int:
        return 48 if self.imagenet else 36

    @property
    def layers(self) -> int:
        return 14 if self.imagenet else 20


DATASETS: dict[str, _DatasetSpec] = {
    "cifar10": _DatasetSpec(3, 32, 10),
    "cifar100": _DatasetSpec(3, 32, 100),
    "svhn": _DatasetSpec(3, 32, 10),
    "digits": _DatasetSpec(1, 8, 10),
    "imagenet": _DatasetSpec(3, 224, 1000, imagenet=True),
}
"""Datasets ``describe`` knows: input channels, resolution, classes and network family."""


MAX_DESCRIBE_PARAMS = 50_000_000
"""Largest network :func:`describe_genotype` builds: 5·10^7 parameters (200 MB as float32;
the thesis's networks have 2–6 million). Counted on the ``meta`` device first, which
allocates nothing, so an oversized request is refused before any memory is used."""
MAX_DESCRIBE_LAYERS = 100
"""Most cells :func:`describe_genotype` builds (the thesis's networks have 8–20)."""


def _check_size(build: Any, what: str, hint: str) -> None:
    """Refuse a network of more than :data:`MAX_DESCRIBE_PARAMS` parameters, counted by
    ``build()`` on the meta device (shapes only, no memory)."""
    with torch.device("meta"):
        params = count_parameters(build())
    if params > MAX_DESCRIBE_PARAMS:
        raise NasforgeError(
            f"{what} has {params:,} parameters (about {params * 4 / 2**30:,.1f} GiB as "
            f"float32); describe builds networks of up to {MAX_DESCRIBE_PARAMS:,} parameters: "
            f"{hint}")


def describe_genotype(
    genotype: Genotype,
    *,
    dataset: str = "cifar10",
    channels: int | None = None,
    layers: int | None = None,
    num_classes: int | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Parameters (M), MACs (M) and peak memory (MB) of a genotype's evaluation network.

    CIFAR-10/100, SVHN and digits use :class:`NetworkCIFAR` (C=36, 20 cells by default);
    ImageNet uses :class:`NetworkImageNet` (C=48, 14 cells, 224×224). The auxiliary head is
    left out of every number. Peak memory is measured on ``device`` (``auto``: CUDA when
    present), and ``peak_memory_device`` says which method gave it; MB is 2**20 bytes.
    """
    from nasforge.runtime import pick_device

    if dataset not in DATASETS:
        raise NasforgeError(f"unknown dataset '{dataset}'; choose from: {', '.join(DATASETS)}")
    spec = DATASETS[dataset]
    C = spec.channels if channels is None else channels
    L = spec.layers if layers is None else layers
    classes = spec.num_classes if num_classes is None else num_classes
    for name, value, lo, hi in (("channels", C, 1, None), ("layers", L, 3, MAX_DESCRIBE_LAYERS),
                                ("num_classes", classes, 1, None)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
                hi is not None and value > hi):
            allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise NasforgeError(f"{name} must be an integer {allowed}, got {value!r}")
    network_cls = NetworkImageNet if spec.imagenet else NetworkCIFAR

    def build() -> nn.Module:
        return network_cls(genotype, C, classes, L, auxiliary=False, in_channels=spec.in_channels)

    _check_size(build, f"the {dataset} network with C={C}, {L} cells",
                "lower --channels or --layers")
    model = build()
    input_shape = (spec.in_channels, spec.size, spec.size)
    params = count_parameters(model)
    flops = count_flops(model, input_shape)
    where = pick_device(device)
    peak = peak_forward_memory(model.to(where), input_shape)
    return {
        "dataset": dataset,
        "channels": C,
        "layers": L,
        "num_classes": classes,
        "input_shape": list(input_shape),
        "params": params,
        "params_m": round(params / 1e6, 4),
        "flops": flops,
        "flops_m": round(flops / 1e6, 2),
        "peak_memory": peak,
        "peak_memory_mb": round(peak / 2**20, 2),
        "peak_memory_device": where.type,
    }


MAX_SNN_TIMESTEPS = 256
"""Most time steps an SNN is described with (the thesis uses 4, 8 and 16)."""
MAX_SNN_BATCH = 1024
"""Largest batch ``snn describe --measure`` counts spikes on."""
MAX_SNN_VALUES = 2**28
"""Most values (batch × T × C × H × W) in the first layer of a described SNN: 1 GiB float32."""


def check_snn_input(channels: int, timesteps: int, batch: int, size: int) -> None:
    """The bounds every ``snn describe`` keeps (``--arch`` and ``--model``), so a typo cannot
    exhaust the memory: C >= 1, 1 <= T <= :data:`MAX_SNN_TIMESTEPS`, 1 <= batch <=
    :data:`MAX_SNN_BATCH` and at most :data:`MAX_SNN_VALUES` values in the first layer."""
    for name, value, hi in (("--channels", channels, None),
                            ("--timesteps", timesteps, MAX_SNN_TIMESTEPS),
                            ("--batch", batch, MAX_SNN_BATCH)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (
                hi is not None and value > hi):
            allowed = f"1..{hi}" if hi is not None else ">= 1"
            raise NasforgeError(f"{name} must be an integer {allowed}, got {value!r}")
    values = batch * timesteps * channels * size * size
    if values > MAX_SNN_VALUES:
        raise NasforgeError(
            f"batch {batch} x T={timesteps} x C={channels} x {size}x{size} is {values:,} values "
            f"in the first layer; allowed up to {MAX_SNN_VALUES:,} (1 GiB as float32): lower "
            "--batch, --timesteps or --channels")


def check_snn_size(arch: str, channels: int, timesteps: int, batch: int, *, size: int,
                   in_channels: int, classes: int, variant: str | None = None,
                   space: str = "default") -> None:
    """Refuse an SNN that ``snn describe`` could not build or run in bounded memory, naming
    the allowed range: C >= 1, 1 <= T <= :data:`MAX_SNN_TIMESTEPS`, 1 <= batch <=
    :data:`MAX_SNN_BATCH`, the architecture's block count, at most
    :data:`MAX_DESCRIBE_PARAMS` parameters (counted on the meta device) and at most
    :data:`MAX_SNN_VALUES` values in the first layer's activation."""
    from nasforge.snn.backbone import SNNBackbone, num_tbd

    check_snn_input(channels, timesteps, batch, size)
    blocks = num_tbd(variant, space)
    given = arch.count(",") + 1 if isinstance(arch, str) else len(arch)
    if given > blocks:
        raise NasforgeError(f"architecture has {given:,} blocks; this backbone (variant "
                            f"{variant or 'default'}, space {space}) takes exactly {blocks}")
    _check_size(lambda: SNNBackbone(arch, channels, timesteps, classes, size, in_channels,
                                    variant, space),
                f"the SNN with C={channels}", "lower --channels")
