"""The ``nasforge`` command line: a thin layer over the library's stage functions.

Every user mistake is a :class:`~nasforge.errors.NasforgeError`, printed as one line on
stderr with exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from nasforge.config import AMP_CHOICES
from nasforge.errors import NasforgeError


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # main() adds the "nasforge: error:" prefix; keep only the subcommand ("snn train")
        command = self.prog.removeprefix("nasforge").strip()
        raise NasforgeError(f"{command}: {message}" if command else message)


def _seed_arg(text: str) -> int:
    """argparse type of every ``--seed``: an integer 0..2**32-1 (NumPy's seed range)."""
    from nasforge.config import SEED_MAX

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}; allowed 0..{SEED_MAX}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range; allowed 0..{SEED_MAX}")
    return value


def _positive_int(text: str) -> int:
    """argparse type of a count or size that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file or shipped config name")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="dotted override, e.g. search.epochs=5")
    p.add_argument("--dataset", help="data set name (default: digits)")
    p.add_argument("--data-root", help="directory holding the data sets (or $NASFORGE_DATA)")
    p.add_argument("--seed", type=_seed_arg, help="random seed")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _file_outputs(p: argparse.ArgumentParser, dests: tuple[str, ...]) -> None:
    """A command writing the files named by options ``dests``: an existing file is
    replaced only with ``--force`` (checked by ``_run`` before the command starts)."""
    if not any("--force" in a.option_strings for a in p._actions):
        p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(new_files=dests)


def _add_run_dir_args(p: argparse.ArgumentParser, what: str) -> None:
    """--out/--force/--resume and the config options of a long-running stage."""
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--resume", metavar="RUN_DIR", help=f"continue a killed {what}")
    _add_config_args(p)


def _add_snn_args(p: argparse.ArgumentParser) -> None:
    """Shortcuts for the most used ``snn.*`` config keys."""
    p.add_argument("--channels", type=int, help="initial channels C (default 16)")
    p.add_argument("--timesteps", type=int, help="time steps T (default 8)")
    p.add_argument("--epochs", type=int, help="training epochs (default 600)")
    p.add_argument("--variant", choices=["v1", "v2", "v3"], help="macro variant (Table 5.1)")
    p.add_argument("--space", choices=["default", "v2-8tbd", "tbd-before-pool"],
                   help="enlarged spaces (Table 5.9)")
    p.add_argument("--neuron", choices=["plif", "relu"], help="relu: the DNN version (§5.5.2)")
    p.add_argument("--loss", choices=["mse", "ce"], help="loss on firing rates (default mse)")


def _add_derive_args(p: argparse.ArgumentParser, flag: str, rules: list[str],
                     default: str | None = None) -> None:
    """The derivation rule (``--rule`` or ``--derive``) and the top-k options."""
    p.add_argument(flag, dest="derive" if flag == "--derive" else "rule", default=default,
                   choices=rules, help="derivation rule (default: argmax)")
    p.add_argument("--k", type=int, help="topk: ops kept over both cells together")
    p.add_argument("--act-all", action="store_true",
                   help="topk: normalise by each node's strongest op so every node stays active")
    p.add_argument("--threshold", type=float,
                   help="threshold (FairDARTS): keep an op only at strength >= this (0.85)")


def _config_from_args(args: argparse.Namespace, **extra_sets: object):
    from nasforge.config import load_config

    sets: list[str] = []
    if args.dataset:
        sets.append(f"data.dataset={args.dataset}")
    if args.data_root:
        sets.append(f"data.root={json.dumps(args.data_root)}")
    if args.seed is not None:
        sets.append(f"run.seed={args.seed}")
    if args.device:
        sets.append(f"run.device={args.device}")
    if args.no_progress:
        sets.append("run.progress=false")
    for key, value in extra_sets.items():
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    return load_config(args.config, [*sets, *args.overrides])


def _resume_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` and the shortcut options of a ``--resume``: checked against the saved config
    by :func:`nasforge.runtime.resume_config` (only learning rates and run options may
    change)."""
    sets: list[str] = []
    if getattr(args, "dataset", None):
        sets.append(f"data.dataset={args.dataset}")
    if getattr(args, "data_root", None):
        sets.append(f"data.root={json.dumps(args.data_root)}")
    if getattr(args, "seed", None) is not None:
        sets.append(f"run.seed={args.seed}")
    if getattr(args, "device", None):
        sets.append(f"run.device={args.device}")
    if getattr(args, "no_progress", False):
        sets.append("run.progress=false")
    return [*sets, *args.overrides]


def _check_resume(args: argparse.Namespace, run_dir: str | Path,
                  options: dict[str, tuple[str, object]] | None = None, *,
                  config_dir: Path | None = None, also: list[str] | None = None,
                  out_is_run: bool = True) -> None:
    """Refuse the options of a ``--resume`` that it cannot honour, naming them in one line:
    ``options`` maps an option (``--algo``) to its config key and the value given (None:
    not given); it is refused when it differs from the run's saved value. ``--config`` is
    refused when it resolves to another config; ``--out`` (unless it names the run itself,
    ``out_is_run``) and ``--force`` always. Learning rates and run options go through
    ``--set`` (:func:`nasforge.runtime.resume_config`)."""
    from nasforge.runtime import check_resume_options

    refused = list(also or [])
    out = getattr(args, "out", None)
    if out_is_run and out is not None and Path(out).resolve() != Path(run_dir).resolve():
        refused.append(f"--out {out} (the run continues in {run_dir})")
    if getattr(args, "force", False):
        refused.append("--force (it would start the run again)")
    given = {"--dataset": ("data.dataset", getattr(args, "dataset", None)),
             "--seed": ("run.seed", getattr(args, "seed", None)), **(options or {})}
    sets = {opt: f"{key}={json.dumps(value)}" for opt, (key, value) in given.items()
            if value is not None}
    config = getattr(args, "config", None)
    check_resume_options(run_dir, [(opt, [text]) for opt, text in sets.items()],
                         config=config, config_overrides=[*sets.values(),
                                                          *getattr(args, "overrides", [])],
                         config_dir=config_dir, also=refused)


