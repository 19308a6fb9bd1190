"""The search loop shared by every differentiable strategy.

Per step: an architecture step on a batch of the architecture half, then a weight step on a
batch of the weight half (DARTS order). Per epoch: evaluate the super-network on the
architecture half, derive the current genotype, append the strengths, write a checkpoint.
Batches depend only on (seed, epoch), so a resumed run replays exactly what an uninterrupted
run would have seen.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nasforge.checkpoint import (
    atomic_write_json,
    atomic_write_text,
    has_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from nasforge.config import Config
from nasforge.data import (
    Augment,
    Batches,
    FolderBatches,
    load_dataset,
    make_batches,
    read_index_file,
    split_weight_arch,
)
from nasforge.derive import derive, rule_options
from nasforge.errors import NasforgeError
from nasforge.runtime import (
    CsvLog,
    amp_dtype,
    autocast,
    check_finite,
    load_run_config,
    pick_device,
    prepare_run_dir,
    read_csv,
    seed_everything,
    write_results,
)
from nasforge.search.base import STRATEGIES, StepContext
from nasforge.spaces.darts.genotype import format_genotype
from nasforge.spaces.darts.search_network import SearchNetwork
from nasforge.spaces.darts.spaces import SPACES

CHECKPOINT = "checkpoint.pt"


def cosine_lr(epoch: int, epochs: int, lr_max: float, lr_min: float) -> float:
    """DARTS's per-epoch cosine schedule: lr_max at epoch 0, towards lr_min at the end."""
    return lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * epoch / epochs))


def training_indices(cfg: Config, num_train: int) -> torch.Tensor:
    """The proxy subset when one is given, else the whole training split."""
    if cfg.data.proxy:
        return read_index_file(cfg.data.proxy, num_train)
    return torch.arange(num_train)


@torch.no_grad()
def evaluate(forward, batches: Batches | FolderBatches, dtype) -> tuple[float, float]:
    """Mean loss and accuracy (%) of ``forward(x) -> logits`` over ``batches``."""
    total_loss = torch.zeros((), device=batches.device)
    correct = torch.zeros((), device=batches.device)
    n = 0
    for x, y in batches.epoch(0):
        with autocast(x.device, dtype):
            logits = forward(x)
        total_loss += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        n += len(y)
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


