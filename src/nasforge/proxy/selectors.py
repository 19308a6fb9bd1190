"""Proxy-data selectors (thesis chapter 3): which K training examples a search trains on.

Every selector is a pure function of tensors registered in :data:`SELECTORS` under the
name users type (``--method p1``); :func:`select` validates inputs and applies the
class-balanced wrapper, :func:`select_to_file` adds file reading and writing. Randomness
comes only from a ``torch.Generator`` seeded by the caller, so a seed fixes the subset.
Ties (equal entropies or forgetting counts) always go to the lower index.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nasforge.errors import NasforgeError
from nasforge.proxy.histogram import EntropyHistogram, bin_width_for, entropy_histogram
from nasforge.registry import Registry

__all__ = [
    "P_WEIGHTS",
    "SELECTORS",
    "SelectionInput",
    "SelectionOptions",
    "class_quotas",
    "example_probabilities",
    "greedy_k_center",
    "k_center_radius",
    "resolve_size",
    "sample_without_replacement",
    "select",
    "select_to_file",
    "weight_p1",
    "weight_p2",
    "weight_p3",
]


@dataclass(frozen=True)
class SelectionInput:
    """Per-example data a selector may read; all rows are aligned (row i = example i)."""

    entropy: torch.Tensor  # float64 [N]
    labels: torch.Tensor | None = None  # int64 [N]
    features: torch.Tensor | None = None  # float [N, D], penultimate-layer features
    forgetting: torch.Tensor | None = None  # [N] forgetting-event counts

    @property
    def num_examples(self) -> int:
        return int(self.entropy.numel())

    def take(self, rows: torch.Tensor) -> SelectionInput:
        """The same data restricted to ``rows`` (used to select within one class)."""

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[rows.to(t.device)]

        return SelectionInput(self.entropy[rows], pick(self.labels), pick(self.features),
                              pick(self.forgetting))


@dataclass(frozen=True)
class SelectionOptions:
    """Method parameters shared by the selectors."""

    bin_width: float = 0.5
    beta: float = 0.5
    device: str | torch.device = "cpu"


Selector = Callable[[SelectionInput, int, SelectionOptions, torch.Generator], torch.Tensor]
SELECTORS: Registry[Selector] = Registry("selection method")

HISTOGRAM_METHODS = ("p1", "p2", "p3")
BETA_METHODS = ("beta", "easy-middle")


# ---------------------------------------------------------------- orderings and sampling


def ascending(scores: torch.Tensor) -> torch.Tensor:
    """Positions from lowest to highest score; equal scores keep index order."""
    return torch.sort(scores, stable=True).indices


def descending(scores: torch.Tensor) -> torch.Tensor:
    """Positions from highest to lowest score; equal scores keep index order."""
    return torch.sort(scores, stable=True, descending=True).indices


def sample_without_replacement(
    probs: torch.Tensor, k: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw ``k`` distinct positions, each draw ∝ ``probs`` among those not yet drawn.

    Exponential race (equivalent to Gumbel-top-k): with E_i ~ Exp(1), the order of
    E_i / p_i is exactly the order of successive weighted draws without replacement.
    """
    p = torch.as_tensor(probs, dtype=torch.float64).cpu().reshape(-1)
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError("sampling probabilities must be finite and non-negative")
    if int((p > 0).sum()) < k:
        raise ValueError(f"cannot draw {k} distinct examples: fewer have probability > 0")
    race = torch.empty_like(p).exponential_(generator=generator) / p
    return ascending(race)[:k]


# ---------------------------------------------------------------- P1 / P2 / P3 (Eqs. 3.3–3.6)


def weight_p1(counts: torch.Tensor) -> torch.Tensor:
    """Eq. 3.4: W1(h) = (max|h'| − |h| + 1) / Σ_h'' (max|h'| − |h''| + 1); favours short bins."""
    counts = counts.to(torch.float64)
    filled = counts > 0
    raw = torch.where(filled, counts.max() - counts + 1, torch.zeros_like(counts))
    return raw / raw.sum()


def weight_p2(counts: torch.Tensor) -> torch.Tensor:
    """Eq. 3.5: W2(h) = 1 / number of bins; every bin gets the same total probability."""
    filled = (counts > 0).to(torch.float64)
    return filled / filled.sum()


def weight_p3(counts: torch.Tensor) -> torch.Tensor:
    """Eq. 3.6: W3(h) = (1/|h|) / Σ_h'' 1/|h''|; a bin's mass falls with its height."""
    counts = counts.to(torch.float64)
    raw = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    return raw / raw.sum()


P_WEIGHTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "p1": weight_p1,
    "p2": weight_p2,
    "p3": weight_p3,
}


