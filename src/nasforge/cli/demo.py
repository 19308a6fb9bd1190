"""``nasforge demo``: end to end on digits in a few minutes."""

from __future__ import annotations

import argparse


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="end to end on digits: proxy → BtNAS → retrain, then AutoSNN")
    p.add_argument("--out", default="demo-run")
    p.add_argument("--algo", default="btnas", choices=["btnas", "darts"],
                   help="btnas: top-k + ActAll ExtCell (default); darts: argmax DARTS cell")
    p.add_argument("--force", action="store_true", help="overwrite an existing directory")
    p.add_argument("--no-snn", action="store_true", help="skip the AutoSNN part")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> None:
    from nasforge.demo import run_demo

    results = run_demo(args.out, force=args.force, progress=not args.no_progress,
                       algo=args.algo, snn=not args.no_snn)
    print(f"demo done in {results['seconds']['total']:.0f}s: cell test accuracy "
          f"{results['test_acc']:.2f}%, {results['params_m']:.3f}M params -> {args.out}")
    for name, row in results.get("snn", {}).get("trained", {}).items():
        print(f"  SNN {name}: test accuracy {row['test_acc']:.2f}%, "
              f"{row['spikes']:,.0f} spikes per image, {row['params_m'] * 1e3:.1f}K params")
