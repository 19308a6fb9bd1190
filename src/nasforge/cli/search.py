"""``nasforge search`` and ``nasforge derive``: architecture search and the genotype it
derives."""

from __future__ import annotations

import argparse

from nasforge.cli.common import (
    add_derive_args,
    add_run_dir_args,
    check_resume,
    config_from_args,
    file_outputs,
    number,
    resume_overrides,
)
from nasforge.errors import NasforgeError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from nasforge.derive import DERIVE_RULES
    from nasforge.search import STRATEGIES

    p = sub.add_parser("search", help="run an architecture search")
    p.add_argument("--algo", choices=STRATEGIES.names(), help="search algorithm")
    p.add_argument("--space", help="search space: darts, darts-no-none, s1..s4, 1shot1-ss1..3, ...")
    p.add_argument("--proxy", help="index file of the training subset to search on")
    p.add_argument("--proxy-method", help="select a proxy subset first with this selector")
    p.add_argument("--proxy-size", help="proxy size: a count or a fraction (default 0.1)")
    p.add_argument("--proxy-entropy", help="entropy list to select from (default: score it)")
    add_derive_args(p, "--derive", DERIVE_RULES.names())
    add_run_dir_args(p, "search")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("derive", help="derive a genotype from a search run's strengths")
    p.add_argument("run_dir")
    add_derive_args(p, "--rule", DERIVE_RULES.names(), default="argmax")
    p.add_argument("--out", help="also write the genotype to this file")
    file_outputs(p, ("out",))
    p.set_defaults(func=cmd_derive)


def _search_sets(args: argparse.Namespace) -> dict[str, object]:
    """The config keys of search's shortcut options (None: not given)."""
    return {"search.algo": args.algo, "search.space": args.space, "data.proxy": args.proxy,
            "proxy.method": args.proxy_method, "proxy.entropy": args.proxy_entropy,
            "proxy.size": number(args.proxy_size, "--proxy-size"),
            "search.rule": args.derive, "search.k": args.k,
            "search.act_all": True if args.act_all else None,
            "search.threshold": args.threshold}


def cmd_search(args: argparse.Namespace) -> None:
    from nasforge.search.loop import resume_search, run_search

    if args.resume:
        check_resume(args, args.resume, {
            "--algo": ("search.algo", args.algo), "--space": ("search.space", args.space),
            "--proxy": ("data.proxy", args.proxy),
            "--proxy-method": ("proxy.method", args.proxy_method),
            "--proxy-size": ("proxy.size", number(args.proxy_size, "--proxy-size")),
            "--proxy-entropy": ("proxy.entropy", args.proxy_entropy),
            "--derive": ("search.rule", args.derive), "--k": ("search.k", args.k),
            "--act-all": ("search.act_all", True if args.act_all else None),
            "--threshold": ("search.threshold", args.threshold)})
        results = resume_search(args.resume, resume_overrides(args))
    else:
        if not args.out:
            raise NasforgeError("search: --out RUN_DIR is required (or --resume RUN_DIR)")
        if args.proxy and args.proxy_method:
            raise NasforgeError("search: give either --proxy INDEX_FILE or --proxy-method, "
                                "not both")
        results = run_search(config_from_args(args, **_search_sets(args)), args.out,
                             force=args.force)
    print(results["genotype"])


def cmd_derive(args: argparse.Namespace) -> None:
    from nasforge.derive import rule_options
    from nasforge.search.loop import derive_from_run
    from nasforge.spaces.darts.genotype import format_genotype

    genotype = derive_from_run(args.run_dir, args.rule, **rule_options(args, flags=True))
    text = format_genotype(genotype)
    if args.out:
        from nasforge.checkpoint import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    print(text)
