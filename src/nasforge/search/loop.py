"""The search loop shared by every differentiable strategy.

Per step: an architecture step on a batch of the architecture half, then a weight step on a
batch of the weight half (DARTS order). Per epoch: evaluate the super-network on the
architecture half, derive the current genotype, append the strengths, write a checkpoint.
Batches depend only on (seed, epoch), so a resumed run replays exactly what an uninterrupted
run would have seen.

:func:`run_search` is a :class:`~nasforge.skeleton.Stage` (:class:`SearchStage`): its constructor
prepares, :meth:`SearchStage.epoch` runs one epoch, :meth:`SearchStage.finish` writes the
results; resume, logs, NaN guard and checkpoints are :func:`nasforge.skeleton.run_stage`'s.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nasforge.benchmarks.nasbench101 import NasBench101Table
from nasforge.checkpoint import (
    atomic_write_json,
    atomic_write_text,
    has_checkpoint,
    kill_point,
    load_checkpoint,
    load_weights,
)
from nasforge.config import Config, SearchConfig
from nasforge.data import (
    Augment,
    Batches,
    Dataset,
    FolderBatches,
    load_dataset,
    make_batches,
    read_index_file,
    split_weight_arch,
)
from nasforge.derive import derive, rule_options
from nasforge.distributed import Dist, StepSync, setup, start_run
from nasforge.errors import NasforgeError
from nasforge.runtime import (
    LossWatch,
    autocast,
    compile_module,
    load_run_config,
    lower_lr_hint,
    read_csv,
    resume_config,
    seed_everything,
    use_channels_last,
    write_results,
)
from nasforge.search.base import STRATEGIES, EpochEnd, StepContext
from nasforge.search.oneshot import ONESHOT_STRATEGIES
from nasforge.skeleton import CHECKPOINT, Epoch, EpochRun, Stage, run_stage
from nasforge.spaces.darts.genotype import format_genotype
from nasforge.spaces.darts.search_network import SearchNetwork
from nasforge.spaces.darts.spaces import SPACES
from nasforge.spaces.nb101.network import OneShotNetwork
from nasforge.spaces.nb101.space import ONESHOT_SPACES, OneShotSpace


def cosine_lr(epoch: int, epochs: int, lr_max: float, lr_min: float) -> float:
    """DARTS's per-epoch cosine schedule: lr_max at epoch 0, towards lr_min at the end."""
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * epoch / epochs))


def training_indices(cfg: Config, num_train: int) -> torch.Tensor:
    """The proxy subset when one is given, else the whole training split."""
    if cfg.data.proxy:
        return read_index_file(cfg.data.proxy, num_train)
    return torch.arange(num_train)


@torch.no_grad()
def evaluate(forward, batches: Batches | FolderBatches, dtype, dist: Dist | None = None
             ) -> tuple[float, float]:
    """Mean loss and accuracy (%) of ``forward(x) -> logits`` over ``batches``; with a
    data-parallel ``dist`` each rank evaluates its part of every batch."""
    dist = dist or Dist()
    total_loss = torch.zeros((), device=batches.device)
    correct = torch.zeros((), device=batches.device)
    n = 0
    for x, y in dist.shard_epoch(batches, 0, train=False):
        with autocast(x.device, dtype):
            logits = forward(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
    total_loss, correct = dist.sum_([total_loss, correct.double()])
    (n,) = dist.sum_counts(n)
    return float(total_loss) / max(n, 1), 100.0 * float(correct) / max(n, 1)


def masked(strengths: dict[str, torch.Tensor], mask: dict[str, torch.Tensor] | None
           ) -> dict[str, torch.Tensor]:
    """Strengths with the ops an edge does not hold (S1) set to 0, so no rule picks them."""
    if mask is None:
        return strengths
    return {k: v * mask[k].to(v.dtype) for k, v in strengths.items()}


def resize(batch: tuple, size: int) -> tuple:
    """Bilinear resize of a batch's images (EcoNAS's reduced-resolution proxy)."""
    x = batch[0]
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x, *batch[1:])