def _print_json_or_lines(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2))
        return
    for key, value in obj.items():
        print(f"{key}: {value}")


def cmd_search(args: argparse.Namespace) -> None:
    from nasforge.search.loop import resume_search, run_search

    if args.resume:
        _check_resume(args, args.resume, {
            "--algo": ("search.algo", args.algo), "--space": ("search.space", args.space),
            "--proxy": ("data.proxy", args.proxy),
            "--proxy-method": ("proxy.method", args.proxy_method),
            "--proxy-size": ("proxy.size", _number(args.proxy_size, "--proxy-size")),
            "--proxy-entropy": ("proxy.entropy", args.proxy_entropy),
            "--derive": ("search.rule", args.derive), "--k": ("search.k", args.k),
            "--act-all": ("search.act_all", True if args.act_all else None),
            "--threshold": ("search.threshold", args.threshold)})
        results = resume_search(args.resume, _resume_overrides(args))
    else:
        if not args.out:
            raise NasforgeError("search: --out RUN_DIR is required (or --resume RUN_DIR)")
        if args.proxy and args.proxy_method:
            raise NasforgeError("search: give either --proxy INDEX_FILE or --proxy-method, "
                                "not both")
        cfg = _config_from_args(args, **{
            "search.algo": args.algo, "search.space": args.space, "data.proxy": args.proxy,
            "proxy.method": args.proxy_method, "proxy.entropy": args.proxy_entropy,
            "proxy.size": _number(args.proxy_size, "--proxy-size"),
            "search.rule": args.derive, "search.k": args.k,
            "search.act_all": True if args.act_all else None,
            "search.threshold": args.threshold})
        results = run_search(cfg, args.out, force=args.force)
    print(results["genotype"])


