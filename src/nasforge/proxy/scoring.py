"""``nasforge entropy``: train an auxiliary model and score every training example (§3.2).

Supervised mode follows the authors' recipe (He et al.'s CIFAR schedule): SGD with lr 0.1,
momentum 0.9, weight decay 1e-4, lr ÷ 10 at each milestone, batch 128, pad-crop and flip, on
the whole training split. SimCLR mode (§3.5.4) pretrains the backbone without labels, then fits
a linear classifier on its frozen features. Either way, forgetting events are counted while the
classifier learns, and afterwards the training split is scored in dataset order without
augmentation: entropy list at ``out``, everything else in the run directory ``out.run``.

Every epoch ends with an atomic checkpoint that includes the forgetting state; batches depend
only on (seed, epoch), so ``resume=True`` reproduces an uninterrupted run exactly on CPU.

Under torchrun (supervised mode or a given checkpoint) the auxiliary model trains
data-parallel: each rank trains on its part of every batch, and every rank updates the
forgetting counter with the whole batch's hits; scoring splits the training split into one
contiguous part per rank and gathers the results in dataset order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from nasforge.checkpoint import load_weights, save_checkpoint
from nasforge.config import Config
from nasforge.data import Augment, Batches, Split, load_dataset
from nasforge.data.batching import epoch_seed, normalisation
from nasforge.distributed import Dist, launched, start_run
from nasforge.errors import NasforgeError
from nasforge.proxy.entropy import (
    ForgettingCounter,
    entropy_from_logits,
    save_features,
    write_entropy_list,
    write_forgetting,
)
from nasforge.proxy.models import AUX_MODELS, CifarResNet
from nasforge.proxy.simclr import ProjectionHead, simclr_epoch
from nasforge.runtime import (
    LossWatch,
    autocast,
    lower_lr_hint,
    resume_config,
    use_channels_last,
    write_results,
)
from nasforge.skeleton import Epoch, EpochRun, Stage, run_stage

__all__ = [
    "IndexedBatches",
    "load_aux_weights",
    "resume_entropy",
    "run_dir_for",
    "score_entropy",
    "score_examples",
    "step_lr",
]

MODEL = "model.pt"
FORGETTING = "forgetting.tsv"
FEATURES = "features.npy"


def run_dir_for(out: str | Path) -> Path:
    """The side-file directory of entropy list ``out``: ``out.parent / (out.name + '.run')``."""
    out = Path(out)
    return out.parent / (out.name + ".run")


def step_lr(lr: float, epoch: int, milestones: Sequence[int]) -> float:
    """He et al.'s schedule: ``lr`` divided by 10 at each milestone epoch reached."""
    return lr * 0.1 ** sum(epoch >= m for m in milestones)