def build_search(s: SearchConfig, strategy_cls: type, *, num_classes: int, in_channels: int,
                 image_size: int, device: torch.device, channels_last: bool = False,
                 compile: str = "off", oneshot: OneShotSpace | None = None,
                 make_network: Callable[..., nn.Module] | None = None) -> tuple:
    """``(s, network, strategy, w_opt, a_opt)``: the strategy's prepared settings, the
    super-network (a DARTS-space ``SearchNetwork``, or a ``OneShotNetwork`` for ``oneshot``),
    the strategy and both optimisers, as every search builds them (``nasforge bench step``
    too). ``make_network(C, num_classes, layers, nodes, in_channels)``, when given, builds
    another super-network with the same forward interface (benchmarks compare with it)."""
    s = strategy_cls.prepare(s, image_size)
    if make_network is not None:
        network = make_network(s.channels, num_classes, s.layers, s.nodes, in_channels)
    elif oneshot is None:
        space = SPACES.get(s.space)
        network = SearchNetwork(s.channels, num_classes, s.layers, s.nodes,
                                in_channels=in_channels, primitives=space.primitives,
                                op_mask=space.op_mask(s.nodes),
                                stem="imagenet" if image_size >= 128 else "cifar",
                                mixed_op=s.mixed_op)
    else:
        network = OneShotNetwork(oneshot, s.channels, num_classes, s.layers,
                                 in_channels=in_channels)
    network = network.to(device)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    compile_module(network, compile)
    strategy = strategy_cls(network, s).to(device)
    w_opt = torch.optim.SGD(network.parameters(), lr=s.w_lr, momentum=s.w_momentum,
                            weight_decay=s.w_weight_decay)
    return s, network, strategy, w_opt, strategy.make_arch_optimizer()


def check_training_subset(cfg: Config, num_train: int, *, resume: bool) -> None:
    """Refuse a bad proxy index file or proxy request before any run directory is made."""
    if cfg.data.proxy:
        training_indices(cfg, num_train)
    elif not resume and cfg.proxy.method:
        from nasforge.proxy.build import check_proxy_request

        check_proxy_request(cfg, num_train)


def select_proxy(cfg: Config, data: Dataset, out: Path, dist: Dist, *, resume: bool) -> None:
    """The proxy stage of a search (``proxy.method`` without ``data.proxy``): select the
    subset into the run directory and point ``cfg.data.proxy`` (and the saved config) at it.

    Also on resume, since a run may have been killed in this stage; afterwards the random
    state is re-seeded, so the search starts from the same state whether the proxy stage
    ran in this process or in an earlier, killed one."""
    if not cfg.proxy.method or cfg.data.proxy:
        return
    from nasforge.config import save_config
    from nasforge.proxy.build import build_proxy

    proxy_path, proxy_record = build_proxy(cfg, data, out, resume=resume)
    cfg.data.proxy = str(proxy_path.resolve())
    dist.main_only(lambda: (atomic_write_json(out / "proxy.json", proxy_record),
                            save_config(cfg, out / "config.yaml")))
    kill_point("proxy-built")  # test hook: NASFORGE_TEST_KILL_AT (checkpoint.py)
    seed_everything(cfg.run.seed, cfg.run.deterministic)


def run_search(cfg: Config, out: str | Path, *, resume: bool = False,
               force: bool = False) -> dict:
    """Run (or continue) a search; returns the results written to ``results.json``."""
    out = Path(out)
    s = cfg.search
    # Checked before any work: a missing search.k must not surface after the whole search.
    oneshot = check_space(s.space)
    derive_options: dict = {}
    if oneshot is None:
        derive_options = rule_options(s, primitives=SPACES.get(s.space).primitives,
                                      nodes=s.nodes)
    elif s.rule != "argmax":
        raise NasforgeError(f"{s.space} architectures are derived by NAS-Bench-1shot1's "
                            f"discretisation; search.rule must be argmax, got {s.rule}")
    strategy_cls = (STRATEGIES if oneshot is None else ONESHOT_STRATEGIES).get(s.algo)
    standalone = getattr(strategy_cls, "run_standalone", None)
    if standalone is not None:  # no super-network: random search (search/random_search.py)
        return standalone(cfg, out, resume=resume, force=force)
    stage = SearchStage(cfg, out, strategy_cls, oneshot, derive_options, resume=resume,
                        force=force)
    s = stage.s
    return run_stage(stage, dist=stage.dist, run_dir=out, epochs=s.epochs, steps=stage.steps,
                     resume=resume, progress=cfg.run.progress, resume_hint=lower_lr_hint(
                         f"nasforge search --resume {out}", "search.w_lr", s.w_lr))


