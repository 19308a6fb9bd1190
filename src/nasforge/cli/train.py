"""``nasforge train``, ``evaluate`` and ``describe``: retrain a genotype, re-measure it and
size its network."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasforge.cli.common import (
    add_run_dir_args,
    check_resume,
    config_from_args,
    genotype_arg,
    print_json_or_lines,
    resume_overrides,
)
from nasforge.errors import NasforgeError


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="retrain a genotype from scratch")
    p.add_argument("--genotype", help="genotype string, file, known name or search run dir")
    add_run_dir_args(p, "training run")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="re-measure a trained model")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("describe", help="parameters and FLOPs of a genotype's network")
    p.add_argument("--genotype", required=True,
                   help="genotype string, file, known name or run dir")
    p.add_argument("--dataset", default="cifar10")
    p.add_argument("--channels", type=int)
    p.add_argument("--layers", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_describe)


def cmd_train(args: argparse.Namespace) -> None:
    from nasforge.train import resume_train, run_train

    if args.resume:
        also = []
        if args.genotype is not None:
            from nasforge.spaces.darts.genotype import format_genotype

            saved = (Path(args.resume) / "genotype.txt")
            given = format_genotype(genotype_arg(args.genotype))
            if not saved.is_file() or saved.read_text().strip() != given:
                also.append(f"--genotype (the run trains the genotype in {saved})")
        check_resume(args, args.resume, also=also)
        results = resume_train(args.resume, resume_overrides(args))
    else:
        if not args.out or not args.genotype:
            raise NasforgeError("train: --genotype G and --out RUN_DIR are required "
                                "(or --resume RUN_DIR)")
        cfg = config_from_args(args)
        results = run_train(cfg, genotype_arg(args.genotype), args.out, force=args.force)
    print(f"test accuracy: {results['test_acc']:.2f}%  params: {results['params_m']:.3f}M")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from nasforge.train import evaluate_run

    print_json_or_lines(evaluate_run(args.run_dir, split=args.split, device=args.device),
                        args.json)


def cmd_describe(args: argparse.Namespace) -> None:
    from nasforge.describe import describe_genotype

    info = describe_genotype(genotype_arg(args.genotype), dataset=args.dataset,
                             channels=args.channels, layers=args.layers)
    if args.json:
        print(json.dumps(info))
        return
    print(f"params: {info['params_m']:.2f}M  FLOPs: {info['flops_m']:.0f}M  "
          f"peak memory: {info['peak_memory_mb']:.0f}MB ({info['peak_memory_device']})  "
          f"({info['dataset']}, C={info['channels']}, {info['layers']} cells)")
