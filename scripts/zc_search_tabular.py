"""Zero-cost search on a tabular benchmark of the tabular-digits space (docs/zero-cost.md).

For every seed: ``--algo zc-random`` and ``--algo zc-evolution`` with each proxy setting,
and ``--algo random`` scoring its cells by the table's validation accuracy, all with the
same number of architectures (``--samples``). Each found cell is looked up in the table
(mean test accuracy over the table's seeds, and its percentile: the share of the 243 cells
at or below it). Prints a Markdown table; the runs stay in ``--out``.

    .venv/bin/python scripts/zc_search_tabular.py --seeds 0 1 2 3 4 --samples 50 --out /tmp/zcs
    .venv/bin/python scripts/zc_search_tabular.py --bench tabular-noisy-digits --out /tmp/zcs-noisy

The searches use the benchmark's own data set and network width and depth (its protocol).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

SETTINGS = {
    "synflow": "synflow",
    "params": "params",
    "naswot": "naswot",
    "vote (synflow, jacob_cov, snip)": "synflow,jacob_cov,snip",
    "vote (synflow, naswot, params)": "synflow,naswot,params",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", default="tabular-digits",
                        help="tabular benchmark of the tabular-digits space (name or file)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--tournament", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from nasforge.benchmarks.tabular import TabularBenchmark
    from nasforge.config import load_config
    from nasforge.search.loop import run_search

    bench = TabularBenchmark.load(args.bench)
    proto = bench.protocol
    base = [f"data.dataset={proto['dataset']}", "search.space=tabular-digits",
            "search.nodes=2", f"search.channels={proto['channels']}",
            f"search.layers={proto['layers']}", f"search.samples={args.samples}",
            f"search.bench={args.bench}", "run.progress=false", "run.device=cpu"]
    plan = [("random", "table val acc", [])]
    for algo in ("zc-random", "zc-evolution"):
        for label, proxies in SETTINGS.items():
            extra = [f"search.zc_proxies={proxies}"]
            if algo == "zc-evolution":
                extra += [f"search.population={args.population}",
                          f"search.tournament={args.tournament}"]
            plan.append((algo, label, extra))
    rows = []
    for algo, label, extra in plan:
        found = []
        for seed in args.seeds:
            name = f"{algo}-{label.split(' ')[0]}-{len(rows)}-s{seed}"
            run = args.out / name
            if (run / "results.json").is_file():
                res = json.loads((run / "results.json").read_text())
            else:
                cfg = load_config(None, [*base, f"search.algo={algo}", f"run.seed={seed}",
                                         *extra])
                res = run_search(cfg, run, force=True)
            info = bench.query(res["genotype"])
            found.append((info["percentile"], info["test_acc_mean"], res.get("scored"),
                          res["cost"]["seconds"]))
            print(f"{algo:13s} {label:32s} seed {seed}: percentile {info['percentile']:.1f}",
                  file=sys.stderr, flush=True)
        rows.append((algo, label, found))
    print(f"| algorithm | ranked by | percentile per seed ({', '.join(map(str, args.seeds))})"
          " | mean percentile | mean test acc | cells scored | seconds |")
    print("|---|---|---|---:|---:|---:|---:|")
    for algo, label, found in rows:
        per = " ".join(f"{p:.0f}" for p, *_ in found)
        scored = [s for _, _, s, _ in found if s is not None]
        scored_text = f"{statistics.fmean(scored):.0f}" if scored else "—"
        print(f"| {algo} | {label} | {per} | {statistics.fmean(p for p, *_ in found):.1f} | "
              f"{statistics.fmean(a for _, a, *_ in found):.2f} | {scored_text} | "
              f"{statistics.fmean(t for *_, t in found):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