class SearchStage(Stage):
    """A super-network search as a :class:`~nasforge.skeleton.Stage`: the constructor prepares
    (data, halves, super-network, strategy, optimisers), :meth:`epoch` runs one epoch of
    architecture and weight steps, :meth:`finish` writes the final strengths and results."""

    kind = "search"
    log_name = "search_log.csv"
    save_rng = True

    def __init__(self, cfg: Config, out: Path, strategy_cls: type,
                 oneshot: OneShotSpace | None, derive_options: dict, *, resume: bool,
                 force: bool) -> None:
        s = cfg.search
        self.out, self.oneshot, self.derive_options = out, oneshot, derive_options
        strategy_cls.validate(s)  # e.g. search.order=second for a first-order-only algorithm
        self.nb101 = NasBench101Table.load(s.nb101_table) if oneshot and s.nb101_table else None
        # So are the data set, the proxy index file and a proxy request: a bad one must leave
        # no run directory behind.
        data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
        check_training_subset(cfg, len(data.train), resume=resume)
        # data-parallel under torchrun: docs/distributed.md
        dist, dtype = start_run(cfg, out, fresh=not resume, force=force)
        self.dist, self.dtype = dist, dtype
        device = self.device = dist.device
        select_proxy(cfg, data, out, dist, resume=resume)
        indices = training_indices(cfg, len(data.train))
        if len(indices) < 2:
            raise NasforgeError(f"the search needs at least 2 training examples; got "
                                f"{len(indices)}")
        self.train_examples = len(indices)
        w_idx, a_idx = split_weight_arch(indices, cfg.run.seed)
        augment = Augment(crop_pad=s.crop_pad, flip=s.flip)
        common = dict(mean=data.mean, std=data.std, device=device, augment=augment,
                      channels_last=use_channels_last(cfg.run.channels_last, device))
        self.w_batches = make_batches(data.train, s.batch_size, indices=w_idx,
                                      seed=cfg.run.seed, **common)
        self.a_batches = make_batches(data.train, s.batch_size, indices=a_idx,
                                      seed=cfg.run.seed + 1, **common)
        self.a_eval = make_batches(data.train, max(s.batch_size, 256), indices=a_idx,
                                   shuffle=False, **{**common, "augment": None})

        @functools.cache
        def score_batches():  # ENAS's candidate scoring (1shot1): built only when asked for
            return make_batches(data.train, s.batch_size, indices=a_idx, shuffle=False,
                                **{**common, "augment": None})

        self.score_batches = score_batches
        s, self.network, self.strategy, self.w_opt, self.a_opt = build_search(
            s, strategy_cls, num_classes=data.num_classes, in_channels=data.channels,
            image_size=data.size, device=device, channels_last=common["channels_last"],
            compile=cfg.run.compile, oneshot=oneshot)
        cfg.search = self.s = s
        self.a_sync = StepSync(dist, self.a_opt)  # averages the arch gradients across ranks
        self.scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        self.seen = 0
        self.history = out / "strengths.jsonl"
        self.steps = min(dist.steps(self.w_batches), dist.steps(self.a_batches))
        self.desc = f"search {s.algo}"

    def restore(self, state: dict, path: Path) -> None:
        s = self.s
        if state.get("kind") != "search" or state.get("algo") != s.algo:
            raise NasforgeError(f"{path} is not a checkpoint of a '{s.algo}' search")
        load_weights(self.network, state["network"], path,
                     "search.channels, search.layers, search.nodes and search.space")
        self.strategy.load_state_dict(state["strategy"])
        self.w_opt.load_state_dict(state["w_opt"])
        self.a_opt.load_state_dict(state["a_opt"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.seen = state["seen"]

    def replicas(self, start: int) -> dict:  # what must be identical on every rank
        return {"network": self.network.state_dict(), "strategy": self.strategy.state_dict(),
                "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
                "rng": torch.get_rng_state(), "start_epoch": start}

    def open_files(self, start: int, resume: bool) -> None:
        if resume:
            _truncate_history(self.history, start)
        elif self.history.exists():
            self.history.unlink()

    def autocast(self):
        return autocast(self.device, self.dtype)

    def epoch(self, epoch: int, run: EpochRun) -> Epoch:
        s, dist, device, network, strategy = (self.s, self.dist, self.device, self.network,
                                              self.strategy)
        w_opt, a_opt, scaler = self.w_opt, self.a_opt, self.scaler
        lr = cosine_lr(epoch, s.epochs, s.w_lr, s.w_lr_min)
        for group in w_opt.param_groups:
            group["lr"] = lr
        strategy.start_epoch(epoch, s.epochs)
        ctx = StepContext(w_optimizer=w_opt, w_lr=lr, autocast=self.autocast)
        network.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        n = 0
        n_a = 0
        watch = LossWatch(device)
        for batch_w, batch_a in zip(dist.shard_epoch(self.w_batches, epoch),
                                    dist.shard_epoch(self.a_batches, epoch), strict=False):
            if s.resolution is not None:
                batch_w, batch_a = resize(batch_w, s.resolution), resize(batch_a, s.resolution)
            if epoch >= s.warmup_epochs:
                self.a_sync.weight = len(batch_a[1])
                strategy.arch_step(network, batch_w, batch_a, a_opt, ctx)
            x, y = batch_w
            weights = strategy.weight_step_weights(network, batch_w, ctx)
            w_opt.zero_grad(set_to_none=True)
            with self.autocast():
                logits = network(x, weights)
                loss = F.cross_entropy(logits.float(), y)
            watch.update(loss)
            scaler.scale(loss).backward()
            dist.average_grads(network.parameters(), len(y))
            if s.grad_clip > 0:
                scaler.unscale_(w_opt)
                torch.nn.utils.clip_grad_norm_(network.parameters(), s.grad_clip)
            scaler.step(w_opt)
            scaler.update()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
            n_a += len(batch_a[1])
            run.tick()
        loss_sum, correct = dist.sum_([loss_sum, correct.double()])
        n, n_a = (int(v) for v in dist.sum_counts(n, n_a))
        self.seen += n + n_a
        run.check(loss_sum, watch=watch, module=network)  # nothing of this epoch is saved
        dist.average_buffers(network)  # BN running statistics
        a_eval, dtype = self.a_eval, self.dtype
        strategy.end_epoch(EpochEnd(
            epoch=epoch, network=network, optimizer=a_opt, ctx=ctx,
            arch_batches=_passes(dist, self.a_batches, epoch, s.epochs),
            score_batches=lambda: _passes(dist, self.score_batches(), 0, 1, train=False),
            evaluate=lambda w: evaluate(lambda inp: network(inp, w), a_eval, dtype, dist)[1]))
        network.eval()
        val_loss, val_acc = evaluate(
            lambda x: network(x if s.resolution is None else resize((x,), s.resolution)[0],
                              strategy.eval_weights()), a_eval, dtype, dist)
        run.check(val_loss, what="validation loss")
        strengths = masked(strategy.strengths(), network.op_mask)
        bench_metrics: dict[str, float] = {}
        if self.oneshot is not None:
            genotype_text, bench_metrics = describe_oneshot(self.oneshot, strengths,
                                                            self.nb101)
        else:
            try:
                genotype_text = format_genotype(derive(
                    s.rule, strengths, primitives=network.primitives, nodes=s.nodes,
                    **self.derive_options))
            except NasforgeError as err:  # e.g. top-k leaves a cell empty: keep strengths
                genotype_text = f"# no genotype: {err}"
        train_loss, train_acc = float(loss_sum) / n, 100.0 * float(correct) / n
        line = json.dumps({"epoch": epoch, "genotype": genotype_text,
                           **{k: v.tolist() for k, v in strengths.items()}}) + "\n"
        return Epoch(
            row={"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                 "val_loss": val_loss, "val_acc": val_acc, **bench_metrics},
            postfix=dict(epoch=epoch, loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.1f}"),
            append=(self.history, line))

    def checkpoint(self, epoch: int) -> dict:
        return {"algo": self.s.algo, "network": self.network.state_dict(),
                "strategy": self.strategy.state_dict(), "w_opt": self.w_opt.state_dict(),
                "a_opt": self.a_opt.state_dict(), "scaler": self.scaler.state_dict(),
                "seen": self.seen, "primitives": list(self.network.primitives),
                "train_examples": self.train_examples}

    def finish(self, elapsed: float) -> dict:
        return self.dist.main_only(lambda: finish_search(self.out))


def _passes(dist: Dist, batches, epoch: int, epochs: int, *, train: bool = True):
    """Endless batches: epoch ``epoch``'s order, then orders ``epoch + r·epochs`` (r ≥ 1),
    which no epoch of the loop uses; depends only on (seed, epoch), as a resume needs."""
    for r in itertools.count():
        yield from dist.shard_epoch(batches, epoch + r * epochs, train=train)


def check_space(name: str) -> OneShotSpace | None:
    """None for a DARTS cell space, the space for a NAS-Bench-1shot1 one; else an error."""
    if name in ONESHOT_SPACES:
        return ONESHOT_SPACES.get(name)
    if name not in SPACES:
        raise NasforgeError(f"unknown search space '{name}'; choose from: "
                            f"{', '.join(SPACES.names() + ONESHOT_SPACES.names())}")
    return None


def describe_oneshot(space: OneShotSpace, strengths: dict[str, torch.Tensor],
                     table: NasBench101Table | None) -> tuple[str, dict[str, float]]:
    """The discretised cell as text and, with a NAS-Bench-101 table, its tabulated test
    error (mean of the repeats, 108 epochs) and regret against the space's best."""
    arch = space.discretize(strengths)
    if table is None:
        return space.format(arch), {}
    info = table.query(*space.to_spec(arch))
    error = 1.0 - info["test_accuracy"]
    return space.format(arch), {"nb101_test_error": error,
                                "nb101_regret": error - space.test_min_error}


def _truncate_history(path: Path, start_epoch: int) -> None:
    """Keep the records of the epochs before ``start_epoch`` (and drop a line cut short by
    a kill)."""
    if not path.exists():
        return

    def epoch_of(line: str) -> int | None:
        try:
            return int(json.loads(line)["epoch"])
        except (ValueError, KeyError, TypeError):
            return None

    lines = [ln for ln in path.read_text().splitlines()
             if (e := epoch_of(ln)) is not None and e < start_epoch]
    atomic_write_text(path, "".join(ln + "\n" for ln in lines))


def finish_search(run_dir: Path) -> dict:
    """Write the final strengths, genotype and results from the last epoch's record."""
    cfg = load_run_config(run_dir)
    lines = (run_dir / "strengths.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    strengths = {k: v for k, v in last.items() if k not in ("epoch", "genotype")}
    state = load_checkpoint(run_dir / CHECKPOINT)
    atomic_write_json(run_dir / "strengths.json", {
        "algo": cfg.search.algo, "primitives": state["primitives"], "nodes": cfg.search.nodes,
        "epoch": last["epoch"], **strengths,
    })
    atomic_write_text(run_dir / "genotype.txt", last["genotype"] + "\n")
    final = read_csv(run_dir / "search_log.csv")[-1]
    results = {
        "stage": "search", "algo": cfg.search.algo, "space": cfg.search.space,
        "dataset": cfg.data.dataset,
        "genotype": last["genotype"], "rule": cfg.search.rule,
        "val_acc": float(final["val_acc"]), "val_loss": float(final["val_loss"]),
        **{k: float(final[k]) for k in ("nb101_test_error", "nb101_regret") if k in final},
        "cost": {"seconds": state["elapsed"], "epochs": int(final["epoch"]) + 1,
                 "examples_seen": state["seen"], "train_examples": state["train_examples"],
                 "proxy": cfg.data.proxy, "selection": read_selection(run_dir)},
    }
    write_results(run_dir, results)
    return results


def resume_search(run_dir: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> dict:
    """Continue a killed search from its last checkpoint with its saved config; ``overrides``
    may lower the learning rate (:func:`nasforge.runtime.resume_config`)."""
    run_dir = Path(run_dir)
    cfg = resume_config(run_dir, overrides)
    ckpt = run_dir / CHECKPOINT
    if has_checkpoint(ckpt) and load_checkpoint(ckpt)["epoch"] + 1 >= cfg.search.epochs:
        return setup(cfg.run.device).main_only(lambda: finish_search(run_dir))
    return run_search(cfg, run_dir, resume=True)


def read_selection(run_dir: Path) -> dict | None:
    """The proxy stage's record (``proxy.json``) when the run selected its own subset."""
    path = run_dir / "proxy.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def read_strengths(run_dir: str | Path) -> dict:
    """The final strengths of a search run (``strengths.json``) as tensors plus metadata."""
    path = Path(run_dir) / "strengths.json"
    if not path.is_file():
        raise NasforgeError(f"no strengths.json in {run_dir}; is it a finished search run?")
    data = json.loads(path.read_text())
    if "normal" not in data:
        raise NasforgeError(f"{run_dir} searched a NAS-Bench-1shot1 space; its architecture "
                            "is in genotype.txt (derivation rules apply to DARTS cells)")
    data["normal"], data["reduce"] = (torch.tensor(data[c]) for c in ("normal", "reduce"))
    return data


def derive_from_run(run_dir: str | Path, rule: str = "argmax", **options):
    """Apply derivation ``rule`` (with its options, e.g. ``k=14``) to a run's saved strengths.

    Any rule works on any run: a DARTS search's strengths can be derived by top-k too.
    """
    data = read_strengths(run_dir)
    strengths = {c: data[c] for c in ("normal", "reduce")}
    return derive(rule, strengths, primitives=tuple(data["primitives"]), nodes=data["nodes"],
                  **options)
