"""Planted-architecture recovery: a teacher–student task whose right answer is known.

A *teacher* is a DARTS super-network (:class:`~nasforge.spaces.darts.search_network.
SearchNetwork`, the very module every search trains) whose op weights are the one-hot
encoding of a chosen genotype: every edge the genotype holds runs exactly its op, every
other edge is cut. Its weights are drawn from a fixed seed and never trained. It labels
images (the digits images, or uniform noise) with the argmax of its logits, after an
affine re-scaling of its classifier that balances the classes; that re-scaling stays inside
the network, so a student super-network of the same size can represent the labels exactly
with the teacher's own cell. A search on the labelled set then has a known answer, and
:func:`recovery` counts how many of the teacher's (op, input, node) triples the derived
genotype holds, next to the exact expectation and distribution of that count for a cell
drawn uniformly from everything the ``argmax`` rule can derive (which is what the rule
derives from i.i.d. random strengths).

The default task (:func:`default_task`) is registered as the data set ``planted-digits``;
:func:`register_task` registers others. Searches must not augment (``search.crop_pad=0``,
``search.flip=false``): a shifted image does not keep its teacher label.
:func:`search_settings` lists the settings that match the student to the teacher, and
:func:`search_planted` runs a search on a task and scores it.

A search whose ``run.seed`` is the task's seed (``warm``, the default of both) builds its
super-network from exactly the teacher's weights, since both are the first draw from that
seed; it then tests whether the architecture step, with the weights shared and trained
alongside, moves to the planted ops. An independently drawn (cold) student does not
recover the teacher in a budget of minutes (measured: docs/zoo.md, "Does the search find a
planted cell?", and tests/search/test_planted.py).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch

from nasforge.data.batching import normalisation
from nasforge.data.datasets import DATASETS, RawSplits, Split, channel_stats
from nasforge.errors import NasforgeError
from nasforge.spaces.darts.genotype import CellGenotype, Genotype, cell_edges, parse_genotype
from nasforge.spaces.darts.search_network import SearchNetwork
from nasforge.spaces.darts.spaces import SPACES

__all__ = [
    "DEFAULT_DATASET",
    "PlantedTask",
    "Recovery",
    "default_task",
    "match_counts",
    "planted_splits",
    "random_recovery",
    "recovery",
    "register_task",
    "search_planted",
    "search_settings",
    "task_name",
    "teacher_network",
    "teacher_weights",
]

DEFAULT_DATASET = "planted-digits"
CELLS = ("normal", "reduce")

# The default teacher: every op of the tabular-digits space on both cells, node 3 reading an
# intermediate node and skipping one input, so op choice and edge choice both matter.
_DEFAULT_GENOTYPE = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('max_pool_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 2)], normal_concat=[2, 3], "
    "reduce=[('max_pool_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 2)], reduce_concat=[2, 3])"
)


@dataclass(frozen=True)
class PlantedTask:
    """What the teacher is and what it labels.

    ``genotype`` is the planted cell pair (text as ``nasforge derive`` prints it, or a
    :class:`Genotype`); it must be derivable in ``space`` with ``nodes`` intermediate nodes
    by the ``argmax`` rule (two ops from two different inputs per node). The teacher has
    ``channels`` initial channels and ``layers`` cells (reductions at layers/3 and 2·layers/3,
    as every super-network); its weights come from ``seed``. ``inputs`` is ``digits`` (the
    8×8 digits images, their train/val/test split) or ``noise`` (``noise_examples`` uniform
    8×8 images for training, a quarter as many each for val and test).
    """

    genotype: str | Genotype = _DEFAULT_GENOTYPE
    space: str = "tabular-digits"
    nodes: int = 2
    channels: int = 4
    layers: int = 3
    classes: int = 10
    inputs: str = "digits"
    noise_examples: int = 2048
    keep: float = 1.0
    resolution: int | None = None
    seed: int = 0
    _parsed: Genotype | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.inputs not in ("digits", "noise"):
            raise NasforgeError(f"planted task inputs must be digits or noise, got {self.inputs!r}")
        if self.resolution is not None and not 1 <= self.resolution <= 8:
            raise NasforgeError(f"planted task resolution must be 1..8, got {self.resolution}")
        if not 0.0 < self.keep <= 1.0:
            raise NasforgeError(f"planted task keep must be in (0, 1], got {self.keep}")
        if self.classes < 2:
            raise NasforgeError(f"a planted task needs at least 2 classes, got {self.classes}")
        space = SPACES.get(self.space)
        if space.edge_ops is not None:
            raise NasforgeError(f"space '{self.space}' holds different ops per edge; planted "
                                f"tasks take spaces with the same ops on every edge")
        g = self.genotype
        if not isinstance(g, Genotype):
            g = parse_genotype(str(g), primitives=space.primitives)
        for kind in CELLS:
            _check_cell(getattr(g, kind), kind, space.primitives, self.nodes)
        object.__setattr__(self, "_parsed", g)

    @property
    def teacher(self) -> Genotype:
        """The planted genotype."""
        assert self._parsed is not None
        return self._parsed

    @property
    def primitives(self) -> tuple[str, ...]:
        return SPACES.get(self.space).primitives


def default_task() -> PlantedTask:
    """The task behind the ``planted-digits`` data set."""
    return PlantedTask()


def _check_cell(cell: CellGenotype, kind: str, primitives: Sequence[str], nodes: int) -> None:
    allowed = [p for p in primitives if p != "none"]
    for node in range(2, 2 + nodes):
        inputs = [i for _, i, j in cell.ops if j == node]
        if len(inputs) != 2 or len(set(inputs)) != 2:
            raise NasforgeError(f"planted {kind} cell: node {node} must take 2 ops from 2 "
                                f"different inputs, got inputs {sorted(inputs)}")
    for op, i, j in cell.ops:
        if not 2 <= j < 2 + nodes or not 0 <= i < j:
            raise NasforgeError(f"planted {kind} cell: op {op!r} from {i} into {j} is not an "
                                f"edge of a {nodes}-node cell")
        if op not in allowed:
            raise NasforgeError(f"planted {kind} cell: op {op!r} is not one of "
                                f"{', '.join(allowed)}")


# --------------------------------------------------------------------------- the teacher


def teacher_weights(task: PlantedTask) -> dict[str, torch.Tensor]:
    """Per cell type the one-hot [E, K] op weights of the planted genotype."""
    primitives = task.primitives
    edges = cell_edges(task.nodes)
    out = {}
    for kind in CELLS:
        w = torch.zeros(len(edges), len(primitives))
        for op, i, j in getattr(task.teacher, kind).ops:
            w[edges.index((i, j)), primitives.index(op)] = 1.0
        out[kind] = w
    return out


def _inputs(task: PlantedTask) -> tuple[Split, Split, Split]:
    """Unlabelled uint8 images of the three splits (labels filled in later)."""
    if task.inputs == "digits":
        train, val, test, _ = DATASETS.get("digits")(Path("."))
        return train, val, test
    gen = torch.Generator().manual_seed(task.seed + 7919)
    sizes = (task.noise_examples, max(task.noise_examples // 4, 1),
             max(task.noise_examples // 4, 1))
    return tuple(Split(torch.randint(0, 256, (n, 1, 8, 8), generator=gen, dtype=torch.uint8),
                       torch.zeros(n, dtype=torch.int64)) for n in sizes)


def _normalise(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
               resolution: int | None = None) -> torch.Tensor:
    """What the search feeds its network: normalised pixels, resized as ``search.resolution``
    resizes them."""
    scale, shift = normalisation(1, mean, std, int(x.shape[1]), torch.device("cpu"))
    x = x.float() * scale - shift  # as the batches compute it
    if resolution is not None and resolution != x.shape[-1]:
        from nasforge.search.loop import resize

        x = resize((x,), resolution)[0]
    return x


@functools.lru_cache(maxsize=8)
def _teacher(task: PlantedTask) -> tuple[SearchNetwork, tuple[Split, Split, Split]]:
    train, val, test = _inputs(task)
    mean, std = channel_stats(train.x)
    with torch.random.fork_rng():
        torch.manual_seed(task.seed)
        net = SearchNetwork(task.channels, task.classes, task.layers, task.nodes,
                            in_channels=int(train.x.shape[1]), primitives=task.primitives)
    net.sparse = True  # only the planted ops run; the cut edges contribute exactly zero
    weights = teacher_weights(task)
    x = _normalise(train.x, mean, std, task.resolution)
    with torch.no_grad():
        # BN statistics of the whole training split, then frozen (eval mode)
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batch
        net.train()
        net(x, weights)
        net.eval()
        logits = net(x, weights)
        # standardise every class's logit over the training split, then shift the biases
        # until the classes are about equally frequent; folded into the classifier
        mu, sigma = logits.mean(0), logits.std(0).clamp_min(1e-6)
        z = (logits - mu) / sigma
        bias = torch.zeros(task.classes)
        for _ in range(200):
            freq = torch.bincount((z + bias).argmax(1), minlength=task.classes).float()
            bias += 0.5 * (1.0 / task.classes - freq / len(z))
        net.classifier.weight.div_(sigma[:, None])
        net.classifier.bias.sub_(mu).div_(sigma).add_(bias)
        labelled = []
        for split in (train, val, test):
            logits = net(_normalise(split.x, mean, std, task.resolution), weights)
            top = logits.topk(2, dim=1)
            y = top.indices[:, 0]
            keep = _confident(y, top.values[:, 0] - top.values[:, 1], task.keep, task.classes)
            labelled.append(Split(split.x[keep].clone(), y[keep].to(torch.int64)))
    for p in net.parameters():
        p.requires_grad_(False)
    return net, tuple(labelled)


def _confident(y: torch.Tensor, margin: torch.Tensor, keep: float, classes: int
               ) -> torch.Tensor:
    """Indices (sorted) of the ``keep`` fraction of examples with the largest logit margin,
    taken class by class so the class balance is kept."""
    if keep >= 1.0:
        return torch.arange(len(y))
    chosen = []
    for c in range(classes):
        members = torch.nonzero(y == c).flatten()
        n = int(round(keep * len(members)))
        order = torch.argsort(margin[members], descending=True, stable=True)
        chosen.append(members[order[:n]])
    return torch.sort(torch.cat(chosen)).values


def teacher_network(task: PlantedTask) -> SearchNetwork:
    """The teacher (eval mode, frozen): ``net(x, teacher_weights(task)).argmax(1)`` are the
    labels of :func:`planted_splits` for inputs normalised as the data set's statistics say."""
    return _teacher(task)[0]