def run_search(cfg: Config, out: str | Path, *, resume: bool = False,
               force: bool = False) -> dict:
    """Run (or continue) a search; returns the results written to ``results.json``."""
    out = Path(out)
    s = cfg.search
    # Checked before any work: a missing search.k must not surface after the whole search.
    derive_options = rule_options(s, primitives=SPACES.get(s.space).primitives, nodes=s.nodes)
    if not resume:
        prepare_run_dir(out, cfg, force=force)
    device = pick_device(cfg.run.device)
    dtype = amp_dtype(device, cfg.run.amp)
    seed_everything(cfg.run.seed)

    data = load_dataset(cfg.data.dataset, cfg.data.root, upscale=cfg.data.upscale)
    if not resume and cfg.proxy.method and not cfg.data.proxy:
        from nasforge.config import save_config
        from nasforge.proxy.build import build_proxy

        proxy_path, proxy_record = build_proxy(cfg, data, out)
        cfg.data.proxy = str(proxy_path.resolve())
        save_config(cfg, out / "config.yaml")
        atomic_write_json(out / "proxy.json", proxy_record)
    indices = training_indices(cfg, len(data.train))
    if len(indices) < 2:
        raise NasforgeError(f"the search needs at least 2 training examples; got {len(indices)}")
    w_idx, a_idx = split_weight_arch(indices, cfg.run.seed)
    augment = Augment(crop_pad=s.crop_pad, flip=s.flip)
    common = dict(mean=data.mean, std=data.std, device=device, augment=augment,
                  channels_last=cfg.run.channels_last and device.type == "cuda")
    w_batches = make_batches(data.train, s.batch_size, indices=w_idx, seed=cfg.run.seed, **common)
    a_batches = make_batches(data.train, s.batch_size, indices=a_idx, seed=cfg.run.seed + 1,
                        **common)
    a_eval = make_batches(data.train, max(s.batch_size, 256), indices=a_idx, shuffle=False,
                     **{**common, "augment": None})

    s = cfg.search = STRATEGIES.get(s.algo).prepare(s, data.size)
    network = SearchNetwork(s.channels, data.num_classes, s.layers, s.nodes,
                            in_channels=data.channels, primitives=SPACES.get(s.space).primitives,
                            op_mask=SPACES.get(s.space).op_mask(s.nodes),
                            stem="imagenet" if data.size >= 128 else "cifar").to(device)
    if common["channels_last"]:
        network = network.to(memory_format=torch.channels_last)
    strategy = STRATEGIES.get(s.algo)(network, s).to(device)
    w_opt = torch.optim.SGD(network.parameters(), lr=s.w_lr, momentum=s.w_momentum,
                            weight_decay=s.w_weight_decay)
    a_opt = strategy.make_arch_optimizer()

    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    start_epoch, elapsed, seen = 0, 0.0, 0
    ckpt_path = out / CHECKPOINT
    if resume and has_checkpoint(ckpt_path):
        state = load_checkpoint(ckpt_path)
        if state.get("kind") != "search" or state.get("algo") != s.algo:
            raise NasforgeError(f"{ckpt_path} is not a checkpoint of a '{s.algo}' search")
        network.load_state_dict(state["network"])
        strategy.load_state_dict(state["strategy"])
        w_opt.load_state_dict(state["w_opt"])
        a_opt.load_state_dict(state["a_opt"])
        torch.set_rng_state(state["rng"])
        start_epoch, elapsed, seen = state["epoch"] + 1, state["elapsed"], state["seen"]
    log = CsvLog(out / "search_log.csv", resume_after=start_epoch - 1 if resume else None)
    history = out / "strengths.jsonl"
    if resume:
        _truncate_history(history, start_epoch)
    elif history.exists():
        history.unlink()

    steps = min(len(w_batches), len(a_batches))
    ctx_autocast = lambda: autocast(device, dtype)  # noqa: E731
    bar = tqdm(total=(s.epochs - start_epoch) * steps, desc=f"search {s.algo}",
               disable=not cfg.run.progress, unit="step")
    genotype_text = ""
    for epoch in range(start_epoch, s.epochs):
        t0 = time.perf_counter()
        lr = cosine_lr(epoch, s.epochs, s.w_lr, s.w_lr_min)
        for group in w_opt.param_groups:
            group["lr"] = lr
        strategy.start_epoch(epoch, s.epochs)
        ctx = StepContext(w_optimizer=w_opt, w_lr=lr, autocast=ctx_autocast)
        network.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        n = 0
        for batch_w, batch_a in zip(w_batches.epoch(epoch), a_batches.epoch(epoch),
                                    strict=False):
            if s.resolution is not None:
                batch_w, batch_a = resize(batch_w, s.resolution), resize(batch_a, s.resolution)
            if epoch >= s.warmup_epochs:
                strategy.arch_step(network, batch_w, batch_a, a_opt, ctx)
            x, y = batch_w
            weights = strategy.weight_step_weights(network, batch_w, ctx)
            w_opt.zero_grad(set_to_none=True)
            with ctx_autocast():
                logits = network(x, weights)
                loss = F.cross_entropy(logits.float(), y)
            scaler.scale(loss).backward()
            if s.grad_clip > 0:
                scaler.unscale_(w_opt)
                torch.nn.utils.clip_grad_norm_(network.parameters(), s.grad_clip)
            scaler.step(w_opt)
            scaler.update()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
            seen += len(y) + len(batch_a[1])
            bar.update(1)
        check_finite(loss_sum, f"search epoch {epoch}", ckpt_path)
        network.eval()
        val_loss, val_acc = evaluate(
            lambda x: network(x if s.resolution is None else resize((x,), s.resolution)[0],
                              strategy.eval_weights()), a_eval, dtype)
        strengths = masked(strategy.strengths(), network.op_mask)
        try:
            genotype_text = format_genotype(derive(
                s.rule, strengths, primitives=network.primitives, nodes=s.nodes,
                **derive_options))
        except NasforgeError as err:  # e.g. top-k leaves a cell empty: keep the strengths
            genotype_text = f"# no genotype: {err}"
        elapsed += time.perf_counter() - t0
        train_loss, train_acc = float(loss_sum) / n, 100.0 * float(correct) / n
        bar.set_postfix(epoch=epoch, loss=f"{train_loss:.3f}", val_acc=f"{val_acc:.1f}")
        log.write({"epoch": epoch, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                   "val_loss": val_loss, "val_acc": val_acc, "seconds": elapsed})
        with history.open("a") as fh:
            fh.write(json.dumps({"epoch": epoch, "genotype": genotype_text,
                                 **{k: v.tolist() for k, v in strengths.items()}}) + "\n")
        save_checkpoint({"kind": "search", "algo": s.algo, "epoch": epoch,
                         "network": network.state_dict(), "strategy": strategy.state_dict(),
                         "w_opt": w_opt.state_dict(), "a_opt": a_opt.state_dict(),
                         "rng": torch.get_rng_state(), "elapsed": elapsed, "seen": seen,
                         "primitives": list(network.primitives),
                         "train_examples": len(indices)},
                        ckpt_path)
    bar.close()
    return finish_search(out)


