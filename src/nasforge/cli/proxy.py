"""``nasforge entropy`` and ``nasforge select``: score the training data, then pick a proxy
subset of it (chapter 3)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasforge.cli.common import (
    add_config_args,
    check_resume,
    config_from_args,
    file_outputs,
    number,
    resume_overrides,
    seed_arg,
)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("entropy", help="score every training example by entropy (chapter 3)")
    p.add_argument("--model", help="auxiliary model: resnet20, resnet32, resnet44, resnet56")
    p.add_argument("--checkpoint", help="score with these weights instead of training")
    p.add_argument("--out", required=True, help="entropy list to write (index, entropy, label)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--resume", action="store_true", help="continue a killed scoring run")
    add_config_args(p)
    p.set_defaults(func=cmd_entropy)

    p = sub.add_parser("select", help="select a proxy subset from an entropy list")
    p.add_argument("--entropy", required=True, help="entropy list (index, entropy, label)")
    p.add_argument("--method", required=True, help="selector, e.g. p1, random, bottom-k")
    p.add_argument("--size", required=True, help="a count (>= 1) or a fraction (< 1)")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--beta", type=float, default=0.5, help="beta selector's bottom share")
    p.add_argument("--bin-width", type=float, help="log10-entropy bin width")
    p.add_argument("--dataset", help="picks the default bin width (cifar10: 0.5, ...)")
    p.add_argument("--class-balanced", action="store_true")
    p.add_argument("--features", help="features .npy for k-center")
    p.add_argument("--forgetting", help="forgetting counts for the forgetting selector")
    p.add_argument("--out", required=True, help="index file to write")
    file_outputs(p, ("out",))
    p.set_defaults(func=cmd_select)


def cmd_entropy(args: argparse.Namespace) -> None:
    from nasforge.proxy.scoring import resume_entropy, run_dir_for, score_entropy

    if args.resume and args.checkpoint is None and \
            (run_dir_for(args.out) / "config.yaml").is_file():  # the saved config, not flags
        check_resume(args, args.out, {"--model": ("entropy.model", args.model)},
                     config_dir=run_dir_for(args.out), out_is_run=False)
        results = resume_entropy(Path(args.out), resume_overrides(args))
    else:
        cfg = config_from_args(args, **{"entropy.model": args.model})
        results = score_entropy(cfg, Path(args.out), checkpoint=args.checkpoint,
                                force=args.force, resume=args.resume)
    print(f"wrote {results['examples']} entropies to {args.out} "
          f"(auxiliary {results['model']}: test accuracy {results['test_acc']:.2f}%)")


def cmd_select(args: argparse.Namespace) -> None:
    from nasforge.proxy.selectors import select_to_file

    summary = select_to_file(
        args.entropy, args.method, number(args.size, "--size"), out=args.out, seed=args.seed,
        dataset=args.dataset, bin_width=args.bin_width, beta=args.beta,
        class_balanced=args.class_balanced, features_path=args.features,
        forgetting_path=args.forgetting)
    print(f"selected {summary['k']} examples with {args.method} -> {args.out}")
