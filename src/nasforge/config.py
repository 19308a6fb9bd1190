"""Typed run configuration: dataclasses, YAML files and dotted overrides.

Defaults are the thesis's protocols (§3.4.1, with the corrections docs/protocols.md lists);
YAML files under ``configs/`` (any folder: docs/config.md) override them, and
``--set section.key=value`` overrides those. Every value is checked against its declared
type, range and choices, so a typo fails in one line before any work starts, and the
resolved config is saved in the run directory.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nasforge.errors import NasforgeError

CONFIG_DIR = Path(__file__).parent / "configs"

SEED_MAX = 2**32 - 1
"""Largest seed: NumPy's global generator takes 0..2**32-1 (torch takes more)."""
YAML_MAX_NODES = 100_000
"""Most values a config file or ``--set`` value may hold once anchors/aliases are expanded."""
YAML_MAX_BYTES = 1_000_000
"""Largest config file read (shipped configs are under 2 KB)."""
_MAX_SHOWN = 80  # characters of a bad value quoted in an error message


def _opt(default: Any, *, lo: float | None = None, hi: float | None = None,
         below: float | None = None, choices: tuple[Any, ...] | None = None,
         help: str = "") -> Any:
    """A config field with its allowed range or choices recorded in the metadata
    (``below``: an exclusive upper bound, as for Adam's betas)."""
    meta = {"lo": lo, "hi": hi, "below": below, "choices": choices, "help": help}
    if isinstance(default, list | tuple | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    """Which data, from where, and which subset of the training split."""

    dataset: str = _opt("digits", help="dataset name (see `nasforge data list`)")
    root: str | None = _opt(None, help="data root; default $NASFORGE_DATA or ~/.nasforge/data")
    upscale: int | None = _opt(None, lo=8, help="digits only: resize images to this size")
    proxy: str | None = _opt(None, help="index file restricting the training split")


@dataclass
class SearchCore:
    """What every search reads (§3.4.1; DARTS code's weight lr 0.025 → 0.001)."""

    algo: str = _opt("darts", help="search strategy")
    space: str = _opt("darts", help="cell search space (candidate ops)")
    epochs: int = _opt(50, lo=1)
    batch_size: int = _opt(64, lo=1)
    channels: int = _opt(16, lo=1)
    layers: int = _opt(8, lo=3, hi=100,
                       help="cells (8 in the thesis's searches)")
    nodes: int = _opt(4, lo=1, hi=16, help="intermediate nodes per cell (genotype.MAX_NODES)")
    order: str = _opt("first", choices=("first", "second"), help="DARTS gradient order")
    mixed_op: str = _opt("plain", choices=("plain", "batched"),
                         help="super-network edges: each op alone, or all edges leaving a "
                              "state together (same weights and results; bench/README.md)")
    w_lr: float = _opt(0.025, lo=0.0)
    w_lr_min: float = _opt(0.001, lo=0.0)
    w_momentum: float = _opt(0.9, lo=0.0, hi=1.0)
    w_weight_decay: float = _opt(3e-4, lo=0.0)
    grad_clip: float = _opt(5.0, lo=0.0, help="0 disables clipping")
    # The authors' code (nabk89/NAS-with-Proxy-data, train_search_proxy_data.py) runs Adam
    # 3e-4 beside the weight lr 0.025 → 0.001 above, as DARTS's code does; thesis §3.4.1's
    # text says 6e-4 with 0.1 → 0 (PC-DARTS's setting). We follow the code (docs/search.md).
    arch_lr: float = _opt(3e-4, lo=0.0, help="architecture Adam lr (authors' code: 3e-4)")
    arch_betas: tuple[float, float] = _opt((0.5, 0.999), lo=0.0, below=1.0)
    arch_weight_decay: float = _opt(1e-3, lo=0.0)
    arch_init_std: float = _opt(1e-3, lo=0.0)
    crop_pad: int = _opt(4, lo=0)
    flip: bool = _opt(True)
    rule: str = _opt("argmax", help="derivation rule: argmax or topk")
    k: int | None = _opt(None, lo=1, help="topk rule: ops kept over both cells together")
    act_all: bool = _opt(False, help="topk rule: normalise by the per-node maximum (ActAll)")
    warmup_epochs: int = _opt(0, lo=0, help="epochs of weight training before arch updates")
    resolution: int | None = _opt(None, lo=1, help="resize search inputs (EcoDARTS r2: 16)")
    threshold: float | None = _opt(None, lo=0.0, hi=1.0,
                                   help="threshold rule (FairDARTS): keep ops >= this (0.85)")
    nb101_table: str | None = _opt(
        None, help="NAS-Bench-101 table (bench nb101-convert): score 1shot1 searches per epoch")


# --- Each search algorithm's own settings (docs/zoo.md). A strategy names its group in
# its ``options`` attribute (nasforge.search); SearchConfig below joins the groups, so the
# keys users type stay flat: search.tau_max, search.partial_k, ...

@dataclass
class BtNASOptions:
    """BtNAS (thesis §4.3): the weight of the Beta prior."""

    kl_weight: float = _opt(1e-3, lo=0.0, help="BtNAS: lambda of the KL(Beta || Beta(1,1)) term")


@dataclass
class TemperatureOptions:
    """GDAS and PR-DARTS: the annealed Gumbel / hard-concrete temperature."""

    tau_max: float = _opt(10.0, lo=0.0, help="GDAS/PR-DARTS: initial temperature")
    tau_min: float = _opt(0.1, lo=0.0, help="GDAS/PR-DARTS: final temperature")


@dataclass
class PCDARTSOptions:
    """PC-DARTS: partial channel connections."""

    partial_k: int = _opt(4, lo=1, help="PC-DARTS: 1/K of the channels enter the mixed op")


@dataclass
class SDARTSOptions:
    """SDARTS-RS / -ADV: the perturbation of α."""

    epsilon_min: float = _opt(0.03, lo=0.0, help="SDARTS: perturbation bound, first epoch")
    epsilon_max: float = _opt(0.3, lo=0.0, help="SDARTS: perturbation bound, last epoch")
    attack_steps: int = _opt(7, lo=1, help="SDARTS-ADV: PGD steps")


@dataclass
class FairDARTSOptions:
    """FairDARTS: the zero-one loss."""

    zero_one_weight: float = _opt(10.0, lo=0.0, help="FairDARTS: weight of the zero-one loss")


@dataclass
class PRDARTSOptions:
    """PR-DARTS: op sampling and the path regularisers."""

    keep_ops: int = _opt(2, lo=1, help="PR-DARTS: ops activated per edge")
    op_dropout: float = _opt(0.4, lo=0.0, hi=1.0, help="PR-DARTS: op dropout probability")
    reg_weights: tuple[float, float, float] = _opt(
        (0.01, 0.005, 0.005), help="PR-DARTS: lambda of the skip, non-skip+pool and path terms")
    reg_hinge: float = _opt(0.2, lo=0.0, help="PR-DARTS: hinge of the group terms")


@dataclass
class SGASOptions:
    """SGAS: when edges are decided."""

    decision_start: int = _opt(9, lo=0, help="SGAS: first epoch (0-based) that fixes an edge")
    decision_every: int = _opt(5, lo=1, help="SGAS: epochs between edge decisions")


@dataclass
class ENASOptions:
    """ENAS: the LSTM controller and, in the 1shot1 spaces, its candidate scoring."""

    controller_lr: float = _opt(3.5e-3, lo=0.0, help="ENAS: controller Adam learning rate")
    controller_hidden: int = _opt(64, lo=1, help="ENAS: LSTM units")
    entropy_weight: float = _opt(1e-4, lo=0.0, help="ENAS: entropy bonus in the reward")
    baseline_decay: float = _opt(0.99, lo=0.0, hi=1.0, help="ENAS: moving-average baseline decay")
    tanh_constant: float = _opt(1.1, lo=0.0, help="ENAS: logits = c * tanh(logits)")
    op_tanh_reduce: float = _opt(2.5, lo=0.0, help="ENAS: op logits use c / op_tanh_reduce")
    controller_temperature: float = _opt(1.0, lo=0.0,
                                         help="ENAS: logits / temperature before the tanh")
    controller_steps: int = _opt(
        0, lo=0, help="ENAS (1shot1 spaces): controller updates after each epoch's weight "
        "training, BN in eval mode (NAS-Bench-1shot1: 300); 0 = one per minibatch")
    candidates: int = _opt(
        0, lo=0, help="ENAS (1shot1 spaces): cell = best of this many samples, each scored on "
        "one held-out batch (NAS-Bench-1shot1: 1000); 0 = the greedy cell")
    rescore: int = _opt(5, lo=1, help="ENAS (1shot1 spaces): best candidates re-scored on the "
                        "whole held-out split")


@dataclass
class RandomOptions:
    """random and random-ws: how many cells, and where their accuracy comes from."""

    samples: int = _opt(100, lo=1, help="random / random-ws / zc-*: cells sampled and ranked")
    bench: str | None = _opt(
        None, help="random: look cells up in this tabular benchmark instead of training them")


@dataclass
class ZeroCostOptions:
    """zc-random and zc-evolution (docs/zero-cost.md "Zero-cost search")."""

    # search.samples is the number of architectures scored (evolution: population included)
    zc_proxies: str = _opt("synflow", help="zc-random / zc-evolution: the proxy, or a comma "
                           "list voted by mean rank (nasforge.zc PROXIES)")
    zc_batch: int | None = _opt(None, lo=2, help="zc-*: examples each proxy reads (None: "
                                "the batch of its paper)")
    population: int = _opt(20, lo=2, help="zc-evolution: population P (Real et al. 2019)")
    tournament: int = _opt(5, lo=1, help="zc-evolution: tournament sample size S")


@dataclass
class SearchConfig(ZeroCostOptions, RandomOptions, ENASOptions, SGASOptions, PRDARTSOptions,
                   FairDARTSOptions, SDARTSOptions, PCDARTSOptions, TemperatureOptions,
                   BtNASOptions, SearchCore):
    """Super-network search: the settings every search reads, then each algorithm's own."""


SEARCH_OPTION_GROUPS: tuple[type, ...] = tuple(
    b for b in SearchConfig.__mro__[1:] if b not in (SearchCore, object))
"""Every algorithm's option group, the order ``nasforge config show`` lists them in."""


@dataclass
class TrainConfig:
    """Retraining a found cell (§3.4.1: CIFAR protocol by default)."""

    protocol: str = _opt("cifar", choices=("cifar", "imagenet"))
    epochs: int = _opt(600, lo=1)
    batch_size: int = _opt(96, lo=1)
    channels: int = _opt(36, lo=1)
    layers: int = _opt(20, lo=3, hi=100,
                       help="cells (the thesis: 20 for CIFAR, 14 for ImageNet)")
    lr: float = _opt(0.025, lo=0.0)
    lr_min: float = _opt(0.0, lo=0.0)
    schedule: str = _opt("cosine", choices=("cosine", "linear"))
    warmup_epochs: int = _opt(0, lo=0)
    momentum: float = _opt(0.9, lo=0.0, hi=1.0)
    weight_decay: float = _opt(3e-4, lo=0.0)
    auxiliary: bool = _opt(True)
    auxiliary_weight: float = _opt(0.4, lo=0.0)
    drop_path: float = _opt(0.2, lo=0.0, hi=1.0)
    crop_pad: int = _opt(4, lo=0)
    flip: bool = _opt(True)
    cutout: int = _opt(16, lo=0)
    grad_clip: float = _opt(5.0, lo=0.0)
    label_smoothing: float = _opt(0.0, lo=0.0, hi=1.0)


@dataclass
class EntropyConfig:
    """The auxiliary model that scores examples (§3.4.1: CIFAR ResNets, 200 epochs)."""

    model: str = _opt("resnet20", help="auxiliary model")
    epochs: int = _opt(200, lo=1)
    batch_size: int = _opt(128, lo=1)
    lr: float = _opt(0.1, lo=0.0)
    momentum: float = _opt(0.9, lo=0.0, hi=1.0)
    weight_decay: float = _opt(1e-4, lo=0.0)
    milestones: list[int] = _opt([100, 150], lo=1, help="epochs where lr is divided by 10")
    crop_pad: int = _opt(4, lo=0)
    flip: bool = _opt(True)
    pretrain: str = _opt("supervised", choices=("supervised", "simclr"),
                         help="simclr: contrastive pretraining, then a linear head (§3.5.4)")
    simclr_epochs: int = _opt(100, lo=1)
    simclr_temperature: float = _opt(0.5, lo=0.0)
    linear_epochs: int = _opt(100, lo=1)


@dataclass
class ProxyConfig:
    """How a proxy subset is selected from an entropy list (chapter 3)."""

    method: str | None = _opt(None, help="selector; set to build a proxy subset before a search")
    size: float = _opt(0.1, lo=0.0, help="count (>= 1) or fraction (< 1) of the training split")
    entropy: str | None = _opt(None, help="entropy list to select from; None = score on the fly")
    bin_width: float | None = _opt(None, lo=0.0, help="log10 bin width; None = per data set")
    beta: float = _opt(0.5, lo=0.0, hi=1.0, help="beta selector: bottom beta*K + top (1-beta)*K")
    class_balanced: bool = _opt(False)


@dataclass
class StudyConfig:
    """The chapter-3 study: selectors × sizes × seeds × algorithms on a tabular benchmark."""

    methods: list[str] = _opt(["random", "top-k", "bottom-k", "forgetting", "k-center",
                               "beta", "p1", "p2", "p3", "easy-middle"])
    sizes: list[float] = _opt([0.05, 0.1, 0.2, 0.4], help="fractions or counts")
    seeds: list[int] = _opt([0, 1], lo=0, hi=SEED_MAX)
    algos: list[str] = _opt(["darts"])
    bench: str = _opt("tabular-digits", help="tabular benchmark that scores found cells")


@dataclass
class QualityConfig:
    """Search-space quality (§4.2.2): random cells per space, all trained with ``train``."""

    spaces: list[str] = _opt(["darts", "extcell-10", "extcell-12", "extcell-14", "extcell-16"],
                             help="darts or extcell-K (K ops over both cells, 2..196)")
    samples: int = _opt(100, lo=1, help="unique random cell pairs per space")


@dataclass
class SNNConfig:
    """AutoSNN (chapter 5): backbone, super-network training, spike-aware search, retraining.

    One training protocol serves the super-network and the retrained SNNs (§5.4.1): Adam
    1e-3 without a schedule, batch 96, 600 epochs, pad-crop + flip on static data; cutout 16
    for retraining only (the authors' super-network script passes no --cutout).
    """

    channels: int = _opt(16, lo=1, help="initial channels C of the backbone")
    timesteps: int = _opt(8, lo=1, help="time steps T (thesis: 4, 8 or 16)")
    variant: str | None = _opt(None, choices=("v1", "v2", "v3"),
                               help="macro variant of Table 5.1 (None = the proposed one)")
    space: str = _opt("default", choices=("default", "v2-8tbd", "tbd-before-pool"),
                      help="enlarged spaces of Table 5.9")
    blocks: list[str] = _opt(["SCB_k3", "SCB_k5", "SRB_k3", "SRB_k5", "skip"],
                             help="candidate blocks of the super-network and the search")
    neuron: str = _opt("plif", choices=("plif", "relu"),
                       help="relu: the DNN version of the space (§5.5.2)")
    epochs: int = _opt(600, lo=1)
    batch_size: int = _opt(96, lo=1)
    lr: float = _opt(1e-3, lo=0.0)
    betas: tuple[float, float] = _opt((0.9, 0.999), lo=0.0, below=1.0)
    loss: str = _opt("mse", choices=("mse", "ce"),
                     help="mse: firing rates vs one-hot labels (the authors'); ce: cross-entropy")
    val_fraction: float = _opt(0.2, lo=0.0, hi=0.9,
                               help="super-network: share of training data held out (8:2)")
    crop_pad: int = _opt(4, lo=0)
    flip: bool = _opt(True)
    cutout: int = _opt(16, lo=0, help="static data only; 0 disables")
    supernet_cutout: int = _opt(0, lo=0, help="super-network training's cutout (authors: 0)")
    supernet_epochs: int | None = _opt(None, lo=1,
                                       help="super-network epochs (None = snn.epochs)")
    bn: str = _opt("per-step", choices=("per-step", "merged"),
                   help="batch norm statistics per time step (the authors') or over all T")
    bn_recalibrate_batches: int = _opt(0, lo=0, help="snn search: recompute BN statistics "
                                       "per path on this many train batches before scoring")
    convention: str = _opt("thesis", choices=("thesis", "neurons"),
                           help="spike count: thesis = neurons + max-pool outputs")
    arch: str | None = _opt(None, help="snn train: block names, e.g. SRB_k5,SRB_k5,skip,...")
    model: str | None = _opt(None, help="snn train: a hand-crafted baseline instead of arch")
    lams: list[float] = _opt([-0.08], help="fitness exponents; one search per value")
    search_algo: str = _opt("evolution", choices=("evolution", "random"))
    rounds: int = _opt(10, lo=1)
    pool: int = _opt(20, lo=1)
    top_k: int = _opt(10, lo=1)
    mutations: int = _opt(10, lo=0)
    crossovers: int = _opt(10, lo=0)
    mutation_prob: float = _opt(0.2, lo=0.0, hi=1.0)
    budget: int = _opt(200, lo=1, help="random search: architectures evaluated")
    energy_profile: str = _opt("45nm", help="per-operation energy costs (docs/autosnn.md "
                               "§Energy): 45nm, 45nm-fp16, 45nm-int32, 45nm-int8")
    energy_lam: float = _opt(0.0, help="snn search: fitness also × (E/E_avg)^energy_lam; "
                             "0 ignores energy, < 0 favours less")
    max_energy: float | None = _opt(None, lo=0.0, help="snn search: energy budget in µJ per "
                                    "image; architectures above it never enter the population")
    warm_start: int = _opt(0, lo=0, help="snn search (evolution): draw this many "
                           "architectures for round 1, keep the pool best by warm_proxy")
    warm_proxy: str = _opt("naswot", help="snn search: zero-cost proxy of the warm start")
    eval_batch_size: int = _opt(256, lo=1)
    samples: int = _opt(100, lo=1, help="snn quality: random architectures per space")
    variants: list[str] = _opt(["default", "v1", "v2", "v3"],
                               choices=("default", "v1", "v2", "v3"),
                               help="snn quality: macro variants to compare (Fig. 5.8)")


AMP_CHOICES = ("auto", "fp32", "bf16", "fp16")
COMPILE_CHOICES = ("off", "default", "reduce-overhead", "max-autotune",
                   "max-autotune-no-cudagraphs")  # off, or a torch.compile mode


@dataclass
class RunConfig:
    """How a run executes: seed, device and speed switches."""

    seed: int = _opt(2, lo=0, hi=SEED_MAX)
    device: str = _opt("auto", help="auto, cpu, cuda or cuda:N")
    amp: str = _opt("auto", choices=AMP_CHOICES,
                    help="mixed precision on CUDA (auto = bf16 where supported)")
    channels_last: bool = _opt(True, help="channels_last memory format (CUDA and CPU)")
    progress: bool = _opt(True, help="show progress bars")
    compile: str = _opt("off", choices=COMPILE_CHOICES,
                        help="torch.compile the network in search and retraining (mode)")
    deterministic: bool = _opt(
        False, help="CUDA: deterministic kernels (use_deterministic_algorithms, cuDNN "
                    "deterministic, no benchmark, CUBLAS_WORKSPACE_CONFIG); CPU needs none")


@dataclass
class Config:
    """Everything a nasforge run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    entropy: EntropyConfig = field(default_factory=EntropyConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    study: StudyConfig = field(default_factory=StudyConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    snn: SNNConfig = field(default_factory=SNNConfig)
    run: RunConfig = field(default_factory=RunConfig)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def shown(value: Any, limit: int = _MAX_SHOWN) -> str:
    """``repr(value)`` cut to ``limit`` characters, so a huge value (an expanded YAML alias
    bomb) cannot flood an error message."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict = 3, 8, 8, 8
    short.maxstring = short.maxother = short.maxlong = limit
    text = short.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against annotation ``tp``; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, list | tuple) or not value:
            raise NasforgeError(f"{key} must be a non-empty list, got {shown(value)}")
        return [_coerce(v, inner, key) for v in value]
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list | tuple) or len(value) != len(args):
            raise NasforgeError(f"{key} must be a list of {len(args)} numbers, "
                                f"got {shown(value)}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args, strict=True))
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if tp is bool and isinstance(value, bool) or tp is str and isinstance(value, str):
        return value
    if tp is int and is_number and isinstance(value, int):
        return value
    if tp is float and isinstance(value, str) and _EXPONENT_ONLY.fullmatch(value.strip()):
        value, is_number = float(value), True  # YAML 1.1 reads 1e-3 or 1e30 (no dot) as a string
    if tp is float and is_number:
        try:
            number = float(value)
        except OverflowError:  # an int too large for a float
            number = math.inf
        if not math.isfinite(number):
            raise NasforgeError(f"{key} must be a finite number, got {shown(value)}")
        return number
    raise NasforgeError(f"{key} must be {_type_name(tp)}, got {shown(value)}")


_EXPONENT_ONLY = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def _check_range(value: Any, meta: dict, key: str) -> None:
    if value is None:
        return
    if isinstance(value, list | tuple):  # bounds and choices hold for every element
        for item in value:
            _check_range(item, meta, key)
        return
    if meta.get("choices") and value not in meta["choices"]:
        allowed = ", ".join(str(c) for c in meta["choices"])
        raise NasforgeError(f"{key} must be one of {allowed}; got {shown(value)}")
    lo, hi, below = meta.get("lo"), meta.get("hi"), meta.get("below")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if below is not None and not (lo if lo is not None else -math.inf) <= value < below:
            raise NasforgeError(f"{key} must be in [{lo:g}, {below:g}); got {value!r}")
        if lo is not None and value < lo:
            raise NasforgeError(f"{key} must be >= {lo}; got {value!r}")
        if hi is not None and value > hi:
            raise NasforgeError(f"{key} must be <= {hi}; got {value!r}")


def _fill(obj: Any, values: dict, prefix: str) -> None:
    """Set ``values`` (a nested dict) onto dataclass ``obj``, validating every key."""
    hints = typing.get_type_hints(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    if not isinstance(values, dict):
        raise NasforgeError(f"{prefix or 'config'} must be a mapping, got {shown(values)}")
    for name, value in values.items():
        key = f"{prefix}{shown(name, 40) if not isinstance(name, str) else name[:40]}"
        if name not in fields:
            raise NasforgeError(
                f"unknown config key '{key}'; allowed: {', '.join(prefix + f for f in fields)}"
            )
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current):
            _fill(current, value, f"{key}.")
            continue
        coerced = _coerce(value, hints[name], key)
        _check_range(coerced, fields[name].metadata, key)
        setattr(obj, name, coerced)


CONFIG_FOLDERS = {
    "algos": "one config per search algorithm: its published setting (-cifar10 ...) and a "
             "CPU-sized one (-digits); the NAS-Bench-1shot1 searches",
    "demo": "the end-to-end demo (`nasforge demo`) and its AutoSNN part",
    "studies": "CPU-scale studies and search-space quality on digits",
    "thesis/ch3": "chapter 3, proxy data: Tables 3.x (t3.*), entropy models, ImageNet retrain",
    "thesis/ch4": "chapter 4, ExtCells and BtNAS: Tables 4.x (t4.*)",
    "thesis/ch5": "chapter 5, AutoSNN: Tables 5.x (t5.*) and Figures 5.x (f5.*)",
}
"""The folders under ``configs/`` (docs/config.md); ``sweeps/`` holds `nasforge sweep`'s own
configs, which are not run configs and have names of their own."""
_NOT_RUN_CONFIGS = ("sweeps",)


def shipped_config_paths() -> list[Path]:
    """Every run config shipped under ``configs/``, at any depth (``sweeps/`` excluded),
    ordered by folder, then name."""
    return sorted((p for p in CONFIG_DIR.rglob("*.yaml")
                   if p.relative_to(CONFIG_DIR).parts[0] not in _NOT_RUN_CONFIGS),
                  key=lambda p: (p.parent.relative_to(CONFIG_DIR).as_posix(), p.stem))


def _configs_named(name: str) -> list[Path]:
    return [p for p in shipped_config_paths() if p.stem == name]


def shipped_configs(pattern: str = "*") -> dict[str, Path]:
    """Name → file of the shipped run configs whose name matches the glob ``pattern``,
    sorted by name (``--config NAME`` finds each by its name alone, whatever its folder)."""
    import fnmatch

    found: dict[str, Path] = {}
    for path in shipped_config_paths():
        if path.stem in found:
            raise NasforgeError(f"two shipped configs are named '{path.stem}': "
                                f"{found[path.stem]} and {path}")
        found[path.stem] = path
    return {name: found[name] for name in sorted(found) if fnmatch.fnmatchcase(name, pattern)}


def shipped_config_lines() -> list[str]:
    """`nasforge config list`: every shipped config with its first comment line, grouped by
    folder under a ``folder/: what it holds`` heading."""
    lines: list[str] = []
    folder = None
    for path in shipped_config_paths():
        here = path.parent.relative_to(CONFIG_DIR).as_posix()
        if here != folder:
            folder = here
            lines.append(f"{here}/: {CONFIG_FOLDERS.get(here, '')}".rstrip(": "))
        text = path.read_text()
        first = text.splitlines()[0] if text else ""
        lines.append(f"  {path.stem:32s} {first.lstrip('# ')}")
    return lines


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config given as a path, or by the name of a file shipped anywhere under
    ``configs/`` (``darts-digits``, ``darts-digits.yaml`` or ``algos/darts-digits``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    text = str(name_or_path)
    for candidate in (CONFIG_DIR / f"{text}.yaml", CONFIG_DIR / text):
        if candidate.is_file():
            return candidate
    name = text.removesuffix(".yaml")
    if "/" not in name and "\\" not in name:
        matches = _configs_named(name)
        if len(matches) == 1:
            return matches[0]
        if matches:
            where = " and ".join(str(p.relative_to(CONFIG_DIR)) for p in matches)
            raise NasforgeError(f"config '{name}' is ambiguous: configs/ ships {where}; "
                                "give the file's path")
    import difflib

    close = difflib.get_close_matches(name.rsplit("/", 1)[-1],
                                      [p.stem for p in shipped_config_paths()], n=5, cutoff=0.6)
    hint = f"close matches: {', '.join(close)}" if close else "no shipped name is close"
    raise NasforgeError(f"config '{name_or_path}' is neither a file nor a shipped config "
                        f"({hint}; `nasforge config list` shows them all)")


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, mark: Any) -> None:
        super().__init__(f"duplicate key {shown(key, 40)}")
        self.key, self.problem_mark = key, mark


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the
    last one silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: construct_mapping reports it
                continue
            if duplicate:
                raise _DuplicateKey(key, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _expanded_size(data: Any, limit: int) -> int:
    """How many values ``data`` holds with every alias expanded, counted without expanding
    (a shared object is counted once per reference); stops past ``limit``."""
    sizes: dict[int, int] = {}

    def size(obj: Any) -> int:
        if not isinstance(obj, dict | list):
            return 1
        if id(obj) in sizes:
            return sizes[id(obj)]
        sizes[id(obj)] = limit + 1  # a cycle (a self-referencing alias) counts as too big
        items = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
        total = 1
        for item in items:
            total += size(item)
            if total > limit:
                break
        sizes[id(obj)] = total
        return total

    return size(data)


def load_yaml_text(text: str, where: str) -> Any:
    """Parse YAML text safely: duplicate keys are refused, and so is anything that expands
    (through anchors and aliases) to more than :data:`YAML_MAX_NODES` values. ``where``
    names the source in messages (a file, or ``--set KEY``)."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except _DuplicateKey as exc:
        line = f" line {exc.problem_mark.line + 1}" if exc.problem_mark is not None else ""
        raise NasforgeError(f"duplicate key {shown(exc.key, 40)} in {where}{line}; give each "
                            "key once") from exc
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" line {line + 1}" if line is not None else ""
        raise NasforgeError(f"cannot parse YAML in {where}{at}") from exc
    except RecursionError as exc:
        raise NasforgeError(f"{where} nests too deeply to be a config") from exc
    if _expanded_size(data, YAML_MAX_NODES) > YAML_MAX_NODES:
        raise NasforgeError(f"{where} expands to more than {YAML_MAX_NODES:,} values "
                            "(anchors and aliases included); a config is far smaller")
    return data


def _read_yaml(path: Path) -> dict:
    data = read_yaml_file(path) or {}
    if not isinstance(data, dict):
        raise NasforgeError(f"{path} must hold a mapping of config sections")
    return data


def read_yaml_file(path: Path) -> Any:
    """A YAML file read as :func:`load_yaml_text` reads text, after refusing a file over
    :data:`YAML_MAX_BYTES`, a binary file and one that is not UTF-8 (one line each)."""
    try:
        size = path.stat().st_size
        if size > YAML_MAX_BYTES:
            raise NasforgeError(f"config {path} is {size:,} bytes; a config file is a small "
                                f"YAML text (at most {YAML_MAX_BYTES:,} bytes)")
        raw = path.read_bytes()
    except OSError as exc:
        raise NasforgeError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NasforgeError(f"config {path} is not a UTF-8 text file (binary or another "
                            "encoding); give a YAML file") from None
    if "\x00" in text:
        raise NasforgeError(f"config {path} is a binary file, not YAML text")
    return load_yaml_text(text, str(path))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into a key path and a YAML-typed value."""
    if "=" not in text:
        raise NasforgeError(f"override '{text}' must look like section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise NasforgeError(f"override key '{key}' must be dotted, e.g. search.epochs")
    try:
        value = load_yaml_text(raw, f"--set {key.strip()}") if raw.strip() else None
    except NasforgeError as exc:
        if not isinstance(exc.__cause__, yaml.YAMLError) or isinstance(exc.__cause__,
                                                                       _DuplicateKey):
            raise
        value = raw  # not YAML: kept as text, so the type check names it
    return parts, value


def nest(parts: list[str], value: Any) -> dict:
    """``['a', 'b'], v`` → ``{'a': {'b': v}}``."""
    out: Any = value
    for part in reversed(parts):
        out = {part: out}
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                **sections: dict) -> Config:
    """Defaults ← YAML file ← ``sections`` dicts ← dotted ``overrides``, all validated."""
    cfg = Config()
    if path is not None:
        _fill(cfg, _read_yaml(resolve_config_path(path)), "")
    for name, values in sections.items():
        _fill(cfg, {name: values}, "")
    for text in overrides:
        parts, value = parse_override(text)
        _fill(cfg, nest(parts, value), "")
    return cfg


def config_to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples as lists) suitable for YAML/JSON."""

    def plain(v: Any) -> Any:
        return list(v) if isinstance(v, tuple | list) else v

    return {
        sec.name: {f.name: plain(getattr(getattr(cfg, sec.name), f.name))
                   for f in dataclasses.fields(getattr(cfg, sec.name))}
        for sec in dataclasses.fields(cfg)
    }


def config_from_dict(data: dict) -> Config:
    cfg = Config()
    _fill(cfg, data, "")
    return cfg


def save_config(cfg: Config, path: str | Path) -> None:
    from nasforge.checkpoint import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def read_config(path: str | Path) -> Config:
    return config_from_dict(_read_yaml(Path(path)))
