"""``nasforge plot ...``: pictures of proxy data, op strengths, loss landscapes and spiking
networks. Each handler hands its files to a function of :mod:`nasforge.analysis` and prints
the PNG it wrote."""

from __future__ import annotations

import argparse

from nasforge.cli.common import (
    Parser,
    add_derive_args,
    file_outputs,
    is_dir,
    lams,
    positive_int,
    seed_arg,
)
from nasforge.errors import NasforgeError

SNN_SPACES = ["default", "v2-8tbd", "tbd-before-pool"]


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="pictures: proxy data, op strengths, loss landscapes")
    plot_sub = p.add_subparsers(dest="plot_command", required=True, parser_class=Parser)
    _add_proxy_plots(plot_sub)
    _add_search_plots(plot_sub)
    _add_snn_plots(plot_sub)


def _add_proxy_plots(plot_sub: argparse._SubParsersAction) -> None:
    q = plot_sub.add_parser("entropy", help="entropy histogram of the data and selections")
    q.add_argument("--entropy", required=True)
    q.add_argument("--selection", action="append", default=[], help="index file (repeatable)")
    q.add_argument("--bin-width", type=float)
    q.add_argument("--dataset")
    q.add_argument("--out", required=True, help="PNG to write")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_entropy)
    q = plot_sub.add_parser("classes", help="class proportions of selections")
    q.add_argument("--entropy", required=True, help="entropy list (for the labels)")
    q.add_argument("--selection", action="append", default=[])
    q.add_argument("--out", required=True)
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_classes)
    q = plot_sub.add_parser("tsne", help="t-SNE of features with selections highlighted")
    q.add_argument("--features", required=True)
    q.add_argument("--selection", action="append", default=[])
    q.add_argument("--seed", type=seed_arg, default=0)
    q.add_argument("--out", required=True)
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_tsne)


def _add_search_plots(plot_sub: argparse._SubParsersAction) -> None:
    from nasforge.derive import DERIVE_RULES

    q = plot_sub.add_parser("strengths", help="heatmaps of a search run's op strengths")
    q.add_argument("run_dir")
    add_derive_args(q, "--rule", DERIVE_RULES.names())
    q.add_argument("--genotype", help="outline this genotype's ops (file, name or text)")
    q.add_argument("--values", action=argparse.BooleanOptionalAction, default=None,
                   help="write the values in the cells (default: when the grid is small)")
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_strengths)
    q = plot_sub.add_parser("landscape", help="validation loss over op strengths (Fig. 4.6)")
    q.add_argument("run_dir", nargs="+", help="search run directories (one panel each)")
    q.add_argument("--points", type=int, default=21, help="grid points per axis")
    q.add_argument("--radius", type=float, default=1.0, help="grid half-width")
    q.add_argument("--batches", type=int, default=2, help="validation batches per point")
    q.add_argument("--batch-size", type=positive_int)
    q.add_argument("--seed", type=seed_arg, default=0, help="seed of the random direction")
    q.add_argument("--device", default="cpu")
    q.add_argument("--label", action="append", default=[], help="panel title (repeatable)")
    q.add_argument("--json", help="also write the measured grid as JSON")
    q.add_argument("--out", required=True, help="PNG to write")
    file_outputs(q, ("out", "json"))
    q.set_defaults(func=cmd_plot_landscape)


