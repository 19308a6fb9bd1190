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
    q.add_argument("--out", help="CSV file to write (index,space,arch,<proxies>,seconds)")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_zc_score)
    q = zc_sub.add_parser("eval", help="correlation of every proxy with a tabular benchmark")
    q.add_argument("--bench", default="tabular-digits",
                   help="tabular benchmark name or file (default tabular-digits)")
    q.add_argument("--proxies", help="comma list (default: all registered proxies)")
    q.add_argument("--batch", type=int, help="images per proxy (default: each paper's)")
    q.add_argument("--seed", type=seed_arg, default=0, help="fixes the batch and initialisations")
    q.add_argument("--limit", type=int, help="only the first N cells in key order")
    q.add_argument("--out", help="JSON file to write (correlations and every cell's scores)")
    q.add_argument("--json", action="store_true", help="print the correlations as JSON")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_zc_eval)


def cmd_zc_score(args: argparse.Namespace) -> None:
    from nasforge.zc import zc_score
    from nasforge.zc.score import resolve_proxies

    rows = zc_score(args.space, args.samples, args.proxies, args.dataset, args.seed,
                    args.out, batch=args.batch)
    names = resolve_proxies(args.proxies)
    print("\t".join(["index", "arch", *names]))
    for row in rows:
        print("\t".join([str(row["index"]), row["arch"],
                         *(f"{row[n]:.6g}" for n in names)]))
    if args.out:
        print(f"wrote {len(rows)} rows to {args.out}")


def cmd_zc_eval(args: argparse.Namespace) -> None:
    from nasforge.zc import format_table, zc_eval

    result = zc_eval(args.bench, args.proxies, args.seed, args.out, batch=args.batch,
                     limit=args.limit)
    if args.json:
        print(json.dumps(result["correlations"], indent=2))
        return
    print(f"{args.bench}: {result['cells']} cells, seed {args.seed} "
          f"({result['seconds']:.0f} s)")
    print(format_table(result))
