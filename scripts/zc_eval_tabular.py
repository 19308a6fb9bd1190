"""Correlation of every zero-cost proxy with a tabular benchmark (docs/zero-cost.md).

Scores all 243 cells of the table with :func:`nasforge.zc.score.zc_eval` once per seed (the
seed fixes the data batch and the networks' initialisation) and prints a Markdown table of
Spearman's ρ and Kendall's τ with the cells' mean test accuracy, per seed and averaged.

    .venv/bin/python scripts/zc_eval_tabular.py --seeds 0 1 2 --out /tmp/zc_eval
    .venv/bin/python scripts/zc_eval_tabular.py --seeds 0 1 2 --out /tmp/zc_eval --reuse
    .venv/bin/python scripts/zc_eval_tabular.py --bench tabular-noisy-digits --out /tmp/zc_noisy

(the second prints the tables again from the saved JSON files without scoring).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch


def _read(path: Path) -> dict:
    """A result written by ``zc_eval(out=...)``: its "nan"/"-inf" strings back to floats."""

    def back(obj):  # noqa: ANN001, ANN202
        if isinstance(obj, str) and obj in ("nan", "inf", "-inf"):
            return float(obj)
        if isinstance(obj, dict):
            return {k: back(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [back(v) for v in obj]
        return obj

    return back(json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default="tabular-digits",
                        help="tabular benchmark of the tabular-digits space (name or file)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--proxies", default=None, help="comma list (default: all)")
    parser.add_argument("--batch", type=int, default=None,
                        help="examples every proxy reads (default: each its paper's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reuse", action="store_true",
                        help="read eval-seed<S>.json files already in --out instead of scoring")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for one eval-seed<S>.json per seed")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nasforge.benchmarks.tabular import TabularBenchmark
    from nasforge.zc.score import format_table, zc_eval

    results = []
    for seed in args.seeds:
        start = time.perf_counter()
        out = None
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            tag = "" if args.batch is None else f"-batch{args.batch}"
            out = args.out / f"eval-seed{seed}{tag}.json"
        if args.reuse and out is not None and out.is_file():
            result = _read(out)
        else:
            result = zc_eval(args.bench, args.proxies, seed, out, batch=args.batch,
                             device="cpu")
        results.append(result)
        print(f"seed {seed}: {result['cells']} cells in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
        print(format_table(result), file=sys.stderr)

    names = results[0]["proxies"]

    def mean(p: str, key: str) -> float:
        values = [r["correlations"][p][key] for r in results]
        return math.nan if any(math.isnan(v) for v in values) else statistics.fmean(values)

    order = sorted(names, key=lambda p: -mean(p, "spearman") if not math.isnan(
        mean(p, "spearman")) else math.inf)
    seeds = " | ".join(f"ρ seed {s}" for s in args.seeds)
    print(f"| proxy | {seeds} | mean ρ | mean τ |")
    print("|---|" + "---:|" * (len(args.seeds) + 2))
    for p in order:
        per = " | ".join(f"{r['correlations'][p]['spearman']:.3f}" for r in results)
        print(f"| {p} | {per} | {mean(p, 'spearman'):.3f} | {mean(p, 'kendall'):.3f} |")
    # Within cells of equal size: the table's only parameterised op is sep_conv_3x3, so
    # params (and flops) depend on the number of sep_convs alone; does a proxy rank cells
    # of the same size? Spearman within each group of more than 5 cells, size-weighted.
    from scipy.stats import spearmanr

    print("\n| proxy | ρ within equal-params groups (mean over seeds) |")
    print("|---|---:|")
    for p in order:
        if p in ("params", "flops"):
            continue
        per_seed = []
        for r in results:
            groups: dict[float, list[dict]] = {}
            for row in r["rows"]:
                groups.setdefault(row["params"] if "params" in row else
                                  row["arch"].count("sep_conv"), []).append(row)
            parts = [(len(g), spearmanr([x[p] for x in g],
                                        [x["test_acc_mean"] for x in g]).statistic)
                     for g in groups.values() if len(g) > 5]
            per_seed.append(sum(n * v for n, v in parts) / sum(n for n, _ in parts))
        print(f"| {p} | {statistics.fmean(per_seed):.3f} |")
    stats = TabularBenchmark.load(args.bench).stats()
    halves = (f", of two builds with half the seeds each {stats['half_spearman']:.3f}"
              if "half_spearman" in stats else "")
    print(f"\ntable: {stats['count']} cells, mean test accuracy {stats['min']:.2f}–"
          f"{stats['max']:.2f} %, seed-to-seed Spearman of single trainings "
          f"{stats.get('seed_spearman', math.nan):.3f}{halves}")
    secs = [r["seconds"] for r in results]
    print(f"scoring time per seed: {', '.join(f'{s:.0f} s' for s in secs)} "
          f"({args.threads} thread(s))")
    if args.out is not None:
        tag = "" if args.batch is None else f"-batch{args.batch}"
        (args.out / f"summary{tag}.json").write_text(json.dumps(
            {p: {"spearman": mean(p, "spearman"), "kendall": mean(p, "kendall")}
             for p in names}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