def _add_snn_plots(plot_sub: argparse._SubParsersAction) -> None:
    q = plot_sub.add_parser("snn-pareto", help="SNN accuracy vs spikes (Figs. 5.1, 5.12)")
    q.add_argument("run_dir", nargs="+", help="`snn train` run directories")
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_snn_pareto)
    q = plot_sub.add_parser("snn-layers", help="spikes and firing rates per layer (Fig. 5.7)")
    q.add_argument("run_dir", nargs="+", help="`snn train` run directories")
    q.add_argument("--label", action="append", default=[], help="series name (repeatable)")
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_snn_layers)
    q = plot_sub.add_parser("snn-search", help="an evolutionary search's evaluations")
    q.add_argument("search_dir", help="`snn search` directory")
    q.add_argument("--lam", action="append", default=[], help="which search (default: first)")
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_snn_search)
    q = plot_sub.add_parser("snn-energy", help="accuracy vs energy of an snn search's paths")
    q.add_argument("search_dir", help="`snn search` directory")
    q.add_argument("--lam", action="append", default=[], help="which search (default: first)")
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_snn_energy)
    q = plot_sub.add_parser("snn-arch", help="block diagram of an SNN (Figs. 5.11, 5.13)")
    q.add_argument("--arch", required=True, help="block names or an `snn search` directory")
    q.add_argument("--variant", choices=["v1", "v2", "v3"])
    q.add_argument("--space", default="default", choices=SNN_SPACES)
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_snn_arch)


def cmd_plot_entropy(args: argparse.Namespace) -> None:
    from nasforge.analysis.proxy_plots import plot_entropy_files

    print(plot_entropy_files(args.entropy, args.selection, args.out, dataset=args.dataset,
                             bin_width=args.bin_width))


def cmd_plot_classes(args: argparse.Namespace) -> None:
    from nasforge.analysis.proxy_plots import plot_class_files

    print(plot_class_files(args.entropy, args.selection, args.out))


def cmd_plot_tsne(args: argparse.Namespace) -> None:
    from nasforge.analysis.proxy_plots import plot_tsne_files

    print(plot_tsne_files(args.features, args.selection, args.out, seed=args.seed))


def cmd_plot_strengths(args: argparse.Namespace) -> None:
    from nasforge.analysis.strengths_plot import plot_strengths
    from nasforge.derive import rule_options

    if not args.rule and (args.k is not None or args.act_all):
        raise NasforgeError("--k and --act-all need --rule")
    options = rule_options(args, flags=True) if args.rule else {}
    print(plot_strengths(args.run_dir, args.out, title=args.title, genotype=args.genotype,
                         rule=args.rule, annotate=args.values, **options))


def cmd_plot_landscape(args: argparse.Namespace) -> None:
    from nasforge.analysis.landscape import plot_landscape_runs

    print(plot_landscape_runs(args.run_dir, args.out, labels=args.label or None,
                              json_path=args.json, points=args.points, radius=args.radius,
                              batches=args.batches, batch_size=args.batch_size,
                              seed=args.seed, device=args.device))


def cmd_plot_snn_pareto(args: argparse.Namespace) -> None:
    from nasforge.analysis.snn_plots import plot_pareto_runs

    print(plot_pareto_runs(args.run_dir, args.out, title=args.title))


def cmd_plot_snn_layers(args: argparse.Namespace) -> None:
    from nasforge.analysis.snn_plots import plot_layer_runs

    print(plot_layer_runs(args.run_dir, args.out, labels=args.label, title=args.title))


def cmd_plot_snn_search(args: argparse.Namespace) -> None:
    from nasforge.analysis.snn_plots import plot_search_run

    lam = lams(args.lam)[0] if args.lam else None
    print(plot_search_run(args.search_dir, args.out, lam=lam, title=args.title))


def cmd_plot_snn_energy(args: argparse.Namespace) -> None:
    from nasforge.analysis.energy_plot import plot_search_energy

    lam = lams(args.lam)[0] if args.lam else None
    print(plot_search_energy(args.search_dir, args.out, lam=lam, title=args.title))


def cmd_plot_snn_arch(args: argparse.Namespace) -> None:
    from nasforge.analysis.snn_plots import plot_snn_architecture
    from nasforge.snn.search import best_arch

    arch = best_arch(args.arch) if is_dir(args.arch) else args.arch
    print(plot_snn_architecture(arch, args.out, variant=args.variant, space=args.space,
                                title=args.title or arch))
