"""``nasforge study ...`` and ``nasforge quality``: multi-run studies, re-run to resume."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasforge.cli.common import RECOMPUTE_HELP, Parser, add_config_args, config_from_args
from nasforge.errors import NasforgeError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="multi-run studies")
    study_sub = p.add_subparsers(dest="study_command", required=True, parser_class=Parser)
    q = study_sub.add_parser("proxy", help="chapter-3 study: selectors x sizes x seeds")
    q.add_argument("--out", required=True, help="study directory (re-run to resume)")
    q.add_argument("--force", action="store_true", help=RECOMPUTE_HELP)
    add_config_args(q)
    q.set_defaults(func=cmd_study_proxy)
    q = study_sub.add_parser("algorithms", help="the zoo: every algorithm x seeds, full data "
                             "and proxy data, on the tabular benchmark")
    q.add_argument("--out", required=True, help="study directory (re-run to resume)")
    q.add_argument("--algos", help="comma list of algorithms (default: study.algos)")
    q.add_argument("--force", action="store_true", help=RECOMPUTE_HELP)
    add_config_args(q)
    q.set_defaults(func=cmd_study_algorithms)

    p = sub.add_parser("quality", help="search-space quality: train random cells per space")
    p.add_argument("--spaces", help="comma list of darts and extcell-K (default: from config)")
    p.add_argument("--samples", type=int, help="unique random cell pairs per space")
    p.add_argument("--out", required=True, help="output directory (re-run to resume)")
    p.add_argument("--force", action="store_true", help=RECOMPUTE_HELP)
    add_config_args(p)
    p.set_defaults(func=cmd_quality)


def cmd_study_proxy(args: argparse.Namespace) -> None:
    from nasforge.studies.proxy_data import run_proxy_study

    cfg = config_from_args(args)
    rows = run_proxy_study(cfg, args.out, progress=not args.no_progress, force=args.force)
    print(f"{len(rows)} runs -> {Path(args.out) / 'results.csv'}, {Path(args.out) / 'study.png'}")


def cmd_study_algorithms(args: argparse.Namespace) -> None:
    from nasforge.studies.algorithms import run_algorithm_study

    extra = {"study.algos": args.algos.split(",") if args.algos else None}
    args.config = args.config or "study-algorithms-digits"
    cfg = config_from_args(args, **extra)
    summary = run_algorithm_study(cfg, args.out, progress=not args.no_progress,
                                  force=args.force)
    print((Path(args.out) / "algorithms.md").read_text(), end="")
    print(f"{len(summary)} rows -> {Path(args.out) / 'algorithms.csv'}, "
          f"{Path(args.out) / 'algorithms.png'}")


def cmd_quality(args: argparse.Namespace) -> None:
    from nasforge.quality import parse_spaces, run_quality, summarise

    spaces = None
    if args.spaces is not None:
        spaces = [spec.name for spec in parse_spaces(args.spaces.split(","))]
    if args.samples is not None and args.samples < 1:
        raise NasforgeError(f"quality: --samples must be at least 1; got {args.samples}")
    args.config = args.config or "quality-digits"
    cfg = config_from_args(args, **{"quality.spaces": spaces, "quality.samples": args.samples})
    rows = run_quality(cfg, args.out, force=args.force)
    for space, s in summarise(rows).items():
        print(f"{space:12s} n={s['count']:<4d} median {s['median']:.2f}%  mean {s['mean']:.2f}%  "
              f"min {s['min']:.2f}%  max {s['max']:.2f}%")
    out = Path(args.out)
    print(f"{len(rows)} nets -> {out / 'results.csv'}, {out / 'summary.json'}, "
          f"{out / 'quality.png'}")
