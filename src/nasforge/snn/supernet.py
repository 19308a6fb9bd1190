"""Training the AutoSNN super-network (thesis §5.3.1, Fig. 5.9a; docs/snn.md).

Each step draws one path uniformly (one block per TBD position), and the whole batch and
all T time steps run through it. Paths come from a generator seeded by ``(seed, epoch)``,
so every epoch's paths are fixed by the seed alone: a resumed run, or every rank of a
data-parallel run, draws the same ones. The training data are split 8:2 per class into
train and validation; the validation indices are saved for the search. N_avg, the mean
spikes per image over the paths sampled in the last epoch, goes into the checkpoint so the
search's fitness needs no hand-typed constant.

The super-network has its own budget (``snn.supernet_epochs``, default ``snn.epochs``) and
no cutout unless ``snn.supernet_cutout`` asks for it (the authors' script has none).
:func:`recalibrated_bn` recomputes the BatchNorm statistics of one path before it is scored
(``snn.bn_recalibrate_batches``) and restores the shared ones afterwards.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasforge.checkpoint import has_checkpoint, load_checkpoint
from nasforge.config import Config
from nasforge.data import read_index_file, write_index_file
from nasforge.distributed import start_run
from nasforge.errors import NasforgeError
from nasforge.runtime import (
    LossWatch,
    lower_lr_hint,
    read_csv,
    resume_config,
    write_results,
)
from nasforge.skeleton import CHECKPOINT, Epoch, EpochRun, Stage, run_stage
from nasforge.snn.backbone import SNNSuperNet
from nasforge.snn.blocks import bn_mode
from nasforge.snn.data import SNNData, holdout, load_snn_data, snn_batches, static_augment
from nasforge.snn.epoch import adam, evaluate_rates, restore_training, train_epoch
from nasforge.snn.neuron import neuron_kind, reset_net

KIND = "snn-supernet"


def effective_timesteps(cfg: Config) -> int:
    """ReLU networks have no state, so their T identical steps collapse to one."""
    return 1 if cfg.snn.neuron == "relu" else cfg.snn.timesteps


def supernet_spec(cfg: Config, data: SNNData) -> dict[str, Any]:
    """Everything needed to rebuild the super-network, stored with its checkpoint."""
    s = cfg.snn
    return {"channels": s.channels, "timesteps": effective_timesteps(cfg),
            "num_classes": data.num_classes, "in_size": data.in_size,
            "in_channels": data.in_channels, "variant": s.variant, "space": s.space,
            "candidates": list(s.blocks), "neuron": s.neuron, "dataset": data.name,
            "bn": s.bn}


def supernet_epochs(cfg: Config) -> int:
    """The super-network's own budget: ``snn.supernet_epochs``, else ``snn.epochs``."""
    return cfg.snn.supernet_epochs or cfg.snn.epochs


def build_supernet(spec: dict[str, Any]) -> SNNSuperNet:
    with neuron_kind(spec["neuron"]), bn_mode(spec.get("bn", "per-step")):
        return SNNSuperNet(spec["channels"], spec["timesteps"], spec["num_classes"],
                           spec["in_size"], spec["in_channels"], spec["variant"],
                           spec["space"], tuple(spec["candidates"]))


def path_sampler(candidates: list[str] | tuple[str, ...], length: int, seed: int, epoch: int
                 ) -> random.Random:
    """The generator of ``epoch``'s paths: a function of (seed, epoch) only."""
    return random.Random(f"nasforge.snn.paths:{seed}:{epoch}:{length}:{','.join(candidates)}")


def sample_path(rng: random.Random, candidates: list[str] | tuple[str, ...], length: int
                ) -> list[str]:
    """One block per TBD position, each uniform over the candidates."""
    return [rng.choice(candidates) for _ in range(length)]


