"""``nasforge bench ...``: tabular benchmarks (the digits table, NAS-Bench-101) and the
search-step timer."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasforge.cli.common import Parser, file_outputs, genotype_arg, print_json_or_lines
from nasforge.config import AMP_CHOICES
from nasforge.errors import NasforgeError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="tabular benchmarks")
    bench_sub = p.add_subparsers(dest="bench_command", required=True, parser_class=Parser)
    q = bench_sub.add_parser("query", help="tabulated accuracies of a cell")
    q.add_argument("genotype", help="genotype string, file or search run directory")
    q.add_argument("--bench", default="tabular-digits")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_query)
    q = bench_sub.add_parser("nb101-convert",
                             help="NAS-Bench-101 .tfrecord -> compact local table (.npz)")
    q.add_argument("tfrecord", help="nasbench_only108.tfrecord or nasbench_full.tfrecord")
    q.add_argument("--out", required=True, help="table to write (.npz)")
    q.add_argument("--epochs", default="108", help="budgets to keep: comma list or 'all'")
    q.add_argument("--no-crc", action="store_true", help="skip the record checksums")
    q.add_argument("--no-progress", action="store_true")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_bench_nb101_convert)
    q = bench_sub.add_parser("nb101-query", help="look up a cell in a NAS-Bench-101 table")
    q.add_argument("--table", required=True, help="table written by nb101-convert")
    q.add_argument("--matrix", help="adjacency rows, e.g. 0110;0001;0001;0000")
    q.add_argument("--ops",
                   help="comma list: input,conv3x3-bn-relu,conv1x1-bn-relu,maxpool3x3,output")
    q.add_argument("--arch", help="instead of --matrix/--ops: a NAS-Bench-1shot1 cell "
                   "('1shot1-ss1 ops=... parents=... output=...'), a file or a search run")
    q.add_argument("--epochs", type=int, default=108)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_bench_nb101_query)
    _add_step_parser(bench_sub)
    q = bench_sub.add_parser("fidelity", help="super-network vs tabulated accuracy of every "
                             "cell of a tabular benchmark, after a search")
    q.add_argument("runs", nargs="+", help="search run directories (tabular-digits space)")
    q.add_argument("--bench", help="tabular benchmark (default: the one trained on the "
                   "run's data set)")
    q.add_argument("--split", default="val", choices=["val", "test"],
                   help="split the super-network is evaluated on (val)")
    q.add_argument("--bn", default="batch", choices=["batch", "running"],
                   help="BatchNorm statistics: of each batch (default) or the stored ones")
    q.add_argument("--out", help="JSON file to write (every cell's accuracies, per run)")
    q.add_argument("--plot", help="PNG file to write: one scatter per run")
    q.add_argument("--json", action="store_true", help="print the summary as JSON")
    q.add_argument("--no-progress", action="store_true")
    file_outputs(q, ("out", "plot"))
    q.set_defaults(func=cmd_bench_fidelity)


def _add_step_parser(bench_sub: argparse._SubParsersAction) -> None:
    q = bench_sub.add_parser("step", help="time one search step (arch + weight step) on "
                             "random data")
    q.add_argument("--algo", default="darts", help="search strategy (default darts)")
    q.add_argument("--channels", type=int, default=16, help="initial channels C (16)")
    q.add_argument("--layers", type=int, default=8, help="cells (8)")
    q.add_argument("--nodes", type=int, default=4, help="intermediate nodes per cell (4)")
    q.add_argument("--batch", type=int, default=64, help="images per batch (64)")
    q.add_argument("--resolution", type=int, default=32, help="image side (32)")
    q.add_argument("--steps", type=int, default=10, help="timed steps (10)")
    q.add_argument("--warmup", type=int, default=2, help="untimed steps first (2)")
    q.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    q.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    q.add_argument("--amp", default="auto", choices=AMP_CHOICES,
                   help="autocast dtype on CUDA (auto: bf16 where supported)")
    q.add_argument("--channels-last", dest="channels_last", action="store_true", default=None,
                   help="time the channels_last layout (the default, as the search lays it out)")
    q.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="time the NCHW layout")
    q.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                   help="torch.compile the network (optional mode, e.g. reduce-overhead)")
    q.add_argument("--mixed-op", choices=("plain", "batched"),
                   help="mixed-op formulation (search.mixed_op; default plain, as the search)")
    q.add_argument("--json", action="store_true",
                   help='print {"imgs_per_s": ..., "step_s": ...}')
    q.set_defaults(func=cmd_bench_step)


def cmd_bench_query(args: argparse.Namespace) -> None:
    from nasforge.benchmarks.tabular import TabularBenchmark

    text = args.genotype
    key_like = "~" in text and "(" not in text and not Path(text).exists()
    info = TabularBenchmark.load(args.bench).query(text if key_like else genotype_arg(text))
    print_json_or_lines(info, args.json)


def cmd_bench_nb101_convert(args: argparse.Namespace) -> None:
    from nasforge.benchmarks.nasbench101 import convert

    epochs = None if args.epochs == "all" else tuple(int(e) for e in args.epochs.split(","))
    info = convert(args.tfrecord, args.out, epochs=epochs, progress=not args.no_progress,
                   verify_crc=not args.no_crc)
    print(f"{info['architectures']:,} architectures ({info['records']:,} records, epochs "
          f"{info['epochs']}) -> {args.out}")


def cmd_bench_nb101_query(args: argparse.Namespace) -> None:
    from nasforge.benchmarks.nasbench101 import NasBench101Table, parse_matrix

    if args.arch and (args.matrix or args.ops):
        raise NasforgeError("give the cell as --arch or as --matrix/--ops, not both")
    if args.arch:
        from nasforge.spaces.nb101.space import read_arch

        space, arch = read_arch(args.arch)
        matrix, ops = space.to_spec(arch)
    elif args.matrix and args.ops:
        matrix, ops = parse_matrix(args.matrix), args.ops.split(",")
    else:
        raise NasforgeError("give a cell as --matrix ROWS --ops OPS, or --arch with a "
                            "NAS-Bench-1shot1 architecture, file or search run directory")
    info = NasBench101Table.load(args.table).query(matrix, ops, epochs=args.epochs)
    if args.json:
        print(json.dumps(info))
        return
    print(f"{info['hash']}: test acc {100 * info['test_accuracy']:.2f}%, validation acc "
          f"{100 * info['validation_accuracy']:.2f}% (mean of {info['repeats']} repeats, "
          f"{info['epochs']} epochs), {info['parameters']:,} parameters")


def cmd_bench_step(args: argparse.Namespace) -> None:
    from nasforge.benchmarks.step import time_search_step

    r = time_search_step(args.algo, args.channels, args.layers, args.batch, args.resolution,
                         args.steps, args.threads, args.device, args.nodes, amp=args.amp,
                         channels_last=args.channels_last, compile=args.compile or False,
                         warmup=args.warmup, mixed_op=args.mixed_op)
    if args.json:
        print(json.dumps({"imgs_per_s": r["imgs_per_s"], "step_s": r["step_s"]}))
        return
    layout = "channels_last" if r["channels_last"] else "NCHW"
    compiled = f", compiled ({r['compile']})" if r["compile"] else ""
    mixed = f", {r['mixed_op']} mixed ops" if r["mixed_op"] else ""
    print(f"{r['algo']} search step on {r['device']} ({r['amp']}, {layout}{mixed}{compiled}, "
          f"{r['threads']} thread{'s' * (r['threads'] != 1)}): {r['step_s']:.4f} s/step, "
          f"{r['imgs_per_s']:.1f} images/s "
          f"(batch {r['batch']}, mean of {r['steps']} steps after {args.warmup} warm-up)")


def cmd_bench_fidelity(args: argparse.Namespace) -> None:
    from nasforge.benchmarks.fidelity import plot_fidelity, supernet_fidelity
    from nasforge.checkpoint import atomic_write_json

    results = [supernet_fidelity(run, args.bench, split=args.split, bn=args.bn,
                                 progress=not args.no_progress) for run in args.runs]
    summary = [{k: v for k, v in r.items() if k != "rows"} for r in results]
    if args.out:
        atomic_write_json(args.out, results)
    if args.plot:
        plot_fidelity(results, args.plot)
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    for r in summary:
        best = r["supernet_best"]
        print(f"{r['run']} ({r['algo']}, {r['bench']}): Kendall tau {r['kendall_tau']:.3f}, "
              f"Spearman {r['spearman']:.3f} over {r['cells']} cells; the super-network's "
              f"top cell {best['key']} is at the table's {_ordinal(best['percentile'])} "
              f"percentile ({best['test_acc']:.2f}%)")


def _ordinal(value: float) -> str:
    """``61.3`` → ``61st``, ``12`` → ``12th``, ``22.9`` → ``23rd``."""
    n = round(value)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
