"""Count host synchronisations in one search step, and say where they happen.

A search step should never wait for the device: losses, accuracies and spike counts are
accumulated on the device and read once per epoch. This runs the step ``nasforge bench
step`` times (``nasforge.benchmarks.step.SearchStep``) and counts:

- on CUDA, every synchronisation CUDA's sync-debug mode reports
  (``torch.cuda.set_sync_debug_mode("warn")``), each attributed to its Python line;
- on CPU, every operation that would synchronise on a GPU: a tensor value read on the host
  (``.item()``, ``float()``, ``bool()``, ``.tolist()``) and the ops whose output size depends
  on values (``nonzero``, ``masked_select``, ``unique``, ...). Left out: reads inside
  ``torch.optim`` (the optimisers' step counters live on the host) and ``one_hot``'s range
  check (on CUDA it is a device-side assertion, not a read).

Prints the count per step and the source lines; with ``--max N`` exits 1 when a step has
more than N.

    .venv/bin/python bench/sync_count.py [--algo darts] [--device cuda] [--max 0]
"""

from __future__ import annotations

import argparse
import collections
import sys
import traceback
import warnings

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nasforge.benchmarks.step import SearchStep

VALUE_OPS = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2",
             "unique_consecutive", "unique_dim", "equal", "is_nonzero", "repeat_interleave",
             "masked_scatter"}


def caller() -> str | None:
    """``file:line`` of the innermost frame outside torch and this script (None: optimiser)."""
    frames = traceback.extract_stack()[:-2]
    for frame in reversed(frames):
        path = frame.filename.replace("\\", "/")
        if "/torch/optim/" in path:
            return None
        if "/torch/" in path or path.endswith("sync_count.py"):
            continue
        return f"{path.split('/src/')[-1]}:{frame.lineno}"
    return "?"


class HostReads(TorchDispatchMode):
    """Counts value-dependent ops (what would synchronise on a GPU) by source line."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: collections.Counter[str] = collections.Counter()
        self.paused = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self.paused and func.__name__.split(".")[0] in VALUE_OPS:
            where = caller()
            if where is not None:
                self.hits[f"{func.__name__.split('.')[0]} at {where}"] += 1
        return func(*args, **(kwargs or {}))


def count_cpu(run: SearchStep, steps: int) -> collections.Counter[str]:
    mode = HostReads()
    original = torch.Tensor.tolist

    def tolist(self):  # .tolist() reads the values without dispatching an op
        where = caller()
        if where is not None:
            mode.hits[f"tolist at {where}"] += 1
        return original(self)

    one_hot = torch.nn.functional.one_hot

    def one_hot_unchecked(*args, **kwargs):  # CUDA checks the range on the device
        mode.paused = True
        try:
            return one_hot(*args, **kwargs)
        finally:
            mode.paused = False

    torch.Tensor.tolist = tolist
    torch.nn.functional.one_hot = one_hot_unchecked
    try:
        with mode:
            for i in range(steps):
                run.step(1 + i)
    finally:
        torch.Tensor.tolist = original
        torch.nn.functional.one_hot = one_hot
    return mode.hits


def count_cuda(run: SearchStep, steps: int) -> collections.Counter[str]:
    hits: collections.Counter[str] = collections.Counter()
    run.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for i in range(steps):
                run.step(1 + i)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    for w in caught:
        if "synchroniz" in str(w.message).lower():
            path = w.filename.replace("\\", "/").split("/src/")[-1]
            hits[f"{str(w.message).split('.')[0][:60]} at {path}:{w.lineno}"] += 1
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="darts")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--max", type=int, help="exit 1 if a step has more synchronisations")
    args = parser.parse_args()
    run = SearchStep(args.algo, args.channels, args.layers, args.batch, args.resolution,
                     args.device, amp=args.amp)
    run.step(0)  # first step: optimiser state, lazy initialisation
    hits = (count_cuda if run.device.type == "cuda" else count_cpu)(run, args.steps)
    per_step = sum(hits.values()) / args.steps
    kind = "CUDA synchronisations" if run.device.type == "cuda" else \
        "host reads that would synchronise on a GPU"
    print(f"{args.algo} search step on {run.device}: {per_step:g} {kind} per step")
    for where, n in hits.most_common():
        print(f"  {n / args.steps:g}/step  {where}")
    if args.max is not None and per_step > args.max:
        sys.exit(1)


if __name__ == "__main__":
    main()