def split_indices(cfg: Config, data: SNNData, out: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The 8:2 train/validation split of the (proxy-restricted) training data, saved."""
    base = (read_index_file(cfg.data.proxy, len(data.train)) if cfg.data.proxy
            else torch.arange(len(data.train)))
    labels = data.labels(data.train)[base.numpy()]
    train_pos, val_pos = holdout(labels, cfg.snn.val_fraction, cfg.run.seed)
    train_idx, val_idx = base[train_pos].sort().values, base[val_pos].sort().values
    write_index_file(out / "train.txt", train_idx)
    write_index_file(out / "val.txt", val_idx)
    return train_idx, val_idx


def run_supernet(cfg: Config, out: str | Path, *, resume: bool = False,
                 force: bool = False) -> dict:
    """Train the super-network into run directory ``out``; returns its ``results.json``."""
    out = Path(out)
    stage = SupernetStage(cfg, out, resume=resume, force=force)
    return run_stage(stage, dist=stage.dist, run_dir=out, epochs=stage.epochs,
                     steps=stage.dist.steps(stage.train_batches), resume=resume,
                     progress=cfg.run.progress, resume_hint=lower_lr_hint(
                         f"nasforge snn supernet --resume {out}", "snn.lr", cfg.snn.lr))


class SupernetStage(Stage):
    """Super-network training as a :class:`~nasforge.skeleton.Stage`: the constructor prepares
    the split, batches and super-network, :meth:`epoch` trains on one sampled path per step
    and validates random paths, :meth:`finish` writes the results."""

    kind = KIND
    log_name = "supernet_log.csv"
    desc = "snn supernet"

    def __init__(self, cfg: Config, out: Path, *, resume: bool, force: bool) -> None:
        s = cfg.snn
        self.cfg, self.out = cfg, out
        # Checked before the run directory exists, so a bad input leaves nothing behind.
        from nasforge.snn.blocks import BLOCKS

        for name in s.blocks:
            BLOCKS.get(name)
        data = self.data = load_snn_data(cfg.data.dataset, cfg.data.root,
                                         timesteps=s.timesteps, upscale=cfg.data.upscale)
        if cfg.data.proxy:
            read_index_file(cfg.data.proxy, len(data.train))
        # data-parallel under torchrun: docs/distributed.md
        dist, dtype = start_run(cfg, out, fresh=not resume, force=force)
        self.dist, self.dtype = dist, dtype
        device = dist.device
        if resume and (out / "val.txt").exists():
            train_idx = read_index_file(out / "train.txt", len(data.train))
            val_idx = read_index_file(out / "val.txt", len(data.train))
        else:
            train_idx, val_idx = dist.main_only(lambda: split_indices(cfg, data, out))
        self.train_idx, self.val_idx = train_idx, val_idx
        augment = static_augment(data, s.crop_pad, s.flip, s.supernet_cutout)
        self.train_batches = snn_batches(data, data.train, s.batch_size, device=device,
                                         indices=train_idx, seed=cfg.run.seed,
                                         augment=augment)
        self.val_batches = snn_batches(data, data.train, s.eval_batch_size, device=device,
                                       indices=val_idx, shuffle=False)

        self.spec = supernet_spec(cfg, data)
        self.model = build_supernet(self.spec).to(device)
        self.optimizer = adam(self.model.parameters(), s.lr, s.betas)
        self.scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        self.n_avg: float | None = None
        self.length = self.model.num_tbd
        self.epochs = supernet_epochs(cfg)

    def restore(self, state: dict, path: Path) -> None:
        if state.get("kind") != KIND or state.get("spec") != self.spec:
            raise NasforgeError(f"{path} is not a checkpoint of this super-network run")
        restore_training(self.model, self.optimizer, self.scaler, state, path, self.cfg.snn.lr)
        self.n_avg = state["n_avg"]

    def replicas(self, start: int) -> dict:  # what must be identical on every rank
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "start": start, "n_avg": self.n_avg}

    def epoch(self, epoch: int, run: EpochRun) -> Epoch:
        cfg, s, model, dist, length = self.cfg, self.cfg.snn, self.model, self.dist, self.length
        rng = path_sampler(s.blocks, length, cfg.run.seed, epoch)
        paths = [sample_path(rng, s.blocks, length) for _ in range(len(self.train_batches))]
        watch = LossWatch(dist.device)
        train = train_epoch(model, self.train_batches, self.optimizer, epoch,
                            forward=lambda x, step, paths=paths: model(x, paths[step]),
                            loss_kind=s.loss, dtype=self.dtype, scaler=self.scaler,
                            count=None if s.neuron == "relu" else s.convention,
                            timesteps=self.spec["timesteps"],
                            on_step=run.tick, dist=dist, watch=watch)
        run.check(train.loss, watch=watch, module=model)  # nothing of this epoch is saved
        # Validation: one uniformly drawn path per batch, i.e. a random architecture's accuracy.
        vrng = path_sampler(s.blocks, length, cfg.run.seed + 1, epoch)
        vpaths = [sample_path(vrng, s.blocks, length) for _ in range(len(self.val_batches))]
        dist.average_buffers(model)  # BN running statistics
        val = evaluate_rates(model, self.val_batches, loss_kind=s.loss, dtype=self.dtype,
                             forward=lambda x, step, vpaths=vpaths: model(x, vpaths[step]),
                             dist=dist)
        run.check(val.loss, what="validation loss")
        self.n_avg = train.spikes
        return Epoch(row={"epoch": epoch, "train_loss": train.loss, "train_acc": train.acc,
                          "val_loss": val.loss, "val_acc": val.acc, "spikes": train.spikes},
                     postfix=dict(epoch=epoch, loss=f"{train.loss:.4f}",
                                  val_acc=f"{val.acc:.1f}"))

    def checkpoint(self, epoch: int) -> dict:
        return {"spec": self.spec, "epochs": self.epochs, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "n_avg": self.n_avg,
                "convention": self.cfg.snn.convention,
                "scaler": None if self.scaler is None else self.scaler.state_dict()}

    def finish(self, elapsed: float) -> dict:
        return self.dist.main_only(lambda: _finish(self.out, self.data, self.spec, self.epochs,
                                                   self.train_idx, self.val_idx, self.model))


def _finish(out: Path, data: SNNData, spec: dict[str, Any], epochs: int,
            train_idx: torch.Tensor, val_idx: torch.Tensor, model: SNNSuperNet) -> dict:
    """Write ``results.json`` from the last checkpoint and log; returns the results."""
    state = load_checkpoint(out / CHECKPOINT)
    rows = read_csv(out / "supernet_log.csv")
    results = {"stage": "snn-supernet", "dataset": data.name, "spec": spec,
               "epochs": epochs, "n_avg": state["n_avg"], "convention": state["convention"],
               "val_acc_random_path": float(rows[-1]["val_acc"]) if rows else None,
               "train_examples": len(train_idx), "val_examples": len(val_idx),
               "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
               "seconds": state["elapsed"]}
    write_results(out, results)
    return results


def resume_supernet(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Continue a killed super-network run from its last checkpoint; ``overrides`` may
    lower the learning rate (:func:`nasforge.runtime.resume_config`)."""
    run_dir = Path(run_dir)
    return run_supernet(resume_config(run_dir, overrides), run_dir, resume=True)


def load_supernet(run_dir: str | Path, device: str | torch.device = "cpu"
                  ) -> tuple[SNNSuperNet, dict[str, Any]]:
    """The trained super-network of a run directory (eval mode) and its checkpoint metadata."""
    path = Path(run_dir) / CHECKPOINT
    if not has_checkpoint(path):
        raise NasforgeError(f"{run_dir} holds no super-network checkpoint (expected {path}); "
                            "train one with `nasforge snn supernet --out DIR`")
    state = load_checkpoint(path)
    if state.get("kind") != KIND:
        raise NasforgeError(f"{path} is not an SNN super-network checkpoint")
    model = build_supernet(state["spec"])
    model.load_state_dict(state["model"])
    meta = {k: state[k] for k in ("spec", "epoch", "epochs", "n_avg", "convention")}
    meta["finished"] = state["epoch"] + 1 >= state["epochs"]
    return model.to(device).eval(), meta


def _batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextlib.contextmanager
def recalibrated_bn(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                    forward: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[nn.Module]:
    """``model`` with BatchNorm running statistics recomputed on ``batches`` through
    ``forward`` (one path), in eval mode; on exit every statistic and momentum is restored.

    The statistics are reset and accumulated as a plain average over the batches (momentum
    None; with per-step BN each time step counts once), in train mode without gradients, with
    the neurons reset after each batch. The super-network's running statistics mix every path
    it sampled; a path's own statistics are what a standalone network would use.
    """
    norms = _batch_norms(model)
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(),
              m.num_batches_tracked.clone()) for m in norms]
    was_training = model.training
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        reset_net(model)
        with torch.no_grad():
            for x, _y in batches:
                forward(x)
                reset_net(model)
        model.eval()
        yield model
    finally:
        for m, (momentum, mean, var, count) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
        model.train(was_training)


def recalibration_batches(data: SNNData, train_idx: torch.Tensor, batch_size: int,
                          num_batches: int, seed: int, device: torch.device | str
                          ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``num_batches`` batches of the super-network's training split in a fixed
    shuffled order, without augmentation: every path is recalibrated on the same images."""
    if num_batches <= 0:
        return []
    batches = snn_batches(data, data.train, batch_size, device=torch.device(device),
                          indices=train_idx, seed=seed, shuffle=True)
    out = []
    for x, y in batches.epoch(0):
        if len(out) == num_batches:
            break
        out.append((x, y))
    return out