def example_probabilities(
    hist: EntropyHistogram, weight: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Eq. 3.3: P(x) = norm(W(h_x) / |h_x|) over all examples (float64, sums to 1)."""
    per_bin = weight(hist.counts) / hist.counts.to(torch.float64).clamp_min(1)
    per_example = per_bin[hist.bin_of]
    return per_example / per_example.sum()


# ---------------------------------------------------------------- greedy k-center (Eq. 3.2)


def greedy_k_center(
    features: torch.Tensor,
    k: int,
    generator: torch.Generator,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Greedy k-center: a seeded random first centre, then repeatedly the farthest point.

    Keeps one running vector of each point's squared distance to its nearest centre, so
    each step is one matrix-vector product on ``device`` and never syncs with the host.
    """
    x = torch.as_tensor(features).to(device)
    if not x.is_floating_point():
        x = x.float()
    x = x - x.mean(0)  # distances are unchanged; smaller norms mean less cancellation
    n = x.shape[0]
    sq_norm = (x * x).sum(1)
    chosen = torch.empty(k, dtype=torch.int64, device=x.device)
    chosen[0] = int(torch.randint(n, (1,), generator=generator))
    nearest = torch.full((n,), math.inf, dtype=x.dtype, device=x.device)
    for step in range(1, k):
        centre = chosen[step - 1 : step]
        point = x.index_select(0, centre).squeeze(0)
        dist = (sq_norm - 2 * torch.mv(x, point) + sq_norm.index_select(0, centre)).clamp_min_(0)
        torch.minimum(nearest, dist, out=nearest)
        nearest.index_fill_(0, centre, -1.0)  # a centre is never chosen twice
        chosen[step] = torch.argmax(nearest)  # first maximum: ties go to the lower index
    return chosen.cpu()


def k_center_radius(features: torch.Tensor, centres: torch.Tensor, chunk: int = 4096) -> float:
    """Eq. 3.2's objective: the largest distance from any point to its nearest centre."""
    x = torch.as_tensor(features)
    x = x if x.is_floating_point() else x.float()
    c = x[torch.as_tensor(centres, device=x.device)]
    worst = 0.0
    for start in range(0, x.shape[0], chunk):
        near = torch.cdist(x[start : start + chunk], c).min(dim=1).values
        worst = max(worst, float(near.max()))
    return worst


# ---------------------------------------------------------------- the registered selectors


def _beta_count(beta: float, k: int) -> int:
    """round(β·K), halves rounded up, as an int in 0..K."""
    return min(k, max(0, math.floor(beta * k + 0.5)))


def _highest(scores: torch.Tensor, positions: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` of ``positions`` with the highest score, ties to the lower index."""
    positions = torch.sort(positions).values
    return positions[descending(scores[positions])[:k]]


@SELECTORS.register("random")
def select_random(data: SelectionInput, k: int, opts: SelectionOptions,
                  gen: torch.Generator) -> torch.Tensor:
    """Uniform sample without replacement (D_random)."""
    return torch.randperm(data.num_examples, generator=gen)[:k]


@SELECTORS.register("top-k")
def select_top(data: SelectionInput, k: int, opts: SelectionOptions,
               gen: torch.Generator) -> torch.Tensor:
    """The K highest-entropy (hardest) examples (D_top)."""
    return descending(data.entropy)[:k]


@SELECTORS.register("bottom-k")
def select_bottom(data: SelectionInput, k: int, opts: SelectionOptions,
                  gen: torch.Generator) -> torch.Tensor:
    """The K lowest-entropy (easiest) examples (D_bottom)."""
    return ascending(data.entropy)[:k]


@SELECTORS.register("forgetting")
def select_forgetting(data: SelectionInput, k: int, opts: SelectionOptions,
                      gen: torch.Generator) -> torch.Tensor:
    """The K most-forgotten examples (D_forget)."""
    if data.forgetting is None:
        raise NasforgeError("method 'forgetting' needs forgetting-event counts: "
                            "pass --forgetting FILE (forgetting_path=)")
    return descending(data.forgetting.to(torch.float64))[:k]


@SELECTORS.register("k-center")
def select_k_center(data: SelectionInput, k: int, opts: SelectionOptions,
                    gen: torch.Generator) -> torch.Tensor:
    """Greedy k-center on penultimate-layer features (D_center, Eq. 3.2)."""
    if data.features is None:
        raise NasforgeError("method 'k-center' needs penultimate-layer features: "
                            "pass --features FILE (features_path=)")
    return greedy_k_center(data.features, k, gen, opts.device)


@SELECTORS.register("beta")
def select_beta(data: SelectionInput, k: int, opts: SelectionOptions,
                gen: torch.Generator) -> torch.Tensor:
    """Deterministic proposal (§3.3): bottom round(βK) plus top K − round(βK) by entropy."""
    easy = _beta_count(opts.beta, k)
    order = ascending(data.entropy)
    return torch.cat([order[:easy], _highest(data.entropy, order[easy:], k - easy)])


@SELECTORS.register("easy-middle")
def select_easy_middle(data: SelectionInput, k: int, opts: SelectionOptions,
                       gen: torch.Generator) -> torch.Tensor:
    """§3.5.2 ablation: bottom round(βK), then K − round(βK) uniformly from all the rest."""
    easy = _beta_count(opts.beta, k)
    order = ascending(data.entropy)
    rest = torch.sort(order[easy:]).values
    return torch.cat([order[:easy], rest[torch.randperm(rest.numel(), generator=gen)[: k - easy]]])


def _probabilistic(name: str) -> Selector:
    weight = P_WEIGHTS[name]

    def selector(data: SelectionInput, k: int, opts: SelectionOptions,
                 gen: torch.Generator) -> torch.Tensor:
        hist = entropy_histogram(data.entropy, opts.bin_width)
        return sample_without_replacement(example_probabilities(hist, weight), k, gen)

    selector.__name__ = f"select_{name}"
    selector.__doc__ = f"Probabilistic proposal (§3.3) with {name.upper()}: K draws ∝ Eq. 3.3."
    return selector


for _name in HISTOGRAM_METHODS:
    SELECTORS.register(_name)(_probabilistic(_name))


# ---------------------------------------------------------------- sizes and class balance


def resolve_size(size: int | float | str, n: int) -> int:
    """K from a count (a whole number >= 1), a fraction 0 < f < 1, or a percentage "10%"."""
    allowed = f"allowed: a count 1..{n}, a fraction 0 < f < 1, or a percentage like 10%"
    value: float
    try:
        if isinstance(size, bool):
            raise ValueError
        if isinstance(size, str):
            text = size.strip()
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
            if text.endswith("%") and not 0 < value < 1:
                raise ValueError
        else:
            value = float(size)
    except (TypeError, ValueError):
        raise NasforgeError(f"size {size!r} is invalid; {allowed}") from None
    if not math.isfinite(value) or value <= 0:
        raise NasforgeError(f"size {size!r} is invalid; {allowed}")
    if value < 1:
        k = math.floor(value * n + 0.5)
        if k < 1:
            raise NasforgeError(f"size {size!r} selects 0 of {n} examples; {allowed}")
        return k
    if value != math.floor(value):
        raise NasforgeError(f"size {size!r} is neither a whole count nor a fraction; {allowed}")
    if value > n:
        raise NasforgeError(f"size {size!r} is more than the {n} examples; {allowed}")
    return int(value)


def class_quotas(class_sizes: torch.Tensor, k: int) -> torch.Tensor:
    """Split K across classes ∝ class size; largest remainders (ties: lower class) get the rest."""
    sizes = class_sizes.to(torch.int64)
    total = int(sizes.sum())
    share = sizes * k
    quotas = share // total
    missing = k - int(quotas.sum())
    if missing:
        quotas[descending(share % total)[:missing]] += 1
    return quotas


def _class_balanced(selector: Selector, data: SelectionInput, k: int, opts: SelectionOptions,
                    gen: torch.Generator) -> torch.Tensor:
    """§3.5.3: run the same selector inside each class on its own examples (and histogram)."""
    if data.labels is None:
        raise NasforgeError("class-balanced selection needs labels (the entropy list's third "
                            "column)")
    classes, sizes = torch.unique(data.labels, sorted=True, return_counts=True)
    parts = []
    for label, quota in zip(classes.tolist(), class_quotas(sizes, k).tolist(), strict=True):
        if quota == 0:
            continue
        rows = (data.labels == label).nonzero().squeeze(1)
        parts.append(rows[selector(data.take(rows), quota, opts, gen)])
    return torch.cat(parts)


# ---------------------------------------------------------------- public entry points


def _as_rows(name: str, t: torch.Tensor | None, n: int, dims: int) -> torch.Tensor | None:
    if t is None:
        return None
    t = torch.as_tensor(t)
    if t.dim() != dims or t.shape[0] != n:
        want = "[N]" if dims == 1 else "[N, D]"
        raise NasforgeError(f"{name} must have shape {want} with N = {n} (one row per entropy), "
                            f"got {tuple(t.shape)}")
    return t


def select(
    method: str,
    size: int | float | str,
    *,
    entropy: torch.Tensor,
    labels: torch.Tensor | None = None,
    seed: int = 0,
    bin_width: float | None = None,
    beta: float = 0.5,
    class_balanced: bool = False,
    features: torch.Tensor | None = None,
    forgetting: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Select K examples with ``method``: int64 positions, K unique, sorted ascending.

    ``bin_width`` None means :data:`~nasforge.proxy.histogram.FALLBACK_BIN_WIDTH`.
    """
    selector = SELECTORS.get(method)
    entropy = torch.as_tensor(entropy).detach().cpu().to(torch.float64).reshape(-1)
    n = entropy.numel()
    if n == 0:
        raise NasforgeError("cannot select from an empty entropy list")
    bad = ~torch.isfinite(entropy) | (entropy < 0)
    if bool(bad.any()):
        at = int(bad.nonzero()[0])
        raise NasforgeError(f"entropy of example {at} is {entropy[at].item()}; it must be finite "
                            "and >= 0")
    k = resolve_size(size, n)
    if not 0.0 <= float(beta) <= 1.0:
        raise NasforgeError(f"beta {beta!r} is out of range; allowed 0 <= beta <= 1")
    data = SelectionInput(
        entropy,
        _as_rows("labels", labels, n, 1),
        _as_rows("features", features, n, 2),
        _as_rows("forgetting", forgetting, n, 1),
    )
    opts = SelectionOptions(bin_width_for(None, bin_width), float(beta), device)
    gen = torch.Generator().manual_seed(int(seed))
    if class_balanced:
        chosen = _class_balanced(selector, data, k, opts, gen)
    else:
        chosen = selector(data, k, opts, gen)
    chosen = torch.sort(chosen.cpu().to(torch.int64)).values
    if chosen.numel() != k or bool((chosen[1:] == chosen[:-1]).any()):
        raise RuntimeError(f"selector {method!r} returned {chosen.numel()} positions, not {k} "
                           "unique ones")
    return chosen


def _aligned(name: str, path: str | os.PathLike[str], t: torch.Tensor,
             index: torch.Tensor) -> torch.Tensor:
    """Rows of a per-example file (dataset order) for the entropy list's indices."""
    n = index.numel()
    in_order = bool(torch.equal(index, torch.arange(n)))
    if (in_order and t.shape[0] != n) or t.shape[0] <= int(index.max()):
        raise NasforgeError(f"{name} file {path} has {t.shape[0]} rows but the entropy list "
                            f"covers {n} examples (largest index {int(index.max())})")
    return t if in_order else t[index]


def select_to_file(
    entropy_path: str | os.PathLike[str],
    method: str,
    size: int | float | str,
    *,
    out: str | os.PathLike[str],
    seed: int = 0,
    dataset: str | None = None,
    bin_width: float | None = None,
    beta: float = 0.5,
    class_balanced: bool = False,
    features_path: str | os.PathLike[str] | None = None,
    forgetting_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read an entropy list (and features/forgetting), select, write ``out``; return a summary."""
    from nasforge.data.subset import write_index_file
    from nasforge.proxy.entropy import load_features, read_entropy_list, read_forgetting

    SELECTORS.get(method)  # fail on a typo before reading any file
    listing = read_entropy_list(entropy_path)
    index = torch.as_tensor(listing.index, dtype=torch.int64).reshape(-1)
    entropy = torch.as_tensor(listing.entropy, dtype=torch.float64).reshape(-1)
    labels = torch.as_tensor(listing.label).reshape(-1)
    features = forgetting = None
    if features_path is not None:
        features = _aligned("features", features_path, load_features(features_path), index)
    if forgetting_path is not None:
        forgetting = _aligned("forgetting", forgetting_path, read_forgetting(forgetting_path),
                              index)
    width = bin_width_for(dataset, bin_width)
    positions = select(method, size, entropy=entropy, labels=labels, seed=seed, bin_width=width,
                       beta=beta, class_balanced=class_balanced, features=features,
                       forgetting=forgetting, device=device)
    chosen = torch.sort(index[positions]).values
    summary: dict[str, Any] = {
        "method": method, "size": size, "seed": seed, "k": int(chosen.numel()),
        "n": int(index.numel()), "class_balanced": class_balanced,
        "entropy": str(entropy_path), "out": str(out),
        "mean_entropy_selected": float(entropy[positions].mean()),
        "mean_entropy_all": float(entropy.mean()),
    }
    if method in HISTOGRAM_METHODS:
        summary.update(bin_width=width, dataset=dataset)
    if method in BETA_METHODS:
        summary["beta"] = beta
    comment = "nasforge select " + " ".join(
        f"{key}={summary[key]}" for key in ("method", "size", "seed", "k", "n", "entropy")
    )
    extras = [f"{key}={summary[key]}" for key in ("bin_width", "beta") if key in summary]
    if class_balanced:
        extras.append("class_balanced=true")
    if extras:
        comment += " " + " ".join(extras)
    write_index_file(out, chosen, comment=comment)
    return summary