def _truncate_history(path: Path, start_epoch: int) -> None:
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines()
             if ln.strip() and json.loads(ln)["epoch"] < start_epoch]
    atomic_write_text(path, "".join(ln + "\n" for ln in lines))


def finish_search(run_dir: Path) -> dict:
    """Write the final strengths, genotype and results from the last epoch's record."""
    cfg = load_run_config(run_dir)
    lines = (run_dir / "strengths.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    strengths = {k: last[k] for k in ("normal", "reduce")}
    state = load_checkpoint(run_dir / CHECKPOINT)
    atomic_write_json(run_dir / "strengths.json", {
        "algo": cfg.search.algo, "primitives": state["primitives"], "nodes": cfg.search.nodes,
        "epoch": last["epoch"], **strengths,
    })
    atomic_write_text(run_dir / "genotype.txt", last["genotype"] + "\n")
    final = read_csv(run_dir / "search_log.csv")[-1]
    results = {
        "stage": "search", "algo": cfg.search.algo, "dataset": cfg.data.dataset,
        "genotype": last["genotype"], "rule": cfg.search.rule,
        "val_acc": float(final["val_acc"]), "val_loss": float(final["val_loss"]),
        "cost": {"seconds": state["elapsed"], "epochs": int(final["epoch"]) + 1,
                 "examples_seen": state["seen"], "train_examples": state["train_examples"],
                 "proxy": cfg.data.proxy, "selection": _read_json(run_dir / "proxy.json")},
    }
    write_results(run_dir, results)
    return results


def resume_search(run_dir: str | Path) -> dict:
    """Continue a killed search from its last checkpoint with its saved config."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ckpt = run_dir / CHECKPOINT
    if has_checkpoint(ckpt) and load_checkpoint(ckpt)["epoch"] + 1 >= cfg.search.epochs:
        return finish_search(run_dir)
    return run_search(cfg, run_dir, resume=True)


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def read_strengths(run_dir: str | Path) -> dict:
    """The final strengths of a search run (``strengths.json``) as tensors plus metadata."""
    path = Path(run_dir) / "strengths.json"
    if not path.is_file():
        raise NasforgeError(f"no strengths.json in {run_dir}; is it a finished search run?")
    data = json.loads(path.read_text())
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