def _number(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise NasforgeError(f"{option} must be a count or a fraction, got {text!r}") from None


def cmd_entropy(args: argparse.Namespace) -> None:
    from nasforge.proxy.scoring import resume_entropy, run_dir_for, score_entropy

    if args.resume and args.checkpoint is None and \
            (run_dir_for(args.out) / "config.yaml").is_file():  # the saved config, not flags
        _check_resume(args, args.out, {"--model": ("entropy.model", args.model)},
                      config_dir=run_dir_for(args.out), out_is_run=False)
        results = resume_entropy(Path(args.out), _resume_overrides(args))
    else:
        cfg = _config_from_args(args, **{"entropy.model": args.model})
        results = score_entropy(cfg, Path(args.out), checkpoint=args.checkpoint,
                                force=args.force, resume=args.resume)
    print(f"wrote {results['examples']} entropies to {args.out} "
          f"(auxiliary {results['model']}: test accuracy {results['test_acc']:.2f}%)")


def cmd_select(args: argparse.Namespace) -> None:
    from nasforge.proxy.selectors import select_to_file

    summary = select_to_file(
        args.entropy, args.method, _number(args.size, "--size"), out=args.out, seed=args.seed,
        dataset=args.dataset, bin_width=args.bin_width, beta=args.beta,
        class_balanced=args.class_balanced, features_path=args.features,
        forgetting_path=args.forgetting)
    print(f"selected {summary['k']} examples with {args.method} -> {args.out}")


def _selections(paths: list[str], n: int) -> dict:
    from nasforge.data import read_index_file

    return {Path(p).stem: read_index_file(p, n) for p in paths}


def cmd_plot_entropy(args: argparse.Namespace) -> None:
    from nasforge.analysis.proxy_plots import plot_entropy_histogram
    from nasforge.proxy.entropy import read_entropy_list
    from nasforge.proxy.histogram import bin_width_for

    ent = read_entropy_list(args.entropy)
    width = bin_width_for(args.dataset or "", args.bin_width)
    path = plot_entropy_histogram(ent.entropy, _selections(args.selection, len(ent.entropy)),
                                  width, args.out)
    print(path)


def cmd_plot_classes(args: argparse.Namespace) -> None:
    from nasforge.analysis.proxy_plots import plot_class_proportions
    from nasforge.proxy.entropy import read_entropy_list

    ent = read_entropy_list(args.entropy)
    print(plot_class_proportions(ent.label, _selections(args.selection, len(ent.label)),
                                 args.out))


def cmd_plot_tsne(args: argparse.Namespace) -> None:
    from nasforge.analysis.proxy_plots import plot_tsne
    from nasforge.proxy.entropy import load_features

    feats = load_features(args.features)
    print(plot_tsne(feats, _selections(args.selection, len(feats)), args.out, seed=args.seed))


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


def cmd_bench_query(args: argparse.Namespace) -> None:
    from nasforge.benchmarks.tabular import TabularBenchmark

    text = args.genotype
    key_like = "~" in text and "(" not in text and not Path(text).exists()
    info = TabularBenchmark.load(args.bench).query(text if key_like else _genotype_arg(text))
    _print_json_or_lines(info, args.json)


def cmd_study_proxy(args: argparse.Namespace) -> None:
    from nasforge.proxy.study import run_proxy_study

    cfg = _config_from_args(args)
    rows = run_proxy_study(cfg, args.out, progress=not args.no_progress, force=args.force)
    print(f"{len(rows)} runs -> {Path(args.out) / 'results.csv'}, {Path(args.out) / 'study.png'}")


def _nb101_matrix(text: str) -> list[list[int]]:
    """``"0110;0001;0001;0000"`` → rows of 0/1 (one string per row, ``;`` between rows)."""
    rows = [r.strip() for r in text.split(";") if r.strip()]
    if not rows or any(set(r) - {"0", "1"} or len(r) != len(rows) for r in rows):
        raise NasforgeError(f"--matrix {text!r} must be N rows of N digits 0/1 separated by "
                            "';', e.g. 011;001;000")
    return [[int(c) for c in r] for r in rows]


def cmd_bench_nb101_convert(args: argparse.Namespace) -> None:
    from nasforge.benchmarks.nasbench101 import convert

    epochs = None if args.epochs == "all" else tuple(int(e) for e in args.epochs.split(","))
    info = convert(args.tfrecord, args.out, epochs=epochs, progress=not args.no_progress,
                   verify_crc=not args.no_crc)
    print(f"{info['architectures']:,} architectures ({info['records']:,} records, epochs "
          f"{info['epochs']}) -> {args.out}")


def cmd_bench_step(args: argparse.Namespace) -> None:
    from nasforge.benchmarks.step import time_search_step

    r = time_search_step(args.algo, args.channels, args.layers, args.batch, args.resolution,
                         args.steps, args.threads, args.device, args.nodes, amp=args.amp,
                         channels_last=args.channels_last, compile=args.compile or False,
                         warmup=args.warmup)
    if args.json:
        print(json.dumps({"imgs_per_s": r["imgs_per_s"], "step_s": r["step_s"]}))
        return
    layout = "channels_last" if r["channels_last"] else "NCHW"
    compiled = f", compiled ({r['compile']})" if r["compile"] else ""
    print(f"{r['algo']} search step on {r['device']} ({r['amp']}, {layout}{compiled}, "
          f"{r['threads']} thread{'s' * (r['threads'] != 1)}): {r['step_s']:.4f} s/step, "
          f"{r['imgs_per_s']:.1f} images/s "
          f"(batch {r['batch']}, mean of {r['steps']} steps after {args.warmup} warm-up)")


def cmd_bench_nb101_query(args: argparse.Namespace) -> None:
    from nasforge.benchmarks.nasbench101 import NasBench101Table

    if args.arch and (args.matrix or args.ops):
        raise NasforgeError("give the cell as --arch or as --matrix/--ops, not both")
    if args.arch:
        from nasforge.spaces.nb101.space import read_arch

        space, arch = read_arch(args.arch)
        matrix, ops = space.to_spec(arch)
    elif args.matrix and args.ops:
        matrix, ops = _nb101_matrix(args.matrix), args.ops.split(",")
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


def cmd_study_algorithms(args: argparse.Namespace) -> None:
    from nasforge.search.study import run_algorithm_study

    extra = {"study.algos": args.algos.split(",") if args.algos else None}
    args.config = args.config or "study-algorithms-digits"
    cfg = _config_from_args(args, **extra)
    summary = run_algorithm_study(cfg, args.out, progress=not args.no_progress,
                                  force=args.force)
    print((Path(args.out) / "algorithms.md").read_text(), end="")
    print(f"{len(summary)} rows -> {Path(args.out) / 'algorithms.csv'}, "
          f"{Path(args.out) / 'algorithms.png'}")


def cmd_quality(args: argparse.Namespace) -> None:
    from nasforge.quality import parse_spaces, run_quality, summarise

    spaces = None
    if args.spaces is not None:
        spaces = [spec.name for spec in parse_spaces(args.spaces.split(","))]
    if args.samples is not None and args.samples < 1:
        raise NasforgeError(f"quality: --samples must be at least 1; got {args.samples}")
    args.config = args.config or "quality-digits"
    cfg = _config_from_args(args, **{"quality.spaces": spaces, "quality.samples": args.samples})
    rows = run_quality(cfg, args.out, force=args.force)
    for space, s in summarise(rows).items():
        print(f"{space:12s} n={s['count']:<4d} median {s['median']:.2f}%  mean {s['mean']:.2f}%  "
              f"min {s['min']:.2f}%  max {s['max']:.2f}%")
    out = Path(args.out)
    print(f"{len(rows)} nets -> {out / 'results.csv'}, {out / 'summary.json'}, "
          f"{out / 'quality.png'}")


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


def _is_dir(source: str) -> bool:
    """Whether an option that takes "text, file or directory" names a directory.

    Published genotype texts are longer than a file name may be (ENAMETOOLONG) and may hold
    characters a path cannot (NUL): such text is not a directory.
    """
    try:
        return Path(source).is_dir()
    except (OSError, ValueError):
        return False


def _genotype_arg(source: str):
    from nasforge.spaces.darts.genotype import load_genotype

    path = Path(source)
    if _is_dir(source):
        path = path / "genotype.txt"
        if not path.is_file():
            raise NasforgeError(f"{source} is a directory without genotype.txt")
        return load_genotype(path)
    return load_genotype(source)


def cmd_train(args: argparse.Namespace) -> None:
    from nasforge.train import resume_train, run_train

    if args.resume:
        also = []
        if args.genotype is not None:
            from nasforge.spaces.darts.genotype import format_genotype

            saved = (Path(args.resume) / "genotype.txt")
            given = format_genotype(_genotype_arg(args.genotype))
            if not saved.is_file() or saved.read_text().strip() != given:
                also.append(f"--genotype (the run trains the genotype in {saved})")
        _check_resume(args, args.resume, also=also)
        results = resume_train(args.resume, _resume_overrides(args))
    else:
        if not args.out or not args.genotype:
            raise NasforgeError("train: --genotype G and --out RUN_DIR are required "
                                "(or --resume RUN_DIR)")
        cfg = _config_from_args(args)
        results = run_train(cfg, _genotype_arg(args.genotype), args.out, force=args.force)
    print(f"test accuracy: {results['test_acc']:.2f}%  params: {results['params_m']:.3f}M")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from nasforge.train import evaluate_run

    _print_json_or_lines(evaluate_run(args.run_dir, split=args.split, device=args.device),
                         args.json)


def cmd_describe(args: argparse.Namespace) -> None:
    from nasforge.describe import describe_genotype

    info = describe_genotype(_genotype_arg(args.genotype), dataset=args.dataset,
                             channels=args.channels, layers=args.layers)
    if args.json:
        print(json.dumps(info))
        return
    print(f"params: {info['params_m']:.2f}M  FLOPs: {info['flops_m']:.0f}M  "
          f"peak memory: {info['peak_memory_mb']:.0f}MB ({info['peak_memory_device']})  "
          f"({info['dataset']}, C={info['channels']}, {info['layers']} cells)")


def _snn_sets(args: argparse.Namespace) -> dict[str, object]:
    """The ``snn.*`` options shared by the SNN stages, as config keys."""
    keys = ("channels", "timesteps", "epochs", "variant", "space", "neuron", "loss")
    return {f"snn.{k}": getattr(args, k, None) for k in keys}


def _snn_options(args: argparse.Namespace) -> dict[str, tuple[str, object]]:
    """The ``snn.*`` shortcut options as ``--option: (key, value)`` (for ``--resume``)."""
    return {f"--{key.split('.')[1]}": (key, value) for key, value in _snn_sets(args).items()}


def _lams(values: list[str]) -> list[float] | None:
    """``--lam -0.08 --lam -0.16`` or ``--lam=-0.08,-0.16`` → floats."""
    out: list[float] = []
    for text in values:
        for part in text.split(","):
            try:
                out.append(float(part))
            except ValueError:
                raise NasforgeError(f"--lam must be a number, got {part!r}") from None
    return out or None


def _saved_supernet_epochs(run_dir: str) -> int | None:
    """A super-network run's own budget if its config set one (else snn.epochs applied)."""
    from nasforge.runtime import load_run_config

    try:
        return load_run_config(run_dir).snn.supernet_epochs
    except NasforgeError:
        return None


def cmd_snn_supernet(args: argparse.Namespace) -> None:
    from nasforge.snn.supernet import resume_supernet, run_supernet

    # --epochs is the super-network's own budget here (snn.supernet_epochs)
    sets = {("snn.supernet_epochs" if k == "snn.epochs" else k): v
            for k, v in _snn_sets(args).items()}
    if args.resume:
        options = _snn_options(args)
        if _saved_supernet_epochs(args.resume) is not None:
            options["--epochs"] = ("snn.supernet_epochs", options["--epochs"][1])
        _check_resume(args, args.resume, options)
        results = resume_supernet(args.resume, _resume_overrides(args))
    else:
        if not args.out:
            raise NasforgeError("snn supernet: --out RUN_DIR is required (or --resume RUN_DIR)")
        results = run_supernet(_config_from_args(args, **sets), args.out, force=args.force)
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
        if given:
            raise NasforgeError(f"snn search --resume DIR continues with the search's saved "
                                f"settings and cannot honour {', '.join(given)}; drop "
                                f"{'it' if len(given) == 1 else 'them'} (or re-run the "
                                "command that started it, with the same settings)")
        results = resume_snn_search(args.resume)
        _print_snn_searches(results)
        return
    if not args.supernet or not args.out:
        raise NasforgeError("snn search: --supernet RUN_DIR and --out DIR are required (or "
                            "--resume DIR)")
    sets = {"snn.lams": _lams(args.lam), "snn.search_algo": args.algo,
            "run.seed": args.seed, "run.device": args.device,
            "run.progress": False if args.no_progress else None}
    overrides = [f"{k}={json.dumps(v)}" for k, v in sets.items() if v is not None]
    results = run_snn_search(args.supernet, args.out, [*overrides, *args.overrides],
                             force=args.force, config=args.config)
    _print_snn_searches(results)


def _print_snn_searches(results: dict) -> None:
    for row in results["searches"]:
        print(f"lam={row['lam']:+g}: {row['arch']}  (val acc {row['acc']:.2f}%, "
              f"{row['spikes']:,.0f} spikes, fitness {row['fitness']:.3f})")


def cmd_snn_train(args: argparse.Namespace) -> None:
    from nasforge.snn.search import best_arch
    from nasforge.snn.train import resume_snn_train, run_snn_train

    if args.resume:
        arch, also = args.arch, []
        if arch is not None and _is_dir(arch):
            arch = best_arch(arch, _lams(args.lam)[0] if args.lam else None)
        elif args.lam:
            also.append("--lam (it picks a search in --arch SEARCH_DIR)")
        _check_resume(args, args.resume, {**_snn_options(args), "--arch": ("snn.arch", arch),
                                          "--model": ("snn.model", args.model)}, also=also)
        results = resume_snn_train(args.resume, _resume_overrides(args))
    else:
        if not args.out:
            raise NasforgeError("snn train: --out RUN_DIR is required (or --resume RUN_DIR)")
        arch = args.arch
        if arch is not None and _is_dir(arch):
            arch = best_arch(arch, _lams(args.lam)[0] if args.lam else None)
        elif args.lam:
            raise NasforgeError("snn train: --lam picks a search in --arch SEARCH_DIR; "
                                "give --arch a search run directory")
        cfg = _config_from_args(args, **_snn_sets(args), **{"snn.arch": arch,
                                                             "snn.model": args.model})
        results = run_snn_train(cfg, args.out, force=args.force)
    spikes = ("no spikes (ReLU network)" if results["spikes"] is None
              else f"{results['spikes']:,.0f} spikes per image")
    print(f"{results['label']}: test acc {results['test_acc']:.2f}%, {spikes}, "
          f"{results['params_m']:.3f}M params")


def cmd_snn_quality(args: argparse.Namespace) -> None:
    from nasforge.snn.quality import run_snn_quality

    variants = args.variants.split(",") if args.variants else None
    cfg = _config_from_args(args, **_snn_sets(args), **{"snn.samples": args.samples,
                                                         "snn.variants": variants})
    results = run_snn_quality(cfg, args.out, force=args.force)
    for variant, row in results["variants"].items():
        print(f"{variant}: mean test acc {row['mean_acc']:.2f}%, mean spikes "
              f"{row['mean_spikes']:,.0f} over {row['samples']} random SNNs")


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise NasforgeError(f"{path.parent} is not {what} (no {path.name})") from None
    except ValueError as exc:
        raise NasforgeError(f"cannot read {path}: {exc}") from None


def cmd_plot_snn_pareto(args: argparse.Namespace) -> None:
    from nasforge.analysis.snn_plots import plot_accuracy_vs_spikes

    points = []
    for run in args.run_dir:
        r = _read_json(Path(run) / "results.json", "an `snn train` run")
        if r.get("stage") != "snn-train":
            raise NasforgeError(f"{run} is not an `snn train` run (stage {r.get('stage')})")
        label = r["model"] or ("AutoSNN" if r["arch"] else r["label"])
        points.append({"label": label, "acc": r["test_acc"], "spikes": r["spikes"],
                       "params_m": r["params_m"], "channels": r["channels"],
                       "timesteps": r["timesteps"], "kind": r["kind"]})
    print(plot_accuracy_vs_spikes(points, args.out, title=args.title))


def cmd_plot_snn_layers(args: argparse.Namespace) -> None:
    from nasforge.analysis.snn_plots import plot_layer_spikes

    profiles = {}
    for i, run in enumerate(args.run_dir):
        profile = _read_json(Path(run) / "spikes.json", "an `snn train` run")
        label = args.label[i] if i < len(args.label) else profile["label"]
        profiles[label] = profile
    print(plot_layer_spikes(profiles, args.out, title=args.title))


def cmd_plot_snn_search(args: argparse.Namespace) -> None:
    from nasforge.analysis.snn_plots import plot_search_history
    from nasforge.snn.search import lam_dir

    summary = _read_json(Path(args.search_dir) / "results.json", "an `snn search` run")
    lams = [row["lam"] for row in summary["searches"]]
    lam = _lams(args.lam)[0] if args.lam else lams[0]
    if lam not in lams:
        raise NasforgeError(f"{args.search_dir} has no search with lam={lam}; it has "
                            f"{', '.join(str(v) for v in lams)}")
    result = _read_json(lam_dir(Path(args.search_dir), lam) / "result.json", "a search")
    print(plot_search_history(result["history"], args.out, best=result["best"],
                              title=args.title or f"{result['method']} search, lambda={lam:+g}"))


def cmd_plot_snn_arch(args: argparse.Namespace) -> None:
    from nasforge.analysis.snn_plots import plot_snn_architecture
    from nasforge.snn.search import best_arch

    arch = best_arch(args.arch) if _is_dir(args.arch) else args.arch
    print(plot_snn_architecture(arch, args.out, variant=args.variant, space=args.space,
                                title=args.title or arch))


def cmd_snn_describe(args: argparse.Namespace) -> None:
    from nasforge.snn import describe_snn

    if (args.arch is None) == (args.model is None):
        raise NasforgeError("snn describe: give --arch BLOCKS (a searched architecture) or "
                            "--model NAME (a hand-crafted baseline), not both")
    if args.model is not None:
        from nasforge.snn.baselines import describe_snn_model

        if args.variant is not None or args.space != "default":
            raise NasforgeError("snn describe: --variant and --space shape AutoSNN's "
                                "backbone; a --model baseline has its own layers")
        info = describe_snn_model(args.model, args.channels, args.dataset, args.timesteps,
                                  measure=args.measure, batch=args.batch,
                                  convention=args.convention)
    else:
        info = describe_snn(args.arch, args.channels, args.dataset, args.timesteps,
                            measure=args.measure, batch=args.batch,
                            convention=args.convention, variant=args.variant,
                            space=args.space)
    if args.json:
        print(json.dumps(info))
        return
    line = (f"params: {info['params_m']:.2f}M  neurons: {info['neurons']:,}  "
            f"({info['dataset']}, C={info['channels']}, T={info['timesteps']}, {info['arch']})")
    if args.measure:
        line += (f"\nspikes per image: {info['spikes_per_image']:,.0f} "
                 f"({info['convention']} convention, {info['data']} batch of {info['batch']})")
    print(line)


def cmd_data_info(args: argparse.Namespace) -> None:
    from nasforge.data import dataset_info
    from nasforge.data.dvs import DVS_DATASETS

    if args.name in DVS_DATASETS:
        from nasforge.snn.data import load_snn_data

        data = load_snn_data(args.name, args.data_root, timesteps=args.timesteps)
        info = {"name": data.name, "num_classes": data.num_classes, "channels": 2,
                "size": data.in_size, "timesteps": args.timesteps, "train": len(data.train),
                "val": None, "test": len(data.test)}
    else:
        info = dataset_info(args.name, args.data_root)
    _print_json_or_lines(info, args.json)


def cmd_data_list(args: argparse.Namespace) -> None:
    from nasforge.data import DATASETS
    from nasforge.data.dvs import DVS_DATASETS

    print("\n".join([*DATASETS.names(), *DVS_DATASETS]))


def cmd_config_show(args: argparse.Namespace) -> None:
    import yaml

    from nasforge.config import config_to_dict, load_config

    cfg = load_config(args.config, args.overrides)
    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")


def cmd_config_list(args: argparse.Namespace) -> None:
    from nasforge.config import CONFIG_DIR

    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        first = path.read_text().splitlines()[0] if path.read_text() else ""
        print(f"{path.stem:32s} {first.lstrip('# ')}")


def cmd_demo(args: argparse.Namespace) -> None:
    from nasforge.demo import run_demo

    results = run_demo(args.out, force=args.force, progress=not args.no_progress,
                       algo=args.algo, snn=not args.no_snn)
    print(f"demo done in {results['seconds']['total']:.0f}s: cell test accuracy "
          f"{results['test_acc']:.2f}%, {results['params_m']:.3f}M params -> {args.out}")
    for name, row in results.get("snn", {}).get("trained", {}).items():
        print(f"  SNN {name}: test accuracy {row['test_acc']:.2f}%, "
              f"{row['spikes']:,.0f} spikes per image, {row['params_m'] * 1e3:.1f}K params")


def cmd_report(args: argparse.Namespace) -> None:
    from nasforge.analysis.report import build_report

    for path in build_report(args.run_dir, args.out, force=args.force):
        print(path)


def cmd_runs(args: argparse.Namespace) -> None:
    from nasforge.runs import format_runs, list_runs

    if args.depth < 0 or args.active < 0:
        raise NasforgeError("runs: --depth and --active must be >= 0")
    if not Path(args.dir).is_dir():
        raise NasforgeError(f"runs: {args.dir} is not a directory")
    runs = list_runs(args.dir, max_depth=args.depth, active=60 * args.active)
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
    elif runs:
        print(format_runs(runs))
    else:
        print(f"no runs under {args.dir}")


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


class _PassThroughParser(_Parser):
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
    split = _Parser(prog="nasforge sweep", **SWEEP_PARSER)
    _add_sweep_args(split)
    args, command = split.parse_known_args(args.command)
    if args.list:
        for name in sweep.sweep_config_names():
            text = sweep.resolve_sweep_config(name).read_text()
            print(f"{name:24s} {text.splitlines()[0].lstrip('# ') if text else ''}")
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


RECOMPUTE_HELP = ("recompute the rows an earlier call into --out made with other settings "
                  "(default: refuse)")


def build_parser() -> argparse.ArgumentParser:
    from nasforge.derive import DERIVE_RULES
    from nasforge.search import STRATEGIES

    parser = _Parser(prog="nasforge", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("search", help="run an architecture search")
    p.add_argument("--algo", choices=STRATEGIES.names(), help="search algorithm")
    p.add_argument("--space", help="search space: darts, darts-no-none, s1..s4, 1shot1-ss1..3, ...")
    p.add_argument("--proxy", help="index file of the training subset to search on")
    p.add_argument("--proxy-method", help="select a proxy subset first with this selector")
    p.add_argument("--proxy-size", help="proxy size: a count or a fraction (default 0.1)")
    p.add_argument("--proxy-entropy", help="entropy list to select from (default: score it)")
    _add_derive_args(p, "--derive", DERIVE_RULES.names())
    _add_run_dir_args(p, "search")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("derive", help="derive a genotype from a search run's strengths")
    p.add_argument("run_dir")
    _add_derive_args(p, "--rule", DERIVE_RULES.names(), default="argmax")
    p.add_argument("--out", help="also write the genotype to this file")
    _file_outputs(p, ("out",))
    p.set_defaults(func=cmd_derive)

    p = sub.add_parser("train", help="retrain a genotype from scratch")
    p.add_argument("--genotype", help="genotype string, file, known name or search run dir")
    _add_run_dir_args(p, "training run")
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

    p = sub.add_parser("entropy", help="score every training example by entropy (chapter 3)")
    p.add_argument("--model", help="auxiliary model: resnet20, resnet32, resnet44, resnet56")
    p.add_argument("--checkpoint", help="score with these weights instead of training")
    p.add_argument("--out", required=True, help="entropy list to write (index, entropy, label)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument("--resume", action="store_true", help="continue a killed scoring run")
    _add_config_args(p)
    p.set_defaults(func=cmd_entropy)

    p = sub.add_parser("select", help="select a proxy subset from an entropy list")
    p.add_argument("--entropy", required=True, help="entropy list (index, entropy, label)")
    p.add_argument("--method", required=True, help="selector, e.g. p1, random, bottom-k")
    p.add_argument("--size", required=True, help="a count (>= 1) or a fraction (< 1)")
    p.add_argument("--seed", type=_seed_arg, default=0)
    p.add_argument("--beta", type=float, default=0.5, help="beta selector's bottom share")
    p.add_argument("--bin-width", type=float, help="log10-entropy bin width")
    p.add_argument("--dataset", help="picks the default bin width (cifar10: 0.5, ...)")
    p.add_argument("--class-balanced", action="store_true")
    p.add_argument("--features", help="features .npy for k-center")
    p.add_argument("--forgetting", help="forgetting counts for the forgetting selector")
    p.add_argument("--out", required=True, help="index file to write")
    _file_outputs(p, ("out",))
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("plot", help="pictures: proxy data, op strengths, loss landscapes")
    plot_sub = p.add_subparsers(dest="plot_command", required=True, parser_class=_Parser)
    q = plot_sub.add_parser("entropy", help="entropy histogram of the data and selections")
    q.add_argument("--entropy", required=True)
    q.add_argument("--selection", action="append", default=[], help="index file (repeatable)")
    q.add_argument("--bin-width", type=float)
    q.add_argument("--dataset")
    q.add_argument("--out", required=True, help="PNG to write")
    _file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_entropy)
    q = plot_sub.add_parser("classes", help="class proportions of selections")
    q.add_argument("--entropy", required=True, help="entropy list (for the labels)")
    q.add_argument("--selection", action="append", default=[])
    q.add_argument("--out", required=True)
    _file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_classes)
    q = plot_sub.add_parser("tsne", help="t-SNE of features with selections highlighted")
    q.add_argument("--features", required=True)
    q.add_argument("--selection", action="append", default=[])
    q.add_argument("--seed", type=_seed_arg, default=0)
    q.add_argument("--out", required=True)
    _file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_tsne)

    q = plot_sub.add_parser("strengths", help="heatmaps of a search run's op strengths")
    q.add_argument("run_dir")
    _add_derive_args(q, "--rule", DERIVE_RULES.names())
    q.add_argument("--genotype", help="outline this genotype's ops (file, name or text)")
    q.add_argument("--values", action=argparse.BooleanOptionalAction, default=None,
                   help="write the values in the cells (default: when the grid is small)")
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    _file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_strengths)
    q = plot_sub.add_parser("landscape", help="validation loss over op strengths (Fig. 4.6)")
    q.add_argument("run_dir", nargs="+", help="search run directories (one panel each)")
    q.add_argument("--points", type=int, default=21, help="grid points per axis")
    q.add_argument("--radius", type=float, default=1.0, help="grid half-width")
    q.add_argument("--batches", type=int, default=2, help="validation batches per point")
    q.add_argument("--batch-size", type=_positive_int)
    q.add_argument("--seed", type=_seed_arg, default=0, help="seed of the random direction")
    q.add_argument("--device", default="cpu")
    q.add_argument("--label", action="append", default=[], help="panel title (repeatable)")
    q.add_argument("--json", help="also write the measured grid as JSON")
    q.add_argument("--out", required=True, help="PNG to write")
    _file_outputs(q, ("out", "json"))
    q.set_defaults(func=cmd_plot_landscape)

    q = plot_sub.add_parser("snn-pareto", help="SNN accuracy vs spikes (Figs. 5.1, 5.12)")
    q.add_argument("run_dir", nargs="+", help="`snn train` run directories")
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    _file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_snn_pareto)
    q = plot_sub.add_parser("snn-layers", help="spikes and firing rates per layer (Fig. 5.7)")
    q.add_argument("run_dir", nargs="+", help="`snn train` run directories")
    q.add_argument("--label", action="append", default=[], help="series name (repeatable)")
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    _file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_snn_layers)
    q = plot_sub.add_parser("snn-search", help="an evolutionary search's evaluations")
    q.add_argument("search_dir", help="`snn search` directory")
    q.add_argument("--lam", action="append", default=[], help="which search (default: first)")
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    _file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_snn_search)
    q = plot_sub.add_parser("snn-arch", help="block diagram of an SNN (Figs. 5.11, 5.13)")
    q.add_argument("--arch", required=True, help="block names or an `snn search` directory")
    q.add_argument("--variant", choices=["v1", "v2", "v3"])
    q.add_argument("--space", default="default",
                   choices=["default", "v2-8tbd", "tbd-before-pool"])
    q.add_argument("--title")
    q.add_argument("--out", required=True, help="PNG to write")
    _file_outputs(q, ("out",))
    q.set_defaults(func=cmd_plot_snn_arch)

    p = sub.add_parser("bench", help="tabular benchmarks")
    bench_sub = p.add_subparsers(dest="bench_command", required=True, parser_class=_Parser)
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
    _file_outputs(q, ("out",))
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
                   help="time the channels_last layout (default: the search's, i.e. on CUDA)")
    q.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                   help="time the NCHW layout")
    q.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                   help="torch.compile the network (optional mode, e.g. reduce-overhead)")
    q.add_argument("--json", action="store_true",
                   help='print {"imgs_per_s": ..., "step_s": ...}')
    q.set_defaults(func=cmd_bench_step)

    p = sub.add_parser("study", help="multi-run studies")
    study_sub = p.add_subparsers(dest="study_command", required=True, parser_class=_Parser)
    q = study_sub.add_parser("proxy", help="chapter-3 study: selectors x sizes x seeds")
    q.add_argument("--out", required=True, help="study directory (re-run to resume)")
    q.add_argument("--force", action="store_true", help=RECOMPUTE_HELP)
    _add_config_args(q)
    q.set_defaults(func=cmd_study_proxy)
    q = study_sub.add_parser("algorithms", help="the zoo: every algorithm x seeds, full data "
                             "and proxy data, on the tabular benchmark")
    q.add_argument("--out", required=True, help="study directory (re-run to resume)")
    q.add_argument("--algos", help="comma list of algorithms (default: study.algos)")
    q.add_argument("--force", action="store_true", help=RECOMPUTE_HELP)
    _add_config_args(q)
    q.set_defaults(func=cmd_study_algorithms)

    p = sub.add_parser("quality", help="search-space quality: train random cells per space")
    p.add_argument("--spaces", help="comma list of darts and extcell-K (default: from config)")
    p.add_argument("--samples", type=int, help="unique random cell pairs per space")
    p.add_argument("--out", required=True, help="output directory (re-run to resume)")
    p.add_argument("--force", action="store_true", help=RECOMPUTE_HELP)
    _add_config_args(p)
    p.set_defaults(func=cmd_quality)

    p = sub.add_parser("snn", help="spiking networks (AutoSNN, chapter 5)")
    snn_sub = p.add_subparsers(dest="snn_command", required=True, parser_class=_Parser)
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
    q.add_argument("--space", default="default",
                   choices=["default", "v2-8tbd", "tbd-before-pool"])
    q.add_argument("--measure", action="store_true", help="count spikes on a small batch")
    q.add_argument("--batch", type=int, default=4)
    q.add_argument("--convention", default="thesis", choices=["thesis", "neurons"])
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_snn_describe)

    q = snn_sub.add_parser("supernet", help="train the AutoSNN super-network (uniform paths)")
    _add_run_dir_args(q, "super-network training")
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
    q.add_argument("--seed", type=_seed_arg)
    q.add_argument("--device")
    q.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="e.g. snn.rounds=5")
    q.add_argument("--force", action="store_true", help="discard an existing search directory")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=cmd_snn_search)

    q = snn_sub.add_parser("train", help="train a searched SNN or a hand-crafted baseline")
    q.add_argument("--arch", help="block names, or a `snn search` directory (its top-1)")
    q.add_argument("--lam", action="append", default=[],
                   help="with --arch SEARCH_DIR: the lambda whose top-1 to train")
    q.add_argument("--model", help="hand-crafted baseline: cifarnet-wu, cifarnet-fang, "
                   "resnet11-lee, resnet19-zheng")
    _add_run_dir_args(q, "SNN training")
    _add_snn_args(q)
    q.set_defaults(func=cmd_snn_train)

    q = snn_sub.add_parser("quality", help="train random SNNs per macro variant (Fig. 5.8)")
    q.add_argument("--out", required=True, help="study directory (re-run to resume)")
    q.add_argument("--samples", type=int, help="random architectures per variant (100)")
    q.add_argument("--variants", help="comma list of default, v1, v2, v3 (default: all)")
    q.add_argument("--force", action="store_true", help=RECOMPUTE_HELP)
    _add_config_args(q)
    _add_snn_args(q)
    q.set_defaults(func=cmd_snn_quality)

    p = sub.add_parser("data", help="data sets")
    data_sub = p.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    q = data_sub.add_parser("info", help="sizes, shapes and classes of a data set")
    q.add_argument("name")
    q.add_argument("--data-root")
    q.add_argument("--timesteps", type=int, default=8, help="DVS sets: frames per sample")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_data_info)
    q = data_sub.add_parser("list", help="registered data sets")
    q.set_defaults(func=cmd_data_list)

    p = sub.add_parser("config", help="configs")
    cfg_sub = p.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    q = cfg_sub.add_parser("show", help="print a resolved config")
    q.add_argument("--config")
    q.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE")
    q.set_defaults(func=cmd_config_show)
    q = cfg_sub.add_parser("list", help="shipped configs")
    q.set_defaults(func=cmd_config_list)

    p = sub.add_parser("demo", help="end to end on digits: proxy → BtNAS → retrain, then AutoSNN")
    p.add_argument("--out", default="demo-run")
    p.add_argument("--algo", default="btnas", choices=["btnas", "darts"],
                   help="btnas: top-k + ActAll ExtCell (default); darts: argmax DARTS cell")
    p.add_argument("--force", action="store_true", help="overwrite an existing directory")
    p.add_argument("--no-snn", action="store_true", help="skip the AutoSNN part")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="HTML + markdown report of a run (or a folder of runs)")
    p.add_argument("run_dir", help="run directory, demo directory or folder of runs")
    p.add_argument("--out", help="report directory (default: RUN_DIR/report)")
    p.add_argument("--force", action="store_true",
                   help="replace report files that nasforge did not write")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("runs", help="list the runs under a folder with their status")
    p.add_argument("dir", nargs="?", default="runs", help="folder to scan (default: runs)")
    p.add_argument("--depth", type=int, default=4, help="folder levels to look down (4)")
    p.add_argument("--active", type=float, default=10.0, metavar="MINUTES",
                   help="a run whose files changed this recently counts as running (10)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("sweep", help="a command over a grid of config values x seeds, on Ray",
                       **SWEEP_PARSER)
    _add_sweep_args(p)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND ...",
                   help="the nasforge command to sweep and its options")
    p.set_defaults(func=cmd_sweep)
    p.__class__ = _PassThroughParser  # COMMAND's own options must reach cmd_sweep unparsed
    return parser