def planted_splits(task: PlantedTask) -> RawSplits:
    """``(train, val, test, classes)`` with the teacher's labels (a data set loader's value)."""
    train, val, test = _teacher(task)[1]
    return train, val, test, [str(c) for c in range(task.classes)]


_REGISTERED: dict[str, PlantedTask] = {}


def register_task(name: str, task: PlantedTask) -> str:
    """Make ``task`` loadable as data set ``name`` (``data.dataset=NAME``); registering the
    same task twice is a no-op, another task under a taken name an error."""
    if name in _REGISTERED:
        if _REGISTERED[name] != task:
            raise NasforgeError(f"data set '{name}' is already a different planted task")
        return name
    if name in DATASETS:
        raise NasforgeError(f"data set '{name}' is already registered")
    DATASETS.register(name)(lambda root: planted_splits(task))
    _REGISTERED[name] = task
    return name


def search_settings(task: PlantedTask, name: str = DEFAULT_DATASET, *, warm: bool = True
                    ) -> list[str]:
    """``--set`` overrides that search ``task`` (registered as ``name``) with a student of the
    teacher's size and space, and no augmentation.

    ``warm``: search with ``run.seed`` equal to the task's seed, so the student
    super-network starts from exactly the teacher's weights (both are the first thing drawn
    from that seed; a student whose super-network is built differently, PC-DARTS's
    partial channels, does not); ``warm=False`` uses the next seed, an independently drawn
    student.
    """
    return [f"run.seed={task.seed if warm else task.seed + 1}", f"data.dataset={name}",
            f"search.space={task.space}", f"search.nodes={task.nodes}",
            f"search.channels={task.channels}", f"search.layers={task.layers}",
            "search.crop_pad=0", "search.flip=false",
            *([f"search.resolution={task.resolution}"] if task.resolution is not None else [])]


