"""The skeleton every long-running stage runs in: resume, epochs, NaN guard, logs, checkpoints.

``search``, ``train``, ``entropy``, ``snn supernet`` and ``snn train`` all train something
for a number of epochs and must survive a kill at any moment. A stage supplies only what is
its own, as a :class:`Stage`:

- *prepare* (the stage's constructor or a function of its module): check the inputs, load
  the data, join the data-parallel world and create the run directory
  (:func:`nasforge.distributed.start_run`), build the model and optimisers;
- :meth:`Stage.restore`: take back a checkpoint this stage wrote (and refuse a foreign one);
- :meth:`Stage.epoch`: one epoch, returning its metrics for the log (:class:`Epoch`);
- :meth:`Stage.checkpoint`: what the checkpoint holds besides the common fields;
- :meth:`Stage.finish`: the results once every epoch has run.

:func:`run_stage` does the rest, the same way for every stage:

1. with ``resume`` and a checkpoint in the run directory: load it, let the stage restore it,
   restore the global random streams when the stage saves them (:attr:`Stage.save_rng`), and
   continue after its epoch with its elapsed seconds;
2. check that every data-parallel rank holds the same state (:meth:`Stage.replicas`; a stage
   that never runs data-parallel returns None and is not checked);
3. on rank 0, open the CSV + TensorBoard log (rows after the resumed epoch dropped) and let
   the stage tidy its own files (:meth:`Stage.open_files`);
4. for every remaining epoch: run :meth:`Stage.epoch` under a progress bar (rank 0 only),
   add the epoch's wall-clock time, check the replicas again, and on rank 0 write the log
   row, the stage's extra line (the search's strengths history) and then the checkpoint
   atomically (:func:`nasforge.runtime.record_epoch`);
5. return :meth:`Stage.finish`.

The NaN guard is the stage's to place (a search checks its training loss before the
architecture's end-of-epoch hook, a classifier phase after it) but its message is the
skeleton's: :meth:`EpochRun.check` names the epoch, the last good checkpoint and the
stage's resume command (:func:`nasforge.runtime.check_finite`). It runs before anything of
the epoch is written, so a NaN epoch leaves the last good checkpoint in place.

Checkpoints hold ``kind`` (:attr:`Stage.kind`), ``epoch``, the stage's own fields, ``rng``
(:func:`nasforge.runtime.rng_state`, when :attr:`Stage.save_rng`) and ``elapsed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from nasforge.checkpoint import has_checkpoint, load_checkpoint
from nasforge.distributed import Dist
from nasforge.runtime import (
    CsvLog,
    LossWatch,
    check_finite,
    record_epoch,
    rng_state,
    set_rng_state,
)

__all__ = ["CHECKPOINT", "Epoch", "EpochRun", "Stage", "run_stage"]

CHECKPOINT = "checkpoint.pt"


@dataclass
class Epoch:
    """What one epoch of a stage reports: its log ``row`` (the skeleton appends
    ``seconds``), the progress bar's ``postfix``, and optionally a ``(file, line)`` to append
    to on rank 0 right after the row (the search's strengths history)."""

    row: dict[str, Any]
    postfix: dict[str, Any] = field(default_factory=dict)
    append: tuple[Path, str] | None = None


@dataclass
class EpochRun:
    """Handed to :meth:`Stage.epoch`: the epoch's number, the progress bar's ``tick`` (call
    once per step) and the NaN guard (:meth:`check`)."""

    epoch: int
    run_dir: Path
    checkpoint: Path
    resume_hint: str
    tick: Callable[[], Any]

    def check(self, loss: torch.Tensor | float, *, what: str = "loss",
              watch: LossWatch | None = None, module: torch.nn.Module | None = None) -> None:
        """Stop the run with one line when ``loss`` (or ``module``'s weights) is not finite
        (:func:`nasforge.runtime.check_finite`)."""
        check_finite(loss, epoch=self.epoch, run=self.run_dir, checkpoint=self.checkpoint,
                     resume=self.resume_hint, watch=watch, what=what, module=module)


class Stage:
    """What a long-running stage supplies to :func:`run_stage` (see the module docstring).

    Subclasses set :attr:`kind` (the checkpoint's ``kind`` and the replica check's name),
    :attr:`log_name` (the CSV log in the run directory), :attr:`desc` (the progress bar's
    label) and :attr:`save_rng`, and implement :meth:`restore`, :meth:`epoch`,
    :meth:`checkpoint` and :meth:`finish`.
    """

    kind: str = ""
    log_name: str = "train_log.csv"
    desc: str = ""
    save_rng: bool = False
    """Save the global random streams with every checkpoint and restore them on resume
    (stages that draw from them: dropout, drop-path, noise ops, SimCLR's augmentation)."""

    def restore(self, state: dict[str, Any], path: Path) -> None:
        """Take back checkpoint ``state`` read from ``path``; raise a ``NasforgeError`` when
        it is not one of this run."""
        raise NotImplementedError

    def replicas(self, start: int) -> dict[str, Any] | None:
        """What must be identical on every data-parallel rank (``start``: the first epoch
        this process runs); None for a stage that never runs data-parallel."""
        return None

    def open_files(self, start: int, resume: bool) -> None:
        """Rank 0, after the log is opened: tidy the stage's own per-epoch files."""

    def epoch(self, epoch: int, run: EpochRun) -> Epoch:
        """Run epoch ``epoch``; call ``run.check`` on its losses before returning."""
        raise NotImplementedError

    def checkpoint(self, epoch: int) -> dict[str, Any]:
        """The checkpoint's fields after epoch ``epoch`` besides ``kind``, ``epoch``,
        ``rng`` and ``elapsed``."""
        raise NotImplementedError

    def finish(self, elapsed: float) -> Any:
        """After the last epoch (``elapsed``: the training seconds over every process that
        ran this run): the stage's results."""
        raise NotImplementedError


def run_stage(stage: Stage, *, dist: Dist, run_dir: Path, epochs: int, steps: int,
              resume: bool, progress: bool, resume_hint: str) -> Any:
    """Run ``stage``'s epochs ``[start, epochs)`` in ``run_dir`` and return its results.

    ``steps``: progress-bar steps per epoch; ``resume``: continue from the checkpoint when
    there is one; ``progress``: show the bar (rank 0 only); ``resume_hint``: the command the
    NaN message suggests (a lower learning rate)."""
    run_dir = Path(run_dir)
    device = dist.device
    ckpt_path = run_dir / CHECKPOINT
    start, elapsed = 0, 0.0
    if resume and has_checkpoint(ckpt_path):
        state = load_checkpoint(ckpt_path)
        stage.restore(state, ckpt_path)
        if stage.save_rng:
            set_rng_state(state["rng"], device)
        start, elapsed = state["epoch"] + 1, state["elapsed"]

    replicas = partial(stage.replicas, start)
    _check_replicas(dist, stage.kind, replicas(), "the start")
    log = None
    if dist.is_main:
        log = CsvLog(run_dir / stage.log_name, resume_after=start - 1 if resume else None,
                     tensorboard=True)
        stage.open_files(start, resume)

    bar = tqdm(total=(epochs - start) * steps, desc=stage.desc,
               disable=not progress or not dist.is_main, unit="step")
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        done = stage.epoch(epoch, EpochRun(epoch=epoch, run_dir=run_dir, checkpoint=ckpt_path,
                                           resume_hint=resume_hint,
                                           tick=lambda: bar.update(1)))
        elapsed += time.perf_counter() - t0
        bar.set_postfix(**done.postfix)
        _check_replicas(dist, stage.kind, replicas(), f"epoch {epoch}")
        row = {**done.row, "seconds": elapsed}
        state = {"kind": stage.kind, "epoch": epoch, **stage.checkpoint(epoch)}
        if stage.save_rng:
            state["rng"] = rng_state(device)
        state["elapsed"] = elapsed
        dist.main_only(partial(record_epoch, log, row, state, ckpt_path, done.append))
    bar.close()
    return stage.finish(elapsed)


def _check_replicas(dist: Dist, name: str, state: dict[str, Any] | None, where: str) -> None:
    if state is not None:
        dist.check_replicas(name, state, where)