DATA_PARALLEL = ("search", "train", "entropy", "snn supernet")
"""The commands that run data-parallel under torchrun (docs/distributed.md)."""


_NOT_INPUTS = {"out", "resume", "func", "command", "new_files", "json"}


def _input_paths(args: argparse.Namespace) -> list[str]:
    """The existing files and folders named by the command's options and ``--set`` values:
    what the command reads, so ``--force`` must not clear a folder holding one."""
    values: list[str] = []
    for key, value in vars(args).items():
        if key in _NOT_INPUTS or key.endswith("_command"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str) or not item or len(item) > 4096:
                continue
            values.append(item.split("=", 1)[1] if key == "overrides" and "=" in item
                          else item)
    found = []
    for value in values:
        with contextlib.suppress(OSError, ValueError):
            if Path(value).exists():
                found.append(value)
    return found


def _check_file_outputs(args: argparse.Namespace) -> None:
    from nasforge.outputs import check_new_file

    for dest in getattr(args, "new_files", ()):
        value = getattr(args, dest, None)
        if value:
            check_new_file(value, force=args.force, what="--" + dest.replace("_", "-"))


def _run(args: argparse.Namespace) -> None:
    """Run the command; under torchrun only rank 0 prints to stdout. A failed command
    leaves no run directory it created that never reached a checkpoint."""
    from nasforge import outputs

    outputs.forget_fresh()  # one command's inputs and new run dirs, not an earlier call's
    _check_file_outputs(args)
    outputs.declare_inputs(_input_paths(args))
    try:
        _run_command(args)
    except BaseException:
        outputs.discard_unstarted()
        raise


