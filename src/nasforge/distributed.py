"""Data-parallel runs under ``torchrun``: one process per device, each on a share of every batch.

``torchrun --nproc_per_node=N -m nasforge.cli search ...`` starts N copies of the command.
:func:`setup` sees torchrun's ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``, joins the process
group (NCCL on CUDA, gloo on CPU) and returns a :class:`Dist`; without torchrun it returns a
world of one whose every collective is a no-op, so single-process runs take the same code
path unchanged.

The contract every data-parallel loop keeps:

- every rank iterates the same global batches (they depend on (seed, epoch) only) and keeps
  its contiguous share (:meth:`Dist.shard_epoch`), so the shares of one step add up to the
  single-process batch;
- gradients are averaged across ranks, weighted by each rank's example count, before any
  optimiser step or gradient clipping (:meth:`Dist.average_`), so every rank takes the same
  step: parameters, optimiser state and every sampled architecture stay identical;
- BatchNorm normalises with the statistics of the rank's share (no SyncBatchNorm: gloo has no
  CPU implementation, and a super-network with a BN per op would pay two collectives per op
  per forward); running statistics are averaged across ranks at the end of each epoch;
- metrics are summed across ranks, and only rank 0 writes files (:meth:`Dist.main_only`);
- :meth:`Dist.check_replicas` compares a digest of the training state across ranks (after
  set-up or resume and after each epoch) and stops the run when a replica has diverged.

Setting ``NASFORGE_REPLICA_DUMP=DIR`` also makes every rank save the state it checked to
``DIR/NAME.rankR.pt`` (a debugging aid; the data-parallel tests use it).
"""

from __future__ import annotations

import atexit
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as tdist
from torch import Tensor, nn

from nasforge.errors import NasforgeError
from nasforge.runtime import amp_dtype, pick_device, prepare_run_dir, seed_everything

__all__ = ["DUMP_ENV", "Dist", "StepSync", "current", "launched", "rank_seed", "setup"]

DUMP_ENV = "NASFORGE_REPLICA_DUMP"

T = TypeVar("T")


