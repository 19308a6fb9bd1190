"""Training the AutoSNN super-network (thesis §5.3.1, Fig. 5.9a; DESIGN §6).

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
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from nasforge.checkpoint import has_checkpoint, load_checkpoint, load_weights
from nasforge.config import Config
from nasforge.data import read_index_file, write_index_file
from nasforge.distributed import start_run
from nasforge.errors import NasforgeError
from nasforge.runtime import (
    CsvLog,
    LossWatch,
    check_finite,
    lower_lr_hint,
    read_csv,
    record_epoch,
    resume_config,
    write_results,
)
from nasforge.snn.backbone import SNNSuperNet
from nasforge.snn.blocks import bn_mode
from nasforge.snn.data import SNNData, holdout, load_snn_data, snn_batches, static_augment
from nasforge.snn.neuron import neuron_kind, reset_net
from nasforge.snn.training import adam, evaluate_rates, train_epoch

CHECKPOINT = "checkpoint.pt"
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
    s = cfg.snn
    # Checked before the run directory exists, so a bad input leaves nothing behind.
    from nasforge.snn.blocks import BLOCKS

    for name in s.blocks:
        BLOCKS.get(name)
    data = load_snn_data(cfg.data.dataset, cfg.data.root, timesteps=s.timesteps,
                         upscale=cfg.data.upscale)
    if cfg.data.proxy:
        read_index_file(cfg.data.proxy, len(data.train))
    # data-parallel under torchrun: docs/distributed.md
    dist, dtype = start_run(cfg, out, fresh=not resume, force=force)
    device = dist.device
    if resume and (out / "val.txt").exists():
        train_idx = read_index_file(out / "train.txt", len(data.train))
        val_idx = read_index_file(out / "val.txt", len(data.train))
    else:
        train_idx, val_idx = dist.main_only(lambda: split_indices(cfg, data, out))
    augment = static_augment(data, s.crop_pad, s.flip, s.supernet_cutout)
    train_batches = snn_batches(data, data.train, s.batch_size, device=device,
                                indices=train_idx, seed=cfg.run.seed, augment=augment)
    val_batches = snn_batches(data, data.train, s.eval_batch_size, device=device,
                              indices=val_idx, shuffle=False)

    spec = supernet_spec(cfg, data)
    model = build_supernet(spec).to(device)
    optimizer = adam(model.parameters(), s.lr, s.betas)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    ckpt_path = out / CHECKPOINT
    start, elapsed, n_avg = 0, 0.0, None
    if resume and has_checkpoint(ckpt_path):
        state = load_checkpoint(ckpt_path)
        if state.get("kind") != KIND or state.get("spec") != spec:
            raise NasforgeError(f"{ckpt_path} is not a checkpoint of this super-network run")
        load_weights(model, state["model"], ckpt_path, "the snn.* network settings")
        optimizer.load_state_dict(state["optimizer"])
        for group in optimizer.param_groups:  # a resume may lower snn.lr (after a NaN)
            group["lr"] = s.lr
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start, elapsed, n_avg = state["epoch"] + 1, state["elapsed"], state["n_avg"]

    def replicas() -> dict:  # what must be identical on every data-parallel rank
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "start": start, "n_avg": n_avg}

    dist.check_replicas("snn-supernet", replicas(), "the start")
    log = None
    if dist.is_main:
        log = CsvLog(out / "supernet_log.csv", resume_after=start - 1 if resume else None,
                     tensorboard=True)

    length = model.num_tbd
    epochs = supernet_epochs(cfg)
    bar = tqdm(total=(epochs - start) * dist.steps(train_batches), desc="snn supernet",
               unit="step", disable=not cfg.run.progress or not dist.is_main)
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        rng = path_sampler(s.blocks, length, cfg.run.seed, epoch)
        paths = [sample_path(rng, s.blocks, length) for _ in range(len(train_batches))]
        watch = LossWatch(device)
        train = train_epoch(model, train_batches, optimizer, epoch,
                            forward=lambda x, step, paths=paths: model(x, paths[step]),
                            loss_kind=s.loss, dtype=dtype, scaler=scaler,
                            count=None if s.neuron == "relu" else s.convention,
                            timesteps=spec["timesteps"],
                            on_step=bar.update, dist=dist, watch=watch)
        nan_guard = dict(epoch=epoch, run=out, checkpoint=ckpt_path, resume=lower_lr_hint(
            f"nasforge snn supernet --resume {out}", "snn.lr", s.lr))
        check_finite(train.loss, watch=watch, module=model,  # nothing of this epoch is saved
                     **nan_guard)
        # Validation: one uniformly drawn path per batch, i.e. a random architecture's accuracy.
        vrng = path_sampler(s.blocks, length, cfg.run.seed + 1, epoch)
        vpaths = [sample_path(vrng, s.blocks, length) for _ in range(len(val_batches))]
        dist.average_buffers(model)  # BN running statistics
        val = evaluate_rates(model, val_batches, loss_kind=s.loss, dtype=dtype,
                             forward=lambda x, step, vpaths=vpaths: model(x, vpaths[step]),
                             dist=dist)
        check_finite(val.loss, what="validation loss", **nan_guard)
        elapsed += time.perf_counter() - t0
        n_avg = train.spikes
        bar.set_postfix(epoch=epoch, loss=f"{train.loss:.4f}", val_acc=f"{val.acc:.1f}")
        dist.check_replicas("snn-supernet", replicas(), f"epoch {epoch}")
        row = {"epoch": epoch, "train_loss": train.loss, "train_acc": train.acc,
               "val_loss": val.loss, "val_acc": val.acc, "spikes": train.spikes,
               "seconds": elapsed}
        state = {"kind": KIND, "spec": spec, "epoch": epoch, "epochs": epochs,
                 "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "n_avg": n_avg, "convention": s.convention, "elapsed": elapsed,
                 "scaler": None if scaler is None else scaler.state_dict()}
        dist.main_only(partial(record_epoch, log, row, state, ckpt_path))
    bar.close()
    return dist.main_only(lambda: _finish(out, data, spec, epochs, train_idx, val_idx, model))


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
