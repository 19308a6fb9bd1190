"""Retraining a found cell from scratch under the thesis's protocols (§3.4.1).

CIFAR protocol: SGD 0.025 with cosine annealing, momentum 0.9, wd 3e-4, auxiliary head
weight 0.4, drop-path 0.2 ramped linearly over the epochs, cutout 16, grad-norm clip 5.
ImageNet protocol: the same loop with label smoothing 0.1 and a linear decay after 5 warm-up
epochs (values in ``configs/train-imagenet.yaml``). The trained network is saved with its
genotype, so :func:`load_model` rebuilds it without the config.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from nasforge.checkpoint import (
    atomic_write_text,
    has_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from nasforge.config import Config
from nasforge.data import Augment, load_dataset, make_batches
from nasforge.describe import count_parameters
from nasforge.distributed import rank_seed, start_run
from nasforge.errors import NasforgeError
from nasforge.runtime import (
    CsvLog,
    LossWatch,
    autocast,
    check_finite,
    compile_module,
    load_run_config,
    lower_lr_hint,
    pick_device,
    record_epoch,
    resume_config,
    rng_state,
    set_rng_state,
    write_results,
)
from nasforge.search.loop import cosine_lr, evaluate
from nasforge.spaces.darts.eval_network import NetworkCIFAR, NetworkImageNet
from nasforge.spaces.darts.genotype import Genotype, format_genotype, parse_genotype

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"


def epoch_lr(cfg: Config, epoch: int) -> float:
    """Learning rate of ``epoch``: optional linear warm-up, then cosine or linear decay."""
    t = cfg.train
    if epoch < t.warmup_epochs:
        return t.lr * (epoch + 1) / t.warmup_epochs
    e, span = epoch - t.warmup_epochs, max(t.epochs - t.warmup_epochs, 1)
    if t.schedule == "linear":
        return t.lr_min + (t.lr - t.lr_min) * (1 - e / span)
    return cosine_lr(e, span, t.lr, t.lr_min)


def build_eval_network(genotype: Genotype, arch: dict) -> nn.Module:
    """The evaluation network described by ``arch`` (as saved with a trained model)."""
    cls = NetworkImageNet if arch["network"] == "imagenet" else NetworkCIFAR
    return cls(genotype, arch["channels"], arch["num_classes"], arch["layers"],
               auxiliary=arch["auxiliary"], in_channels=arch["in_channels"])


def run_train(cfg: Config, genotype: Genotype, out: str | Path, *, resume: bool = False,
              force: bool = False) -> dict:
    """Train ``genotype``'s evaluation network; returns the results in ``results.json``."""
    out = Path(out)
    t = cfg.train
    # Before the run directory exists, so a missing or corrupt data set leaves nothing behind.
    data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
    # data-parallel under torchrun: docs/distributed.md
    dist, dtype = start_run(cfg, out, fresh=not resume, force=force)
    if not resume:
        dist.main_only(lambda: atomic_write_text(out / "genotype.txt",
                                                 format_genotype(genotype) + "\n"))
    device = dist.device
    channels_last = cfg.run.channels_last and device.type == "cuda"
    common = dict(mean=data.mean, std=data.std, device=device, channels_last=channels_last)
    train_batches = make_batches(data.train, t.batch_size, seed=cfg.run.seed,
                            augment=Augment(t.crop_pad, t.flip, t.cutout), **common)
    eval_split = data.val if data.val is not None else data.test
    eval_batches = make_batches(eval_split, max(t.batch_size, 256), shuffle=False, **common)
    test_batches = make_batches(data.test, max(t.batch_size, 256), shuffle=False, **common)

    arch = {"network": t.protocol, "channels": t.channels, "num_classes": data.num_classes,
            "layers": t.layers, "auxiliary": t.auxiliary, "in_channels": data.channels}
    model = build_eval_network(genotype, arch).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    compile_module(model, cfg.run.compile)
    optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                                weight_decay=t.weight_decay)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    start_epoch, elapsed = 0, 0.0
    ckpt_path = out / CHECKPOINT
    if resume and has_checkpoint(ckpt_path):
        state = load_checkpoint(ckpt_path)
        if state.get("kind") != "train" or state.get("genotype") != format_genotype(genotype):
            raise NasforgeError(f"{ckpt_path} is not a checkpoint of this training run")
        load_weights(model, state["model"], ckpt_path,
                     "train.channels, train.layers and train.auxiliary")
        optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"], device)  # drop-path masks come from the global stream
        start_epoch, elapsed = state["epoch"] + 1, state["elapsed"]

    def replicas() -> dict:  # what must be identical on every data-parallel rank
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "start_epoch": start_epoch}

    dist.check_replicas("train", replicas(), "the start")
    log = None
    if dist.is_main:
        log = CsvLog(out / "train_log.csv", resume_after=start_epoch - 1 if resume else None,
                     tensorboard=True)

    bar = tqdm(total=(t.epochs - start_epoch) * dist.steps(train_batches), desc="train",
               disable=not cfg.run.progress or not dist.is_main, unit="step")
    for epoch in range(start_epoch, t.epochs):
        t0 = time.perf_counter()
        if dist.enabled:  # each rank draws its own drop-path masks, fixed by (seed, epoch)
            torch.manual_seed(rank_seed(cfg.run.seed, epoch, dist.rank))
        lr = epoch_lr(cfg, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.drop_path_prob = t.drop_path * epoch / t.epochs
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        n = 0
        watch = LossWatch(device)
        for x, y in dist.shard_epoch(train_batches, epoch):
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                logits, aux = model(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=t.label_smoothing)
                if aux is not None:
                    loss = loss + t.auxiliary_weight * F.cross_entropy(
                        aux.float(), y, label_smoothing=t.label_smoothing)
            watch.update(loss)
            scaler.scale(loss).backward()
            dist.average_grads(model.parameters(), len(y))
            if t.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
            bar.update(1)
        loss_sum, correct = dist.sum_([loss_sum, correct.double()])
        (n,) = dist.sum_counts(n)
        nan_guard = dict(epoch=epoch, run=out, checkpoint=ckpt_path, resume=lower_lr_hint(
            f"nasforge train --resume {out}", "train.lr", t.lr))
        check_finite(loss_sum, watch=watch, module=model,  # nothing of this epoch is saved
                     **nan_guard)
        dist.average_buffers(model)  # BN running statistics
        model.eval()
        val_loss, val_acc = evaluate(lambda x: model(x)[0], eval_batches, dtype, dist)
        check_finite(val_loss, what="validation loss", **nan_guard)
        elapsed += time.perf_counter() - t0
        train_loss, train_acc = float(loss_sum) / n, 100.0 * float(correct) / n
        bar.set_postfix(epoch=epoch, loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.1f}")
        dist.check_replicas("train", replicas(), f"epoch {epoch}")
        row = {"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
               "val_loss": val_loss, "val_acc": val_acc, "seconds": elapsed}
        state = {"kind": "train", "genotype": format_genotype(genotype), "epoch": epoch,
                 "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "rng": rng_state(device), "scaler": scaler.state_dict(), "elapsed": elapsed}
        dist.main_only(partial(record_epoch, log, row, state, ckpt_path))
    bar.close()
    model.eval()  # the weights in memory are those of the last checkpoint
    dist.main_only(lambda: save_checkpoint(
        {"kind": "model", "genotype": format_genotype(genotype), "arch": arch,
         "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, out / MODEL))
    test_loss, test_acc = evaluate(lambda x: model(x)[0], test_batches, dtype, dist)
    results = {
        "stage": "train", "dataset": cfg.data.dataset, "genotype": format_genotype(genotype),
        "params_m": count_parameters(model) / 1e6, "epochs": t.epochs,
        "test_acc": test_acc, "test_loss": test_loss, "seconds": elapsed,
    }
    dist.main_only(lambda: write_results(out, results))
    return results


def resume_train(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Continue a killed training run from its last checkpoint; ``overrides`` may lower
    the learning rate (:func:`nasforge.runtime.resume_config`)."""
    run_dir = Path(run_dir)
    cfg = resume_config(run_dir, overrides)
    genotype = parse_genotype((run_dir / "genotype.txt").read_text())
    return run_train(cfg, genotype, run_dir, resume=True)


def load_model(run_dir: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """The trained network of a ``train`` run directory, in eval mode."""
    path = Path(run_dir) / MODEL
    if not path.exists():
        raise NasforgeError(f"no trained model in {run_dir} (expected {path})")
    state = load_checkpoint(path)
    model = build_eval_network(parse_genotype(state["genotype"]), state["arch"])
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()


def evaluate_run(run_dir: str | Path, *, split: str = "test", device: str = "auto") -> dict:
    """Re-measure a trained model's loss and accuracy on a split of its data set."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    dev = pick_device(device)
    model = load_model(run_dir, device=dev)
    data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
    chosen = getattr(data, split, None)
    if chosen is None:
        raise NasforgeError(f"{cfg.data.dataset} has no '{split}' split; use train, val or test")
    batches = make_batches(chosen, 256, mean=data.mean, std=data.std, device=dev, shuffle=False)
    loss, acc = evaluate(lambda x: model(x)[0], batches, None)
    return {"run": str(run_dir), "split": split, "loss": loss, "acc": acc,
            "examples": len(chosen)}


__all__ = ["evaluate_run", "load_model", "resume_train", "run_train"]