class IndexedBatches:
    """Shuffled, augmented training batches that also say which examples they hold.

    Forgetting events need each example's dataset index, which :class:`Batches` does not
    return. The epoch's permutation and augmentation come from one device generator seeded by
    ``(seed, epoch)`` alone, as in :class:`Batches`.
    """

    def __init__(self, split: Split, batch_size: int, *, mean: Sequence[float],
                 std: Sequence[float], device: torch.device, seed: int, augment: Augment,
                 channels_last: bool = False) -> None:
        self.device = device
        self.x = split.x.to(device)
        self.y = split.y.to(device)
        scale, self._shift = normalisation(batch_size, mean, std, int(split.x.shape[1]), device)
        self._scale = scale * 255.0  # inputs here are floats in [0, 1]
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.channels_last = channels_last

    def __len__(self) -> int:
        return -(-int(self.y.shape[0]) // self.batch_size)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] → normalised, in the model's memory format."""
        x = x * self._scale - self._shift
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def raw(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                torch.Generator]]:
        """``(indices, uint8 images, labels, generator)`` in the epoch's shuffled order."""
        generator = torch.Generator(device=self.device)
        generator.manual_seed(epoch_seed(self.seed, epoch))
        order = torch.randperm(int(self.y.shape[0]), generator=generator, device=self.device)
        for start in range(0, int(order.shape[0]), self.batch_size):
            take = order[start : start + self.batch_size]
            yield take, self.x[take], self.y[take], generator

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(indices, normalised augmented images, labels)``, shuffled."""
        for take, x, y, generator in self.raw(epoch):
            x = self.augment.raw(x, generator).float() / 255.0
            yield take, self.normalise(x), y


@dataclass(frozen=True)
class Phase:
    """A stretch of epochs with one objective: supervised, simclr or linear."""

    name: str
    start: int
    epochs: int


def plan_phases(cfg: Config) -> list[Phase]:
    e = cfg.entropy
    if e.pretrain == "simclr":
        return [Phase("simclr", 0, e.simclr_epochs),
                Phase("linear", e.simclr_epochs, e.linear_epochs)]
    return [Phase("supervised", 0, e.epochs)]


def phase_lr(cfg: Config, phase: Phase, k: int) -> float:
    """Step schedule for classifiers (milestones scaled to a linear phase), cosine for SimCLR."""
    e = cfg.entropy
    if phase.name == "simclr":
        return e.lr * 0.5 * (1 + math.cos(math.pi * k / phase.epochs))
    if phase.name == "linear":
        return step_lr(e.lr, k, [round(m * phase.epochs / e.epochs) for m in e.milestones])
    return step_lr(e.lr, k, e.milestones)


def _sgd(params, cfg: Config) -> torch.optim.SGD:
    e = cfg.entropy
    return torch.optim.SGD(list(params), lr=e.lr, momentum=e.momentum,
                           weight_decay=e.weight_decay)


def _classifier_epoch(model: CifarResNet, optimizer: torch.optim.Optimizer,
                      batches: Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                      counter: ForgettingCounter, *, frozen: bool, amp: Callable,
                      scaler: torch.amp.GradScaler, on_step: Callable[[], None],
                      dist: Dist | None = None, watch: LossWatch | None = None):
    """One epoch of cross-entropy training; frozen = only ``fc`` learns on eval-mode features.

    Training-mode predictions of each batch feed the forgetting counter (data-parallel: the
    hits of every rank's part, so all counters stay equal). Sums are this rank's.
    """
    dist = dist or Dist()
    model.train(not frozen)
    loss_sum = correct = None
    n = 0
    for idx, x, y in batches:
        if dist.enabled:
            if len(idx) < dist.world:
                continue
            x, y = dist.shard((x, y))
        optimizer.zero_grad(set_to_none=True)
        with amp():
            if frozen:
                with torch.no_grad():
                    h = model.features(x)
                logits = model.fc(h)
            else:
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        if watch is not None:  # where a NaN appeared, without a host sync
            watch.update(loss)
        scaler.scale(loss).backward()
        dist.average_grads(model.parameters(), len(y))
        scaler.step(optimizer)
        scaler.update()
        hit = logits.detach().argmax(1) == y
        if dist.enabled:
            start, end = dist.bounds(len(idx))
            everyone = torch.zeros(len(idx), device=hit.device)
            everyone[start:end] = hit.float()
            counter.update(idx, dist.sum_([everyone])[0] > 0.5)
        else:
            counter.update(idx, hit)
        part, hits = loss.detach() * y.shape[0], hit.sum()
        loss_sum = part if loss_sum is None else loss_sum + part
        correct = hits if correct is None else correct + hits
        n += int(y.shape[0])
        on_step()
    return loss_sum, correct, n


@torch.no_grad()
def score_examples(model: CifarResNet, batches: Batches, dtype: torch.dtype | None,
                   dist: Dist | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entropy (float64), features (float32) and predicted class of every example, in order.

    ``batches`` must be unshuffled and unaugmented (test-time transforms). Results stay on the
    device until the end, then move to the CPU once. Data-parallel, ``batches`` hold this
    rank's contiguous part (:func:`_in_order`) and the parts are gathered in rank order.
    """
    dist = dist or Dist()
    model.eval()
    entropies, features, predictions = [], [], []
    for x, _ in batches.epoch(0):
        with autocast(x.device, dtype):
            h = model.features(x)
            logits = model.fc(h)
        entropies.append(entropy_from_logits(logits.double()))
        features.append(h.float())
        predictions.append(logits.argmax(1))
    return tuple(dist.gather(torch.cat(part)).cpu()  # type: ignore[return-value]
                 for part in (entropies, features, predictions))


def _in_order(split: Split, dist: Dist, **common) -> Batches:
    """Unshuffled batches of ``split``, data-parallel only this rank's contiguous part."""
    start, end = dist.bounds(len(split))
    indices = None if not dist.enabled else torch.arange(start, end)
    return Batches(split, 512, shuffle=False, indices=indices, **common)


def _accuracy(model: CifarResNet, batches: Batches, dtype: torch.dtype | None,
              dist: Dist | None = None) -> float:
    """Accuracy (%) on ``batches`` (data-parallel: this rank's part, from :func:`_in_order`)."""
    dist = dist or Dist()
    model.eval()
    correct, n = None, 0
    with torch.no_grad():
        for x, y in batches.epoch(0):
            with autocast(x.device, dtype):
                logits = model.fc(model.features(x))
            hits = (logits.argmax(1) == y).sum()  # summed on the device, read once
            correct = hits if correct is None else correct + hits
            n += len(y)
    correct, n = dist.sum_counts(0.0 if correct is None else float(correct), n)
    return 100.0 * correct / max(n, 1)


def load_aux_weights(model: CifarResNet, path: str | Path, name: str) -> None:
    """Load a state_dict, a nasforge ``model.pt`` or an entropy ``checkpoint.pt`` into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise NasforgeError(f"checkpoint {path} not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged or foreign files raise many types
        raise NasforgeError(f"cannot read checkpoint {path} ({type(exc).__name__}); expected a "
                            "state_dict or a nasforge model.pt") from exc
    saved_name = obj.get("model") if isinstance(obj, dict) else None
    if isinstance(saved_name, str) and saved_name != name:
        raise NasforgeError(f"checkpoint {path} holds a {saved_name}, not a {name}; "
                            f"pass --model {saved_name}")
    state = obj
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), dict):
                state = obj[key]
                break
    if not isinstance(state, dict) or not state or \
            not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NasforgeError(f"checkpoint {path} holds no state_dict of tensors")
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise NasforgeError(f"checkpoint {path} does not fit {name} with "
                            f"{model.fc.out_features} classes: {detail}") from exc


def _results_note(checkpoint: str | None, pretrain: str) -> str:
    if checkpoint is not None:
        return f"scored with the given checkpoint {checkpoint}; no training, so no forgetting file"
    if pretrain == "simclr":
        return "SimCLR backbone, linear classifier; forgetting counted in the linear phase"
    return "supervised training; forgetting counted over all epochs"


def score_entropy(cfg: Config, out: str | Path, *, checkpoint: str | None = None,
                  force: bool = False, resume: bool = False) -> dict:
    """Train (or load) the auxiliary model and write the entropy list ``out``; returns results."""
    out = Path(out)
    run_dir = run_dir_for(out)
    e = cfg.entropy
    if e.pretrain == "simclr" and e.simclr_temperature <= 0:
        raise NasforgeError("entropy.simclr_temperature must be > 0 for SimCLR pretraining")
    if out.is_dir():
        raise NasforgeError(f"--out {out} is a directory; give the entropy list's file name, "
                            "e.g. runs/digits.tsv")
    if not resume and out.exists() and not force:
        raise NasforgeError(f"entropy list {out} already exists; pass --force to overwrite")
    if launched() and e.pretrain == "simclr" and checkpoint is None:
        raise NasforgeError("SimCLR pretraining runs in one process (its loss contrasts the "
                            "whole batch); start it without torchrun")
    # The model, the weights file and the data are checked before the run directory exists.
    build = AUX_MODELS.get(e.model)
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise NasforgeError(f"checkpoint {checkpoint} not found; give the weights of a "
                            f"trained {e.model}")
    data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
    if not isinstance(data.train, Split):
        raise NasforgeError(
            "entropy scoring trains CIFAR-style ResNets on in-memory data sets; "
            f"{cfg.data.dataset} is read from image folders: score it with a model trained "
            "elsewhere and pass its entropy list (index, entropy, label) as proxy.entropy=FILE")
    # data-parallel under torchrun: docs/distributed.md
    dist, dtype = start_run(cfg, run_dir, force=force,
                            fresh=not resume or not (run_dir / "config.yaml").is_file())
    device = dist.device
    channels_last = use_channels_last(cfg.run.channels_last, device)
    model = build(data.num_classes, data.channels).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    common = dict(mean=data.mean, std=data.std, device=device, channels_last=channels_last)
    in_order = _in_order(data.train, dist, **common)
    test = _in_order(data.test, dist, **common)

    elapsed, trained = 0.0, checkpoint is None
    counter = ForgettingCounter(len(data.train), device)
    if checkpoint is not None:
        load_aux_weights(model, checkpoint, e.model)
    else:
        elapsed = _train(cfg, model, counter, data, run_dir, dtype, common, resume=resume,
                         dist=dist)
        dist.main_only(lambda: (save_checkpoint(
            {"kind": "aux_model", "model": e.model, "pretrain": e.pretrain,
             "num_classes": data.num_classes, "in_channels": data.channels,
             "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}},
            run_dir / MODEL), write_forgetting(run_dir / FORGETTING, counter.counts())))

    t0 = time.perf_counter()
    entropy, features, predicted = score_examples(model, in_order, dtype, dist)
    dist.main_only(lambda: (write_entropy_list(out, entropy, data.train.y),
                            save_features(run_dir / FEATURES, features)))
    train_acc = 100.0 * float((predicted == data.train.y).double().mean())
    test_acc = _accuracy(model, test, dtype, dist)
    phases = plan_phases(cfg)
    results = {
        "stage": "entropy", "dataset": cfg.data.dataset, "model": e.model,
        "pretrain": e.pretrain if trained else None, "trained": trained,
        "checkpoint": None if checkpoint is None else str(checkpoint),
        "epochs": {p.name: p.epochs for p in phases} if trained else {},
        "examples": len(data.train), "num_classes": data.num_classes,
        "train_acc": train_acc, "test_acc": test_acc,
        "mean_entropy": float(entropy.mean()), "max_entropy": float(entropy.max()),
        "log_num_classes": math.log(data.num_classes),
        "entropy_list": str(out), "forgetting": FORGETTING if trained else None,
        "features": FEATURES, "note": _results_note(checkpoint, e.pretrain),
        "seconds": elapsed + time.perf_counter() - t0,
    }
    dist.main_only(lambda: write_results(run_dir, results))
    return results


def _train(cfg: Config, model: CifarResNet, counter: ForgettingCounter, data, run_dir: Path,
           dtype: torch.dtype | None, common: dict, *, resume: bool,
           dist: Dist | None = None) -> float:
    """All training phases with a checkpoint per epoch; returns the training seconds."""
    e = cfg.entropy
    dist = dist or Dist()
    stage = EntropyStage(cfg, model, counter, data, dtype, common, dist=dist)
    out = run_dir.with_name(run_dir.name.removesuffix(".run"))  # the entropy list
    return run_stage(stage, dist=dist, run_dir=run_dir,
                     epochs=sum(p.epochs for p in stage.phases), steps=len(stage.batches),
                     resume=resume, progress=cfg.run.progress, resume_hint=lower_lr_hint(
                         f"nasforge entropy --out {out} --resume", "entropy.lr", e.lr))


class EntropyStage(Stage):
    """The auxiliary model's training as a :class:`~nasforge.skeleton.Stage`: the constructor
    builds the batches, optimisers (and SimCLR's head), :meth:`epoch` runs one epoch of the
    current phase and counts forgetting events, :meth:`finish` returns the seconds."""

    kind = "entropy"
    log_name = "train_log.csv"
    save_rng = True

    def __init__(self, cfg: Config, model: CifarResNet, counter: ForgettingCounter, data,
                 dtype: torch.dtype | None, common: dict, *, dist: Dist) -> None:
        e = cfg.entropy
        self.cfg, self.model, self.counter, self.dtype, self.dist = cfg, model, counter, dtype, dist
        device = self.device = common["device"]
        self.batches = IndexedBatches(data.train, e.batch_size, seed=cfg.run.seed,
                                      augment=Augment(crop_pad=e.crop_pad, flip=e.flip),
                                      **common)
        self.test = _in_order(data.test, dist, **common)
        self.phases = plan_phases(cfg)
        head = self.head = (ProjectionHead(model.feature_dim).to(device)
                            if e.pretrain == "simclr" else None)
        if head is not None:
            backbone = [p for n, p in model.named_parameters() if not n.startswith("fc.")]
            self.optimizers = {"simclr": _sgd([*backbone, *head.parameters()], cfg),
                               "linear": _sgd(model.fc.parameters(), cfg)}
        else:
            self.optimizers = {"supervised": _sgd(model.parameters(), cfg)}
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        self.desc = f"entropy {e.model}"

    def amp(self):
        return autocast(self.device, self.dtype)

    def restore(self, state: dict, path: Path) -> None:
        e = self.cfg.entropy
        if state.get("kind") != "entropy" or state.get("model_name") != e.model or \
                state.get("pretrain") != e.pretrain:
            raise NasforgeError(f"{path} is not a checkpoint of this {e.model} "
                                f"({e.pretrain}) entropy run")
        load_weights(self.model, state["model"], path, "entropy.model")
        if self.head is not None:
            self.head.load_state_dict(state["head"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.counter.load_state_dict(state["forgetting"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])

    def replicas(self, start: int) -> dict:  # what must be identical on every rank
        return {"model": self.model.state_dict(), "forgetting": self.counter.state_dict(),
                "optimizers": {key: o.state_dict() for key, o in self.optimizers.items()},
                "rng": torch.get_rng_state(), "start": start}

    def epoch(self, epoch: int, run: EpochRun) -> Epoch:
        cfg, e, model, dist, batches = self.cfg, self.cfg.entropy, self.model, self.dist, \
            self.batches
        phase = next(p for p in self.phases if p.start <= epoch < p.start + p.epochs)
        k = epoch - phase.start
        lr = phase_lr(cfg, phase, k)
        optimizer = self.optimizers[phase.name]
        for group in optimizer.param_groups:
            group["lr"] = lr
        watch = LossWatch(self.device)  # classifier phases only: SimCLR reports no step
        if phase.name == "simclr":
            model.train()
            self.head.train()
            loss_sum, n = simclr_epoch(
                model.features, self.head, optimizer,
                ((x, g) for _, x, _, g in batches.raw(epoch)), flip=e.flip,
                temperature=e.simclr_temperature, normalise=batches.normalise,
                autocast=self.amp, scaler=self.scaler, on_step=run.tick)
            train_acc = test_acc = ""
        else:
            loss_sum, correct, n = _classifier_epoch(
                model, optimizer, batches.epoch(epoch), self.counter,
                frozen=phase.name == "linear", amp=self.amp, scaler=self.scaler,
                on_step=run.tick, dist=dist, watch=watch)
            loss_sum, correct = dist.sum_([loss_sum, correct.double()])
            (n,) = (int(v) for v in dist.sum_counts(n))
            dist.average_buffers(model)  # BN running statistics
            train_acc = 100.0 * float(correct) / n
            test_acc = _accuracy(model, self.test, self.dtype, dist)
        run.check(loss_sum, watch=None if phase.name == "simclr" else watch,
                  module=model)  # nothing of it is saved
        loss = float(loss_sum) / n
        return Epoch(row={"epoch": epoch, "phase": phase.name, "phase_epoch": k, "lr": lr,
                          "loss": loss, "train_acc": train_acc, "test_acc": test_acc},
                     postfix=dict(phase=phase.name, epoch=k, loss=f"{loss:.3f}"))

    def checkpoint(self, epoch: int) -> dict:
        e = self.cfg.entropy
        return {"model_name": e.model, "pretrain": e.pretrain, "model": self.model.state_dict(),
                "head": None if self.head is None else self.head.state_dict(),
                "optimizers": {key: o.state_dict() for key, o in self.optimizers.items()},
                "forgetting": self.counter.state_dict(), "scaler": self.scaler.state_dict()}

    def finish(self, elapsed: float) -> float:
        self.model.eval()
        return elapsed


def resume_entropy(out: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Continue a killed ``score_entropy`` run with the config saved in its run directory;
    ``overrides`` may lower the learning rate (:func:`nasforge.runtime.resume_config`)."""
    cfg = resume_config(run_dir_for(out), overrides)
    return score_entropy(cfg, out, resume=True)
