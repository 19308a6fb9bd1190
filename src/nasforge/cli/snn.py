"""``nasforge snn ...``: spiking networks (AutoSNN, chapter 5): size one, train the
super-network, search it, train the result, and the quality of the macro variants."""

from __future__ import annotations

import argparse
import json

from nasforge.cli import snn_energy as energy
from nasforge.cli.common import (
    RECOMPUTE_HELP,
    Parser,
    add_config_args,
    add_run_dir_args,
    check_resume,
    config_from_args,
    is_dir,
    lams,
    resume_overrides,
    seed_arg,
)
from nasforge.errors import NasforgeError

SNN_SPACES = ["default", "v2-8tbd", "tbd-before-pool"]
SNN_KEYS = ("channels", "timesteps", "epochs", "variant", "space", "neuron", "loss")
"""The ``snn.*`` config keys with a shortcut option (``--channels`` ...)."""


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("snn", help="spiking networks (AutoSNN, chapter 5)")
    snn_sub = p.add_subparsers(dest="snn_command", required=True, parser_class=Parser)
    q = snn_sub.add_parser("describe", help="parameters, neurons and spikes of an SNN")
    q.add_argument("--arch", help="block names, e.g. SRB_k5,SRB_k5,skip,SRB_k3,SRB_k5")
    q.add_argument("--model", choices=["cifarnet-fang", "cifarnet-wu", "resnet11-lee",
                                       "resnet19-zheng"],
                   help="a hand-crafted baseline of Table 5.4 instead of --arch")
    q.add_argument("--channels", type=int, default=16)
    q.add_argument("--dataset", default="cifar10",
                   choices=["cifar10", "cifar100", "svhn", "tiny-imagenet", "cifar10-dvs",
                            "dvs128-gesture", "digits"])
    q.add_argument("--timesteps", type=int, default=8)
    q.add_argument("--variant", choices=["v1", "v2", "v3"])
    q.add_argument("--space", default="default", choices=SNN_SPACES)
    q.add_argument("--measure", action="store_true", help="count spikes on a small batch")
    q.add_argument("--batch", type=int, default=4)
    q.add_argument("--convention", default="thesis", choices=["thesis", "neurons"])
    energy.add_profile_arg(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_snn_describe)

    q = snn_sub.add_parser("supernet", help="train the AutoSNN super-network (uniform paths)")
    add_run_dir_args(q, "super-network training")
    _add_snn_args(q)
    q.set_defaults(func=cmd_snn_supernet)

    q = snn_sub.add_parser("search", help="spike-aware evolutionary search on a super-network")
    q.add_argument("--supernet", help="run directory of `snn supernet`")
    q.add_argument("--out", help="search directory (re-run to resume)")
    q.add_argument("--resume", metavar="DIR",
                   help="continue a killed search in DIR with its saved settings")
    q.add_argument("--lam", action="append", default=[],
                   help="fitness exponent (repeatable or comma list; default -0.08)")
    q.add_argument("--algo", choices=["evolution", "random"],
                   help="evolution (Algorithm 1, default) or random (WS + random search)")
    q.add_argument("--config", help="search settings (snn.lams, snn.search_algo, ...)")
    q.add_argument("--seed", type=seed_arg)
    q.add_argument("--device")
    q.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="e.g. snn.rounds=5")
    q.add_argument("--force", action="store_true", help="discard an existing search directory")
    q.add_argument("--no-progress", action="store_true")
    energy.add_search_args(q)
    q.set_defaults(func=cmd_snn_search)

    q = snn_sub.add_parser("train", help="train a searched SNN or a hand-crafted baseline")
    q.add_argument("--arch", help="block names, or a `snn search` directory (its top-1)")
    q.add_argument("--lam", action="append", default=[],
                   help="with --arch SEARCH_DIR: the lambda whose top-1 to train")
    q.add_argument("--model", help="hand-crafted baseline: cifarnet-wu, cifarnet-fang, "
                   "resnet11-lee, resnet19-zheng")
    add_run_dir_args(q, "SNN training")
    _add_snn_args(q)
    energy.add_profile_arg(q)
    q.set_defaults(func=cmd_snn_train)

    q = snn_sub.add_parser("quality", help="train random SNNs per macro variant (Fig. 5.8)")
    q.add_argument("--out", required=True, help="study directory (re-run to resume)")
    q.add_argument("--samples", type=int, help="random architectures per variant (100)")
    q.add_argument("--variants", help="comma list of default, v1, v2, v3 (default: all)")
    q.add_argument("--force", action="store_true", help=RECOMPUTE_HELP)
    add_config_args(q)
    _add_snn_args(q)
    q.set_defaults(func=cmd_snn_quality)