register_task(DEFAULT_DATASET, default_task())


def task_name(task: PlantedTask) -> str:
    """The data-set name :func:`search_planted` registers ``task`` under."""
    if _REGISTERED.get(DEFAULT_DATASET) == task:
        return DEFAULT_DATASET
    digest = hashlib.sha256(repr(task).encode()).hexdigest()[:10]
    return f"planted-{digest}"


def search_planted(task: PlantedTask, out: str | Path, overrides: Sequence[str] = (), *,
                   warm: bool = True) -> tuple[Recovery, dict]:
    """Run a search (in this process, as ``nasforge search`` would) on ``task`` into the new
    run directory ``out``; ``overrides`` are ``--set`` items (``search.algo=gdas``, ...),
    applied after :func:`search_settings`. Returns the recovery of the derived genotype and
    the search's results."""
    from nasforge.config import load_config
    from nasforge.search.loop import run_search

    name = register_task(task_name(task), task)
    cfg = load_config(None, [*search_settings(task, name, warm=warm), *overrides])
    results = run_search(cfg, out)
    if "normal" not in results["genotype"]:
        raise NasforgeError(f"the search derived no genotype: {results['genotype']}")
    return recovery(results["genotype"], task), results


# --------------------------------------------------------------------------- scoring


def match_counts(found: Genotype, teacher: Genotype) -> dict[str, int]:
    """Per cell type, how many of the teacher's (op, input, node) triples ``found`` holds."""
    return {kind: len(set(getattr(teacher, kind).ops) & set(getattr(found, kind).ops))
            for kind in CELLS}