def launched() -> bool:
    """True in a process started by torchrun with more than one process in the group."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_seed(seed: int, epoch: int, rank: int) -> int:
    """A 63-bit seed fixed by (seed, epoch, rank): per-rank randomness such as drop-path masks."""
    digest = hashlib.blake2b(f"nasforge.rank:{seed}:{epoch}:{rank}".encode(),
                             digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run (a world of one without torchrun)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and shows progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    # --- sharding ---------------------------------------------------------------------------

    def bounds(self, n: int) -> tuple[int, int]:
        """This rank's ``[start, end)`` of n items: contiguous parts whose sizes differ by at
        most one, the larger ones first (``torch.tensor_split``'s parts)."""
        base, extra = divmod(n, self.world)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + int(self.rank < extra)

    def shard(self, batch: tuple, dims: Sequence[int] | None = None) -> tuple:
        """This rank's part of every tensor of ``batch`` along its batch dim (``dims``, default
        0 for all; the last element is always ``[B]`` labels, which fix B)."""
        if not self.enabled:
            return batch
        start, end = self.bounds(int(batch[-1].shape[0]))
        dims = dims or (0,) * len(batch)
        return tuple(t.narrow(d, start, end - start) for t, d in zip(batch, dims, strict=True))

    def shard_epoch(self, batches: Any, epoch: int, *, train: bool = True
                    ) -> Iterator[tuple]:
        """Epoch ``epoch`` of ``batches`` (anything with ``.epoch(e)``), each global batch cut
        to this rank's part (the batcher's ``batch_dims`` say which dim is the batch).

        ``train=True``: a global batch with fewer examples than ranks (at most the last of an
        epoch) is skipped on every rank, so that every rank takes every step. Evaluation
        (``train=False``) keeps every example: a rank without a part of a batch skips it.
        """
        for _, part in self.enumerate_shards(batches, epoch, train=train):
            yield part

    def enumerate_shards(self, batches: Any, epoch: int, *, train: bool = True
                         ) -> Iterator[tuple[int, tuple]]:
        """:meth:`shard_epoch` with each part's global batch number (the same on every rank,
        e.g. to pick that step's sampled path)."""
        if self.enabled and hasattr(batches, "epoch_parts"):  # loads only this rank's part
            yield from batches.epoch_parts(epoch, self, train)
            return
        dims = getattr(batches, "batch_dims", None)
        for step, batch in enumerate(batches.epoch(epoch)):
            if not self.enabled:
                yield step, batch
                continue
            n = int(batch[-1].shape[0])
            if train and n < self.world:
                continue
            start, end = self.bounds(n)
            if end > start:
                yield step, self.shard(batch, dims)

    def steps(self, batches: Any) -> int:
        """How many training steps :meth:`shard_epoch` yields per epoch of ``batches``."""
        steps = len(batches)
        n = getattr(batches, "num_examples", None)
        if not self.enabled or steps == 0 or n is None:
            return steps
        last = n - (steps - 1) * batches.batch_size
        return steps - int(last < self.world)

    # --- collectives ------------------------------------------------------------------------

    def average_(self, tensors: Iterable[Tensor], weight: float = 1.0) -> list[Tensor]:
        """In place, each tensor becomes Σ_r w_r·t_r / Σ_r w_r over ranks (w: ``weight``, e.g.
        the rank's example count); one all-reduce of one flat float32 (float64 if any tensor
        is) buffer. Returns the tensors."""
        tensors = list(tensors)
        if not self.enabled or not tensors:
            return tensors
        dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
        flat = torch.cat([t.detach().reshape(-1).to(dtype) for t in tensors])
        flat = torch.cat([flat.mul_(weight), flat.new_full((1,), float(weight))])
        tdist.all_reduce(flat)
        flat = flat[:-1] / flat[-1]
        offset = 0
        for t in tensors:
            with torch.no_grad():
                t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()
        return tensors

    def average_grads(self, params: Iterable[Tensor], weight: float = 1.0) -> None:
        """:meth:`average_` on the gradients of ``params`` that have one (the same parameters
        on every rank: the ranks run the same architecture)."""
        if self.enabled:
            self.average_([p.grad for p in params if p.grad is not None], weight)

    def sum_(self, tensors: Iterable[Tensor]) -> list[Tensor]:
        """In place, each tensor (float or integer) becomes its sum over ranks; one all-reduce."""
        tensors = list(tensors)
        if not self.enabled or not tensors:
            return tensors
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
        tdist.all_reduce(flat)
        offset = 0
        for t in tensors:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()
        return tensors

    def sum_counts(self, *values: float) -> list[float]:
        """Python numbers summed over ranks (example counts and the like)."""
        if not self.enabled:
            return list(values)
        flat = torch.tensor(values, dtype=torch.float64, device=self.device)
        tdist.all_reduce(flat)
        return flat.tolist()

    def average_buffers(self, module: nn.Module) -> None:
        """Average the floating-point buffers (BatchNorm running statistics) across ranks."""
        self.average_([b for b in module.buffers() if b.is_floating_point()])

    def gather(self, t: Tensor) -> Tensor:
        """Every rank's ``t`` (any length along dim 0) concatenated in rank order."""
        if not self.enabled:
            return t
        sizes = [torch.zeros(1, dtype=torch.int64, device=t.device) for _ in range(self.world)]
        tdist.all_gather(sizes, torch.tensor([t.shape[0]], device=t.device))
        longest = int(max(s.item() for s in sizes))
        padded = t.new_zeros((longest, *t.shape[1:]))
        padded[: t.shape[0]] = t
        parts = [torch.empty_like(padded) for _ in range(self.world)]
        tdist.all_gather(parts, padded.contiguous())
        return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes, strict=True)])

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` (picklable) on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()

    def main_only(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (file writes, checks of the run directory) on rank 0 only; every rank
        returns its result, or raises its error, once rank 0 is done."""
        if not self.enabled:
            return fn()
        outcome: tuple[str, Any] = ("ok", None)
        error: NasforgeError | None = None
        if self.is_main:
            try:
                outcome = ("ok", fn())
            except NasforgeError as exc:
                error, outcome = exc, ("error", exc)
            except BaseException as exc:
                self.broadcast_object(("crash", f"{type(exc).__name__}: {exc}"))
                raise
        kind, value = self.broadcast_object(outcome)
        if kind == "error":
            raise error or value
        if kind == "crash":
            raise NasforgeError(f"rank 0 failed: {value}")
        return value

    def check_replicas(self, name: str, state: dict[str, Any], where: str) -> None:
        """Stop the run when ``state`` (state dicts, tensors, numbers) differs across ranks.

        Compares one digest per top-level key; with ``NASFORGE_REPLICA_DUMP`` set, every rank
        also saves ``state`` to ``$NASFORGE_REPLICA_DUMP/NAME.rankR.pt``.
        """
        dump = os.environ.get(DUMP_ENV)
        if dump:
            Path(dump).mkdir(parents=True, exist_ok=True)
            torch.save(state, Path(dump) / f"{name}.rank{self.rank}.pt")
        if not self.enabled:
            return
        digests = {key: _digest(value) for key, value in state.items()}
        everyone: list[Any] = [None] * self.world
        tdist.all_gather_object(everyone, digests)
        differ = sorted(k for k in digests if any(d.get(k) != everyone[0][k] for d in everyone))
        if differ:
            raise NasforgeError(f"the {self.world} data-parallel replicas of {name} diverged "
                                f"at {where}: {', '.join(differ)} differ across ranks")


def _digest(obj: Any) -> str:
    h = hashlib.blake2b(digest_size=16)

    def feed(o: Any) -> None:
        if isinstance(o, Tensor):
            t = o.detach().reshape(-1).contiguous().cpu()
            h.update(f"T{t.dtype}{tuple(o.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        elif isinstance(o, dict):
            h.update(b"{")
            for k in sorted(o, key=repr):
                h.update(repr(k).encode())
                feed(o[k])
            h.update(b"}")
        elif isinstance(o, list | tuple):
            h.update(b"[")
            for item in o:
                feed(item)
            h.update(b"]")
        else:
            h.update(repr(o).encode())

    feed(obj)
    return h.hexdigest()


class StepSync:
    """Averages the gradients of ``optimizer``'s parameters across ranks right before each of
    its steps (an optimiser step pre-hook), so strategies that set ``.grad`` themselves
    (``descend``, unrolled DARTS, REINFORCE) need no data-parallel code. ``weight`` is the
    rank's example count for the coming step; set it before the step."""

    def __init__(self, dist: Dist, optimizer: torch.optim.Optimizer) -> None:
        self.dist = dist
        self.weight = 1.0
        if dist.enabled:
            optimizer.register_step_pre_hook(self._before_step)

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.dist.average_grads((p for g in optimizer.param_groups for p in g["params"]),
                                self.weight)


_CURRENT: Dist | None = None


def current() -> Dist:
    """The process's :class:`Dist` once :func:`setup` joined a group, else a world of one."""
    return _CURRENT if _CURRENT is not None else Dist()


def start_run(cfg: Any, run_dir: Path, *, fresh: bool, force: bool = False
              ) -> tuple[Dist, torch.dtype | None]:
    """What every training stage does first: join the data-parallel world (or not), create
    the run directory on rank 0 when ``fresh``, seed every stream. Returns the ``Dist`` and
    the autocast dtype of ``cfg.run.amp`` on its device."""
    dist = setup(cfg.run.device)
    if fresh:
        dist.main_only(lambda: prepare_run_dir(run_dir, cfg, force=force))
    seed_everything(cfg.run.seed, cfg.run.deterministic)
    return dist, amp_dtype(dist.device, cfg.run.amp)


def setup(device: str = "auto") -> Dist:
    """The training device and data-parallel position of this process.

    Without torchrun: ``pick_device(device)`` in a world of one. Under torchrun: joins the
    process group (once per process): ``auto`` / ``cuda`` run on ``cuda:LOCAL_RANK`` with
    NCCL (``auto`` without CUDA: CPU), ``cpu`` runs with gloo.
    """
    global _CURRENT
    if not launched():
        return Dist(device=pick_device(device))
    if device not in ("auto", "cpu", "cuda"):
        raise NasforgeError(f"device '{device}' cannot be used under torchrun: each process "
                            "takes cuda:LOCAL_RANK; use --device auto, cuda or cpu")
    kind = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if _CURRENT is not None:
        if _CURRENT.device.type != kind:
            raise NasforgeError(f"this process already runs data-parallel on "
                                f"{_CURRENT.device.type}; cannot switch to {kind}")
        return _CURRENT
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise NasforgeError("device 'cuda' requested but CUDA is not available; use cpu")
        if local >= torch.cuda.device_count():
            raise NasforgeError(f"LOCAL_RANK {local} has no GPU ({torch.cuda.device_count()} "
                                "visible): start at most one process per GPU")
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not tdist.is_initialized():
        if kind == "cuda":
            tdist.init_process_group("nccl", device_id=dev)
        else:
            tdist.init_process_group("gloo")
        atexit.register(_shutdown)
    _CURRENT = Dist(rank=rank, world=world, device=dev)
    return _CURRENT


def _shutdown() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()