def _add_snn_args(p: argparse.ArgumentParser) -> None:
    """Shortcuts for the most used ``snn.*`` config keys."""
    p.add_argument("--channels", type=int, help="initial channels C (default 16)")
    p.add_argument("--timesteps", type=int, help="time steps T (default 8)")
    p.add_argument("--epochs", type=int, help="training epochs (default 600)")
    p.add_argument("--variant", choices=["v1", "v2", "v3"], help="macro variant (Table 5.1)")
    p.add_argument("--space", choices=SNN_SPACES, help="enlarged spaces (Table 5.9)")
    p.add_argument("--neuron", choices=["plif", "relu"], help="relu: the DNN version (§5.5.2)")
    p.add_argument("--loss", choices=["mse", "ce"], help="loss on firing rates (default mse)")


def _snn_sets(args: argparse.Namespace) -> dict[str, object]:
    """The ``snn.*`` options shared by the SNN stages, as config keys."""
    return {f"snn.{k}": getattr(args, k, None) for k in SNN_KEYS}


def _snn_options(args: argparse.Namespace) -> dict[str, tuple[str, object]]:
    """The ``snn.*`` shortcut options as ``--option: (key, value)`` (for ``--resume``)."""
    return {f"--{key.split('.')[1]}": (key, value) for key, value in _snn_sets(args).items()}


def _searched_arch(args: argparse.Namespace) -> str | None:
    """``--arch``, or the top-1 of the search (of ``--lam``) when it names a search dir."""
    from nasforge.snn.search import best_arch

    if args.arch is not None and is_dir(args.arch):
        return best_arch(args.arch, lams(args.lam)[0] if args.lam else None)
    return args.arch


def cmd_snn_describe(args: argparse.Namespace) -> None:
    from nasforge.snn import describe_snn

    if (args.arch is None) == (args.model is None):
        raise NasforgeError("snn describe: give --arch BLOCKS (a searched architecture) or "
                            "--model NAME (a hand-crafted baseline), not both")
    profile = energy.check_profile(args.energy_profile)
    energy.refuse_profile_without_measure(args)
    if args.model is not None:
        from nasforge.snn.baselines import describe_snn_model

        if args.variant is not None or args.space != "default":
            raise NasforgeError("snn describe: --variant and --space shape AutoSNN's "
                                "backbone; a --model baseline has its own layers")
        info = describe_snn_model(args.model, args.channels, args.dataset, args.timesteps,
                                  measure=args.measure, batch=args.batch,
                                  convention=args.convention, profile=profile)
    else:
        info = describe_snn(args.arch, args.channels, args.dataset, args.timesteps,
                            measure=args.measure, batch=args.batch,
                            convention=args.convention, variant=args.variant,
                            space=args.space, profile=profile)
    print(json.dumps(info) if args.json else energy.describe_text(info))


def cmd_snn_supernet(args: argparse.Namespace) -> None:
    from nasforge.runtime import load_run_config
    from nasforge.snn.supernet import resume_supernet, run_supernet

    # --epochs is the super-network's own budget here (snn.supernet_epochs)
    sets = {("snn.supernet_epochs" if k == "snn.epochs" else k): v
            for k, v in _snn_sets(args).items()}
    if args.resume:
        options = _snn_options(args)
        try:  # the run's own budget if its config set one (else snn.epochs applied)
            own_budget = load_run_config(args.resume).snn.supernet_epochs is not None
        except NasforgeError:
            own_budget = False
        if own_budget:
            options["--epochs"] = ("snn.supernet_epochs", options["--epochs"][1])
        check_resume(args, args.resume, options)
        results = resume_supernet(args.resume, resume_overrides(args))
    else:
        if not args.out:
            raise NasforgeError("snn supernet: --out RUN_DIR is required (or --resume RUN_DIR)")
        results = run_supernet(config_from_args(args, **sets), args.out, force=args.force)
    n_avg = ("no spikes (ReLU network)" if results["n_avg"] is None else
             f"N_avg = {results['n_avg']:,.1f} spikes per image ({results['convention']} "
             "convention)")
    print(f"super-network trained: {n_avg}; random-path val acc "
          f"{results['val_acc_random_path']:.2f}%")


