"""What every command group of the command line shares: the parser class, option sets,
argument types, config assembly and the ``--resume`` checks.

Every user mistake is a :class:`~nasforge.errors.NasforgeError`, printed by
:func:`nasforge.cli.app.main` as one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from nasforge.errors import NasforgeError

DESCRIPTION = "The ``nasforge`` command line: a thin layer over the library's stage functions."
"""First line of ``nasforge --help``."""

RECOMPUTE_HELP = ("recompute the rows an earlier call into --out made with other settings "
                  "(default: refuse)")


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # main() adds the "nasforge: error:" prefix; keep only the subcommand ("snn train")
        command = self.prog.removeprefix("nasforge").strip()
        raise NasforgeError(f"{command}: {message}" if command else message)


def command_parser(groups: Iterable[ModuleType]) -> argparse.ArgumentParser:
    """``nasforge`` with the commands of ``groups`` (modules with ``add_parsers(sub)``),
    in order."""
    parser = Parser(prog="nasforge", description=DESCRIPTION)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in groups:
        group.add_parsers(sub)
    return parser


def seed_arg(text: str) -> int:
    """argparse type of every ``--seed``: an integer 0..2**32-1 (NumPy's seed range)."""
    from nasforge.config import SEED_MAX

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}; allowed 0..{SEED_MAX}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"seed {value} is out of range; allowed 0..{SEED_MAX}")
    return value


def positive_int(text: str) -> int:
    """argparse type of a count or size that must be at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1; got {value}")
    return value


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file or shipped config name")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="dotted override, e.g. search.epochs=5")
    p.add_argument("--dataset", help="data set name (default: digits)")
    p.add_argument("--data-root", help="directory holding the data sets (or $NASFORGE_DATA)")
    p.add_argument("--seed", type=seed_arg, help="random seed")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def file_outputs(p: argparse.ArgumentParser, dests: tuple[str, ...]) -> None:
    """A command writing the files named by options ``dests``: an existing file is
    replaced only with ``--force`` (checked by ``main`` before the command starts)."""
    if not any("--force" in a.option_strings for a in p._actions):
        p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.set_defaults(new_files=dests)


def add_run_dir_args(p: argparse.ArgumentParser, what: str) -> None:
    """--out/--force/--resume and the config options of a long-running stage."""
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--resume", metavar="RUN_DIR", help=f"continue a killed {what}")
    add_config_args(p)


def add_derive_args(p: argparse.ArgumentParser, flag: str, rules: list[str],
                    default: str | None = None) -> None:
    """The derivation rule (``--rule`` or ``--derive``) and the top-k options."""
    p.add_argument(flag, dest="derive" if flag == "--derive" else "rule", default=default,
                   choices=rules, help="derivation rule (default: argmax)")
    p.add_argument("--k", type=int, help="topk: ops kept over both cells together")
    p.add_argument("--act-all", action="store_true",
                   help="topk: normalise by each node's strongest op so every node stays active")
    p.add_argument("--threshold", type=float,
                   help="threshold (FairDARTS): keep an op only at strength >= this (0.85)")


def config_from_args(args: argparse.Namespace, **extra_sets: object):
    """The config of ``--config``, the shortcut options, ``extra_sets`` (config key → value,
    None: not given) and ``--set``, in that order."""
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


def resume_overrides(args: argparse.Namespace) -> list[str]:
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


def check_resume(args: argparse.Namespace, run_dir: str | Path,
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


def print_json_or_lines(obj: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj, indent=2))
        return
    for key, value in obj.items():
        print(f"{key}: {value}")


def number(text: str | None, option: str) -> float | None:
    """A count or a fraction given as text (``--size 500``, ``--size 0.1``)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise NasforgeError(f"{option} must be a count or a fraction, got {text!r}") from None


def lams(values: list[str]) -> list[float] | None:
    """``--lam -0.08 --lam -0.16`` or ``--lam=-0.08,-0.16`` → floats."""
    out: list[float] = []
    for text in values:
        for part in text.split(","):
            try:
                out.append(float(part))
            except ValueError:
                raise NasforgeError(f"--lam must be a number, got {part!r}") from None
    return out or None


def is_dir(source: str) -> bool:
    """Whether an option that takes "text, file or directory" names a directory.

    Published genotype texts are longer than a file name may be (ENAMETOOLONG) and may hold
    characters a path cannot (NUL): such text is not a directory.
    """
    try:
        return Path(source).is_dir()
    except (OSError, ValueError):
        return False


def genotype_arg(source: str):
    """A ``--genotype``: text, a file, a known name or a search run directory."""
    from nasforge.spaces.darts.genotype import load_genotype

    path = Path(source)
    if is_dir(source):
        path = path / "genotype.txt"
        if not path.is_file():
            raise NasforgeError(f"{source} is a directory without genotype.txt")
        return load_genotype(path)
    return load_genotype(source)
