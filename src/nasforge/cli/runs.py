"""``nasforge report`` and ``nasforge runs``: what happened in run directories."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasforge.errors import NasforgeError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML + markdown report of a run (or a folder of runs)")
    p.add_argument("run_dir", help="run directory, demo directory or folder of runs")
    p.add_argument("--out", help="report directory (default: RUN_DIR/report)")
    p.add_argument("--force", action="store_true",
                   help="replace report files that nasforge did not write")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("runs", help="list the runs under a folder with their status")
    p.add_argument("dir", nargs="?", default="runs", help="folder to scan (default: runs)")
    p.add_argument("--depth", type=int, default=4, help="folder levels to look down (4)")
    p.add_argument("--active", type=float, default=10.0, metavar="MINUTES",
                   help="a run whose files changed this recently counts as running (10)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)


def cmd_report(args: argparse.Namespace) -> None:
    from nasforge.analysis.report import build_report

    for path in build_report(args.run_dir, args.out, force=args.force):
        print(path)


def cmd_runs(args: argparse.Namespace) -> None:
    from nasforge.run_status import format_runs, list_runs

    if args.depth < 0 or args.active < 0:
        raise NasforgeError("runs: --depth and --active must be >= 0")
    if not Path(args.dir).is_dir():
        raise NasforgeError(f"runs: {args.dir} is not a directory")
    runs = list_runs(args.dir, max_depth=args.depth, active=60 * args.active)
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
    elif runs:
        print(format_runs(runs))
    else:
        print(f"no runs under {args.dir}")