def cmd_snn_search(args: argparse.Namespace) -> None:
    from nasforge.snn.search import resume_snn_search, run_snn_search

    if args.resume:
        given = [option for option, value in (
            ("--supernet", args.supernet), ("--out", args.out), ("--lam", args.lam),
            ("--algo", args.algo), ("--config", args.config), ("--seed", args.seed),
            ("--device", args.device), ("--set", args.overrides), ("--force", args.force))
            if value is not None and value is not False and value != []]
        given += energy.given_search_options(args)
        if given:
            raise NasforgeError(f"snn search --resume DIR continues with the search's saved "
                                f"settings and cannot honour {', '.join(given)}; drop "
                                f"{'it' if len(given) == 1 else 'them'} (or re-run the "
                                "command that started it, with the same settings)")
        energy.print_searches(resume_snn_search(args.resume))
        return
    if not args.supernet or not args.out:
        raise NasforgeError("snn search: --supernet RUN_DIR and --out DIR are required (or "
                            "--resume DIR)")
    sets = {"snn.lams": lams(args.lam), "snn.search_algo": args.algo,
            "run.seed": args.seed, "run.device": args.device,
            "run.progress": False if args.no_progress else None, **energy.search_sets(args)}
    overrides = [f"{k}={json.dumps(v)}" for k, v in sets.items() if v is not None]
    energy.print_searches(run_snn_search(args.supernet, args.out, [*overrides, *args.overrides],
                                         force=args.force, config=args.config))


def cmd_snn_train(args: argparse.Namespace) -> None:
    from nasforge.snn.train import resume_snn_train, run_snn_train

    searched = args.arch is not None and is_dir(args.arch)
    if args.resume:
        also = [] if searched or not args.lam else [
            "--lam (it picks a search in --arch SEARCH_DIR)"]
        arch = _searched_arch(args)
        check_resume(args, args.resume, {**_snn_options(args), "--arch": ("snn.arch", arch),
                                         "--model": ("snn.model", args.model),
                                         "--energy-profile": ("snn.energy_profile",
                                                              args.energy_profile)}, also=also)
        results = resume_snn_train(args.resume, resume_overrides(args))
    else:
        if not args.out:
            raise NasforgeError("snn train: --out RUN_DIR is required (or --resume RUN_DIR)")
        if args.lam and not searched:
            raise NasforgeError("snn train: --lam picks a search in --arch SEARCH_DIR; "
                                "give --arch a search run directory")
        cfg = config_from_args(args, **_snn_sets(args), **{"snn.arch": _searched_arch(args),
                                                            "snn.model": args.model,
                                                            "snn.energy_profile":
                                                                args.energy_profile})
        results = run_snn_train(cfg, args.out, force=args.force)
    spikes = ("no spikes (ReLU network)" if results["spikes"] is None
              else f"{results['spikes']:,.0f} spikes per image")
    print(f"{results['label']}: test acc {results['test_acc']:.2f}%, {spikes}, "
          f"{results['params_m']:.3f}M params{energy.train_text(results)}")


def cmd_snn_quality(args: argparse.Namespace) -> None:
    from nasforge.snn.quality import run_snn_quality

    variants = args.variants.split(",") if args.variants else None
    cfg = config_from_args(args, **_snn_sets(args), **{"snn.samples": args.samples,
                                                        "snn.variants": variants})
    results = run_snn_quality(cfg, args.out, force=args.force)
    for variant, row in results["variants"].items():
        print(f"{variant}: mean test acc {row['mean_acc']:.2f}%, mean spikes "
              f"{row['mean_spikes']:,.0f} over {row['samples']} random SNNs")

