#!/usr/bin/env python
"""Kendall τ between AutoSNN super-network scores and standalone accuracies (docs/autosnn.md).

    python scripts/snn_rank_correlation.py --supernet runs/sn --out runs/sn-rank \\
        [--paths 8] [--skip-heavy 4] [--recalibrate 0,8] [--seed 0] [--set snn.KEY=VALUE]

Scores the all-skip path, ``--paths - 1`` random paths and ``--skip-heavy`` paths with
many skips on the trained super-network
(once per ``--recalibrate`` value: BatchNorm recalibration batches, 0 = shared statistics),
trains each from scratch with the super-network run's ``snn`` settings (``--set`` changes
them, e.g. ``snn.epochs=30``), and prints the table and τ; re-running reuses finished runs.
"""

import argparse
import sys

from nasforge.errors import NasforgeError
from nasforge.snn.rank import rank_correlation, rank_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", required=True, help="an `nasforge snn supernet` run")
    parser.add_argument("--out", required=True)
    parser.add_argument("--paths", type=int, default=8, help="architectures compared")
    parser.add_argument("--recalibrate", default="0,8",
                        help="comma list of BN recalibration batch counts")
    parser.add_argument("--skip-heavy", type=int, default=0,
                        help="extra paths with many skips (spread the accuracies)")
    parser.add_argument("--seed", type=int, default=0, help="which random paths")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override the standalone training settings")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    try:
        recal = tuple(int(v) for v in args.recalibrate.split(","))
        results = rank_correlation(args.supernet, args.out, num_paths=args.paths,
                                   skip_heavy=args.skip_heavy,
                                   recalibrate=recal, seed=args.seed,
                                   train_overrides=tuple(args.set), progress=args.progress)
    except (NasforgeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(rank_table(results), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
