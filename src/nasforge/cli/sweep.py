"""``nasforge sweep``: a command over a grid of config values x seeds, on Ray
(:mod:`nasforge.sweep`)."""

from __future__ import annotations

import argparse
import sys

from nasforge.cli.common import Parser
from nasforge.errors import NasforgeError

SWEEP_HELP = """\
Run COMMAND (search, train, quality, snn supernet|search|train|quality) once per grid
point x seed, as Ray tasks: locally on every core, or on a cluster with --address.
Each trial runs in OUT/<trial>/<command>/ with --set KEY=VALUE for its grid values and
run.seed; `--then COMMAND ...` adds a step that runs after it in the same trial, where
{prev} names the previous step's run directory. Re-running skips finished trials.
OUT/results.csv has one row per trial; OUT/sweep.png plots the metric.

examples:
  nasforge sweep search --algo darts --dataset digits --grid search.epochs=1,2 \\
      --seeds 2 --out runs/sweep
  nasforge sweep search --config darts-digits --grid config=darts-digits,btnas-digits \\
      --then train --genotype {prev} --seeds 2 --out runs/sweep2
  nasforge sweep --sweep-config t4.3-btnas-lambda --gpus-per-trial 0.5 --out runs/t43
"""


SWEEP_PARSER = dict(description=SWEEP_HELP, allow_abbrev=False,
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    usage="nasforge sweep COMMAND [its options] [--then COMMAND ...] "
                          "[--grid KEY=V1,V2 ...] [--seeds N] --out DIR [options]")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="a command over a grid of config values x seeds, on Ray",
                       **SWEEP_PARSER)
    _add_sweep_args(p)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                   help="the nasforge command to sweep and its options")
    p.set_defaults(func=cmd_sweep)
    p.__class__ = _PassThroughParser  # COMMAND's own options must reach cmd_sweep unparsed


def _add_sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                   help="config key (search.epochs) or COMMAND option (config) and its values; "
                        "repeat for a product grid")
    p.add_argument("--seeds", type=int, metavar="N",
                   help="seeds per grid point: run.seed = 0..N-1 (1)")
    p.add_argument("--out", metavar="DIR", help="sweep directory (re-run to resume)")
    p.add_argument("--sweep-config", metavar="NAME",
                   help="YAML sweep config or shipped name (--list); COMMAND options after it "
                        "are added to each of its steps")
    p.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                   help="a {NAME} the sweep config leaves open, e.g. supernet=runs/sn")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--gpus-per-trial", type=float, metavar="F",
                   help="GPU share per trial, e.g. 0.5 (0)")
    p.add_argument("--cpus-per-trial", type=float, metavar="F", help="CPUs per trial (1)")
    p.add_argument("--metric", help="metric to plot (default: test_acc, then val_acc, ...)")
    p.add_argument("--dry-run", action="store_true", help="list the trials and their commands")
    p.add_argument("--list", action="store_true", help="list the shipped sweep configs")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


class _PassThroughParser(Parser):
    """Keeps every argument, unparsed, in ``command`` (``sweep`` splits them itself); only
    ``-h``/``--help`` are handled here."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        args = list(sys.argv[1:] if args is None else args)
        if "-h" in args or "--help" in args:
            return super().parse_known_args(args, namespace)
        namespace = argparse.Namespace() if namespace is None else namespace
        for action in self._actions:
            if action.dest != argparse.SUPPRESS and not hasattr(namespace, action.dest):
                setattr(namespace, action.dest, action.default)
        for key, value in self._defaults.items():
            setattr(namespace, key, value)
        namespace.command = args
        return namespace, []


def cmd_sweep(args: argparse.Namespace) -> None:
    from nasforge import sweep

    # Sweep options may come before or after COMMAND; what is left is COMMAND and its options.
    split = Parser(prog="nasforge sweep", **SWEEP_PARSER)
    _add_sweep_args(split)
    args, command = split.parse_known_args(args.command)
    if args.list:
        for line in sweep.sweep_config_lines():
            print(line)
        return
    spec = sweep.make_spec([a for a in command if a != "--debug"], grid=args.grid,
                           seeds=args.seeds, sweep_config=args.sweep_config,
                           variables=args.var, gpus_per_trial=args.gpus_per_trial,
                           cpus_per_trial=args.cpus_per_trial, metric=args.metric)
    if not args.out:
        raise NasforgeError("sweep: --out DIR is required")
    if args.dry_run:
        trials = sweep.plan(spec, args.out)
        sweep.validate(spec, trials)
        print(sweep.describe_plan(spec, trials, args.out))
        return
    result = sweep.run_sweep(spec, args.out, address=args.address,
                             progress=not args.no_progress)
    print(f"sweep: {result['trials_total']} trials: {result['ran']} run, {result['skipped']} "
          f"skipped (finished before), {result['failed']} failed -> {args.out}/results.csv")
    for row in result["trials"]:
        if row["status"] != "done":
            print(f"  failed {row['trial']}: {row['error']}")
    if result["plot"]:
        print(f"{result['metric']} plotted in {result['plot']}")
