"""``nasforge zc ...``: zero-cost proxies — score untrained architectures, and check how
well each proxy ranks a tabular benchmark (docs/zero-cost.md)."""

from __future__ import annotations

import argparse
import json

from nasforge.cli.common import Parser, file_outputs, seed_arg


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zc", help="zero-cost proxies: score architectures without training")
    zc_sub = p.add_subparsers(dest="zc_command", required=True, parser_class=Parser)
    q = zc_sub.add_parser("score", help="score random architectures of a space by proxies")
    q.add_argument("--space", required=True,
                   help="darts, extcell-K, 1shot1-ss1..3, tabular-digits or snn")
    q.add_argument("--samples", type=int, required=True, help="architectures to draw")
    q.add_argument("--proxies", help="comma list (default: all registered proxies)")
    q.add_argument("--dataset", default="digits", help="data set of the scoring batch")
    q.add_argument("--batch", type=int, help="images per proxy (default: each paper's)")
    q.add_argument("--seed", type=seed_arg, default=0,
                   help="fixes the architectures, the batch and every initialisation")
    q.add_argument("--device", default="auto",
                   help="where the proxies run: auto (CUDA when present), cpu, cuda, cuda:N")
    q.add_argument("--out", help="CSV file to write (index,space,arch,<proxies>,seconds)")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_zc_score)
    q = zc_sub.add_parser("eval", help="correlation of every proxy with measured accuracy: "
                          "a tabular benchmark, NAS-Bench-101 or trained SNNs")
    q.add_argument("--bench", help="tabular benchmark name or file (default tabular-digits)")
    q.add_argument("--nb101", metavar="TABLE",
                   help="NAS-Bench-101 table (bench nb101-convert): score --samples random "
                        "cells of --space (1shot1-ss1..3)")
    q.add_argument("--snn-quality", metavar="DIR",
                   help="an `snn quality` study: its trained SNNs, scored untrained")
    q.add_argument("--space", default="1shot1-ss3", help="--nb101: 1shot1-ss1..3")
    q.add_argument("--samples", type=int, default=100, help="--nb101: cells to draw")
    q.add_argument("--dataset", default="cifar10", help="--nb101: data set of the batch")
    q.add_argument("--channels", type=int, default=16, help="--nb101: initial channels")
    q.add_argument("--layers", type=int, default=9, help="--nb101: cells of the network")
    q.add_argument("--data-root", help="directory holding the data sets (or $NASFORGE_DATA)")
    q.add_argument("--proxies", help="comma list (default: all registered proxies)")
    q.add_argument("--batch", type=int, help="images per proxy (default: each paper's)")
    q.add_argument("--seed", type=seed_arg, default=0, help="fixes the batch and initialisations")
    q.add_argument("--limit", type=int, help="only the first N cells in key order")
    q.add_argument("--device", default="auto",
                   help="where the proxies run: auto (CUDA when present), cpu, cuda, cuda:N")
    q.add_argument("--out", help="JSON file to write (correlations and every cell's scores)")
    q.add_argument("--json", action="store_true", help="print the correlations as JSON")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_zc_eval)


def cmd_zc_score(args: argparse.Namespace) -> None:
    from nasforge.zc import zc_score
    from nasforge.zc.score import resolve_proxies

    rows = zc_score(args.space, args.samples, args.proxies, args.dataset, args.seed,
                    args.out, batch=args.batch, device=args.device)
    names = resolve_proxies(args.proxies)
    print("\t".join(["index", "arch", *names]))
    for row in rows:
        print("\t".join([str(row["index"]), row["arch"],
                         *(f"{row[n]:.6g}" for n in names)]))
    if args.out:
        print(f"wrote {len(rows)} rows to {args.out}")


def cmd_zc_eval(args: argparse.Namespace) -> None:
    from nasforge.errors import NasforgeError
    from nasforge.zc import format_table, zc_eval
    from nasforge.zc.evaluate import zc_eval_nb101, zc_eval_snn

    given = [f for f, v in (("--bench", args.bench), ("--nb101", args.nb101),
                            ("--snn-quality", args.snn_quality)) if v is not None]
    if len(given) > 1:
        raise NasforgeError(f"zc eval takes one of --bench, --nb101 or --snn-quality; got "
                            f"{' and '.join(given)}")
    if args.nb101 is not None:
        result = zc_eval_nb101(args.nb101, args.space, args.samples, args.proxies, args.seed,
                               args.out, dataset=args.dataset, batch=args.batch,
                               channels=args.channels, layers=args.layers,
                               data_root=args.data_root, device=args.device)
        what = f"NAS-Bench-101, {args.space}: {result['cells']} cells"
    elif args.snn_quality is not None:
        result = zc_eval_snn(args.snn_quality, args.proxies, args.seed, args.out,
                             batch=args.batch, data_root=args.data_root,
                             device=args.device)
        what = f"{args.snn_quality}: {result['cells']} networks"
    else:
        bench = args.bench or "tabular-digits"
        result = zc_eval(bench, args.proxies, args.seed, args.out, batch=args.batch,
                         limit=args.limit, device=args.device)
        what = f"{bench}: {result['cells']} cells"
    if args.json:
        print(json.dumps(result["correlations"], indent=2))
        return
    print(f"{what}, seed {args.seed} ({result['seconds']:.0f} s)")
    print(format_table(result))
