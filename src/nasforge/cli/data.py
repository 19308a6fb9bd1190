"""``nasforge data ...`` and ``nasforge config ...``: the data sets and configs nasforge
knows."""

from __future__ import annotations

import argparse

from nasforge.cli.common import Parser, print_json_or_lines


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="data sets")
    data_sub = p.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    q = data_sub.add_parser("info", help="sizes, shapes and classes of a data set")
    q.add_argument("name")
    q.add_argument("--data-root")
    q.add_argument("--timesteps", type=int, default=8, help="DVS sets: frames per sample")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_data_info)
    q = data_sub.add_parser("list", help="registered data sets")
    q.set_defaults(func=cmd_data_list)

    p = sub.add_parser("config", help="configs")
    cfg_sub = p.add_subparsers(dest="config_command", required=True, parser_class=Parser)
    q = cfg_sub.add_parser("show", help="print a resolved config")
    q.add_argument("--config")
    q.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE")
    q.set_defaults(func=cmd_config_show)
    q = cfg_sub.add_parser("list", help="shipped configs")
    q.set_defaults(func=cmd_config_list)
    q = cfg_sub.add_parser("options", help="each search algorithm's own settings")
    q.add_argument("--algo", help="one algorithm (default: every algorithm's)")
    q.set_defaults(func=cmd_config_options)


def cmd_data_info(args: argparse.Namespace) -> None:
    from nasforge.snn.data import snn_dataset_info

    print_json_or_lines(snn_dataset_info(args.name, args.data_root, timesteps=args.timesteps),
                        args.json)


def cmd_data_list(args: argparse.Namespace) -> None:
    from nasforge.snn.data import snn_dataset_names

    print("\n".join(snn_dataset_names()))


def cmd_config_show(args: argparse.Namespace) -> None:
    import yaml

    from nasforge.config import config_to_dict, load_config

    cfg = load_config(args.config, args.overrides)
    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")


def cmd_config_list(args: argparse.Namespace) -> None:
    from nasforge.config import shipped_config_lines

    for line in shipped_config_lines():
        print(line)


def cmd_config_options(args: argparse.Namespace) -> None:
    from nasforge.search import algorithm_options

    rows = algorithm_options(args.algo)
    if not rows:
        print(f"{args.algo} has no settings of its own: only those every search reads "
              "(nasforge config show)")
    group = None
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            print(f"{group} ({', '.join(row['algorithms'])}):")
        print(f"  {row['key']} = {row['default']!r}  {row['help']}")