def _run_command(args: argparse.Namespace) -> None:
    from nasforge.distributed import launched

    if not launched():
        args.func(args)
        return
    name = f"snn {args.snn_command}" if args.command == "snn" else args.command
    if name not in DATA_PARALLEL:
        raise NasforgeError(f"'{name}' does not run under torchrun; data-parallel commands: "
                            f"{', '.join(DATA_PARALLEL)}")
    if os.environ.get("RANK", "0") == "0":
        args.func(args)
        return
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        args.func(args)


def _user_path(filename: object) -> str:
    """The file a user asked for, in place of an atomic writer's temporary file
    (``DIR/.NAME.<random>.tmp``, ``DIR/.NAME.<pid>.link.tmp``, ``DIR/NAME.tmp``)."""
    path = Path(os.fsdecode(filename))  # type: ignore[arg-type]
    if not path.name.endswith(".tmp") or path.name == ".tmp":
        return str(filename)
    core = path.name.removesuffix(".tmp")
    if core.startswith("."):
        core = re.sub(r"\.(\d+\.(link|restore)|[A-Za-z0-9_]{8}|\d+)$", "", core[1:])
    return str(path.with_name(core)) if core else str(filename)


def _os_error(exc: OSError) -> str:
    """One line for a file-system refusal: the path, the reason and what would work."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    exc.filename = _user_path(exc.filename)
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        reason = "a file is in the way where a directory is needed"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"cannot write {exc.filename}: {reason}; free some space, then continue a "
                "run with --resume RUN_DIR (its last checkpoint is kept)")
    return (f"cannot use {exc.filename}: {reason}; give a path whose folders can be created "
            "and written")


def _show_warning(default, seen: set[str], message, category, filename, lineno, file=None,
                  line=None) -> None:
    """nasforge's own warnings as one line on stderr, like its errors, each text once per
    command (λ > 0 is flagged by the search and again by each evolution); others by
    ``default``."""
    if not Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent):
        default(message, category, filename, lineno, file, line)
        return
    text = " ".join(str(message).split())
    if text not in seen:
        seen.add(text)
        print(f"nasforge: warning: {text}", file=sys.stderr)


MAX_MESSAGE = 2000
"""Longest error line printed (a hostile value cannot flood the terminal)."""


def _quiet_stdout() -> None:
    """After the reader of stdout went away (``nasforge config list | head -1``): point
    stdout at /dev/null, so the interpreter's final flush raises nothing either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a file (in-process tests)
        pass


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        with warnings.catch_warnings():
            if not debug:
                warnings.showwarning = functools.partial(_show_warning, warnings.showwarning,
                                                         set())
            args = build_parser().parse_args(argv)
            _run(args)
            sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
    except BrokenPipeError:  # the reader of stdout stopped early: not an error
        _quiet_stdout()
        return 0
    except (NasforgeError, OSError) as exc:  # OSError: an unwritable path, a full disk, ...
        if debug:
            raise
        message = " ".join((_os_error(exc) if isinstance(exc, OSError) else str(exc)).split())
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 3] + "..."
        rank = os.environ.get("RANK", "0") if "WORLD_SIZE" in os.environ else "0"
        where = "" if rank == "0" else f" (rank {rank})"
        print(f"nasforge{where}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasforge: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
