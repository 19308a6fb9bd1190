"""Retraining a found cell from scratch under the thesis's protocols (§3.4.1).

CIFAR protocol: SGD 0.025 with cosine annealing, momentum 0.9, wd 3e-4, auxiliary head
weight 0.4, drop-path 0.2 ramped linearly over the epochs, cutout 16, grad-norm clip 5.
ImageNet protocol: the same loop with label smoothing 0.1 and a linear decay after 5 warm-up
epochs (values in config ``thesis/ch3/train-imagenet.yaml``). The trained network is saved with its
genotype, so :func:`load_model` rebuilds it without the config.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.checkpoint import (
    atomic_write_text,
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
    LossWatch,
    autocast,
    compile_module,
    load_run_config,
    lower_lr_hint,
    pick_device,
    resume_config,
    use_channels_last,
    write_results,
)
from nasforge.search.loop import cosine_lr, evaluate
from nasforge.skeleton import Epoch, EpochRun, Stage, run_stage
from nasforge.spaces.darts.eval_network import NetworkCIFAR, NetworkImageNet
from nasforge.spaces.darts.genotype import Genotype, format_genotype, parse_genotype

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
    stage = TrainStage(cfg, genotype, out, resume=resume, force=force)
    return run_stage(stage, dist=stage.dist, run_dir=out, epochs=t.epochs,
                     steps=stage.dist.steps(stage.train_batches), resume=resume,
                     progress=cfg.run.progress, resume_hint=lower_lr_hint(
                         f"nasforge train --resume {out}", "train.lr", t.lr))


class TrainStage(Stage):
    """Retraining as a :class:`~nasforge.skeleton.Stage`: the constructor prepares the data
    and the network, :meth:`epoch` trains one epoch and validates, :meth:`finish` saves the
    model and measures it on the test split."""

    kind = "train"
    log_name = "train_log.csv"
    desc = "train"
    save_rng = True  # drop-path masks come from the global stream

    def __init__(self, cfg: Config, genotype: Genotype, out: Path, *, resume: bool,
                 force: bool) -> None:
        t = cfg.train
        self.cfg, self.out, self.genotype = cfg, out, format_genotype(genotype)
        # Before the run directory exists, so a missing or corrupt data set leaves nothing
        # behind.
        data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
        # data-parallel under torchrun: docs/distributed.md
        dist, dtype = start_run(cfg, out, fresh=not resume, force=force)
        self.dist, self.dtype = dist, dtype
        if not resume:
            dist.main_only(lambda: atomic_write_text(out / "genotype.txt",
                                                     format_genotype(genotype) + "\n"))
        device = self.device = dist.device
        channels_last = use_channels_last(cfg.run.channels_last, device)
        common = dict(mean=data.mean, std=data.std, device=device, channels_last=channels_last)
        self.train_batches = make_batches(data.train, t.batch_size, seed=cfg.run.seed,
                                          augment=Augment(t.crop_pad, t.flip, t.cutout),
                                          **common)
        eval_split = data.val if data.val is not None else data.test
        self.eval_batches = make_batches(eval_split, max(t.batch_size, 256), shuffle=False,
                                         **common)
        self.test_batches = make_batches(data.test, max(t.batch_size, 256), shuffle=False,
                                         **common)

        self.arch = {"network": t.protocol, "channels": t.channels,
                     "num_classes": data.num_classes, "layers": t.layers,
                     "auxiliary": t.auxiliary, "in_channels": data.channels}
        model = self.model = build_eval_network(genotype, self.arch).to(device)
        if channels_last:
            model = self.model = model.to(memory_format=torch.channels_last)
        compile_module(model, cfg.run.compile)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum,
                                         weight_decay=t.weight_decay)
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)

    def restore(self, state: dict, path: Path) -> None:
        if state.get("kind") != "train" or state.get("genotype") != self.genotype:
            raise NasforgeError(f"{path} is not a checkpoint of this training run")
        load_weights(self.model, state["model"], path,
                     "train.channels, train.layers and train.auxiliary")
        self.optimizer.load_state_dict(state["optimizer"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])

    def replicas(self, start: int) -> dict:  # what must be identical on every rank
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "start_epoch": start}

    def epoch(self, epoch: int, run: EpochRun) -> Epoch:
        cfg, t, dist, device, dtype = self.cfg, self.cfg.train, self.dist, self.device, self.dtype
        model, optimizer, scaler = self.model, self.optimizer, self.scaler
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
        for x, y in dist.shard_epoch(self.train_batches, epoch):
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
            run.tick()
        loss_sum, correct = dist.sum_([loss_sum, correct.double()])
        (n,) = dist.sum_counts(n)
        run.check(loss_sum, watch=watch, module=model)  # nothing of this epoch is saved
        dist.average_buffers(model)  # BN running statistics
        model.eval()
        val_loss, val_acc = evaluate(lambda x: model(x)[0], self.eval_batches, dtype, dist)
        run.check(val_loss, what="validation loss")
        train_loss, train_acc = float(loss_sum) / n, 100.0 * float(correct) / n
        return Epoch(
            row={"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                 "val_loss": val_loss, "val_acc": val_acc},
            postfix=dict(epoch=epoch, loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.1f}"))

    def checkpoint(self, epoch: int) -> dict:
        return {"genotype": self.genotype, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def finish(self, elapsed: float) -> dict:
        cfg, out, model, dist = self.cfg, self.out, self.model, self.dist
        model.eval()  # the weights in memory are those of the last checkpoint
        dist.main_only(lambda: save_checkpoint(
            {"kind": "model", "genotype": self.genotype, "arch": self.arch,
             "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}}, out / MODEL))
        test_loss, test_acc = evaluate(lambda x: model(x)[0], self.test_batches, self.dtype,
                                       dist)
        results = {
            "stage": "train", "dataset": cfg.data.dataset, "genotype": self.genotype,
            "params_m": count_parameters(model) / 1e6, "epochs": cfg.train.epochs,
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