def random_recovery(teacher: Genotype, primitives: Sequence[str], nodes: int,
                    cells: Sequence[str] = CELLS) -> dict[int, Fraction]:
    """Exact distribution of the number of teacher triples recovered by a uniformly drawn
    ``argmax``-derivable genotype (per node: a uniform pair of its incoming edges, a uniform
    non-``none`` op on each), i.e. the ``argmax`` rule applied to i.i.d. random strengths."""
    ops = [p for p in primitives if p != "none"]
    dist = {0: Fraction(1)}
    for kind in cells:
        cell = getattr(teacher, kind)
        for node in range(2, 2 + nodes):
            planted = {(op, i) for op, i, j in cell.ops if j == node}
            node_dist: dict[int, Fraction] = {}
            pairs = [(a, b) for a in range(node) for b in range(a + 1, node)]
            for a, b in pairs:  # enumerate the node's choices: pair, then an op per edge
                for op_a in ops:
                    for op_b in ops:
                        m = ((op_a, a) in planted) + ((op_b, b) in planted)
                        node_dist[m] = node_dist.get(m, Fraction(0)) + Fraction(
                            1, len(pairs) * len(ops) ** 2)
            dist = _convolve(dist, node_dist)
    return dist


def _convolve(a: dict[int, Fraction], b: dict[int, Fraction]) -> dict[int, Fraction]:
    out: dict[int, Fraction] = {}
    for s, p in a.items():
        for m, q in b.items():
            out[s + m] = out.get(s + m, Fraction(0)) + p * q
    return out


@dataclass(frozen=True)
class Recovery:
    """How much of the planted genotype a search found, and what chance would find."""

    found: dict[str, int]
    edges: int
    random_expected: Fraction
    p_value: Fraction
    """P(a random derivation recovers at least as many triples)."""

    @property
    def total(self) -> int:
        return sum(self.found.values())

    def as_dict(self) -> dict:
        return {"found": dict(self.found), "total": self.total, "edges": self.edges,
                "random_expected": float(self.random_expected), "p_value": float(self.p_value)}


def recovery(found: Genotype | str, task: PlantedTask, cells: Sequence[str] = CELLS
             ) -> Recovery:
    """Score a derived genotype (or its text) against the task's teacher."""
    if not isinstance(found, Genotype):
        found = parse_genotype(str(found), primitives=task.primitives)
    counts = {k: v for k, v in match_counts(found, task.teacher).items() if k in cells}
    dist = random_recovery(task.teacher, task.primitives, task.nodes, cells)
    total = sum(counts.values())
    return Recovery(
        found=counts, edges=2 * task.nodes * len(cells),
        random_expected=sum((Fraction(k) * p for k, p in dist.items()), Fraction(0)),
        p_value=sum((p for k, p in dist.items() if k >= total), Fraction(0)))
