"""Time every proxy-data selector on CIFAR-10-sized synthetic data.

Selecting K of N examples should cost next to nothing beside a search, so each method is
timed against baselines measured in the same run: plain ``torch.randperm`` (the cheapest
possible subset) and two reference weighted samplers without replacement
(``numpy.random.Generator.choice(p=..., replace=False)`` and ``torch.multinomial``).
Prints a table; makes no assertions about wall-clock time.

    .venv/bin/python bench/bench_select.py [--n 50000] [--k 5000] [--dim 64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from nasforge.proxy.histogram import entropy_histogram
from nasforge.proxy.selectors import P_WEIGHTS, example_probabilities, select


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds (one warm-up call first)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def synthetic(n: int, dim: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Entropies skewed like CIFAR-10's (most examples easy, a long hard tail), class blobs."""
    gen = torch.Generator().manual_seed(seed)
    easy = torch.randn(n, generator=gen, dtype=torch.float64) * 0.8 - 3.0
    hard = torch.rand(n, generator=gen, dtype=torch.float64) * 3.0 - 2.5
    log_h = torch.where(torch.rand(n, generator=gen) < 0.8, easy, hard)
    labels = torch.arange(n) % 10
    centres = torch.randn(10, dim, generator=gen) * 3
    features = centres[labels] + torch.randn(n, dim, generator=gen)
    forgetting = torch.poisson(torch.full((n,), 1.5), generator=gen).to(torch.int64)
    return {"entropy": 10**log_h, "labels": labels, "features": features,
            "forgetting": forgetting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--k", type=int, default=5_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-k-center", action="store_true")
    args = parser.parse_args()
    data = synthetic(args.n, args.dim)
    n, k = args.n, args.k
    probs = example_probabilities(entropy_histogram(data["entropy"], 0.5), P_WEIGHTS["p1"])
    p_np = probs.numpy()

    baseline = timed(lambda: torch.randperm(n, generator=torch.Generator().manual_seed(0))[:k],
                     args.repeats)
    reference = timed(lambda: np.random.default_rng(0).choice(n, k, replace=False, p=p_np),
                      args.repeats)
    rows: list[tuple[str, float]] = [
        ("baseline: torch.randperm", baseline),
        ("reference: numpy choice(p, no repl.)", reference),
        ("reference: torch.multinomial(no repl.)", timed(
            lambda: torch.multinomial(probs, k, generator=torch.Generator().manual_seed(0)),
            args.repeats)),
    ]
    methods = ["random", "top-k", "bottom-k", "beta", "easy-middle", "forgetting", "p1", "p2",
               "p3"]
    for method in methods:
        rows.append((method, timed(lambda m=method: select(m, k, seed=0, bin_width=0.5, **data),
                                   args.repeats)))
    rows.append(("p1, class-balanced", timed(
        lambda: select("p1", k, seed=0, bin_width=0.5, class_balanced=True, **data),
        args.repeats)))
    if not args.skip_k_center:
        rows.append((f"k-center ({n} x {args.dim})",
                     timed(lambda: select("k-center", k, seed=0, **data), 1)))

    print(f"select {k} of {n}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} (k-center: 1)")
    print(f"{'method':<40}{'ms':>10}{'x randperm':>12}{'x numpy p':>11}")
    for name, ms in rows:
        print(f"{name:<40}{ms:>10.2f}{ms / baseline:>12.1f}{ms / reference:>11.2f}")


if __name__ == "__main__":
    main()
