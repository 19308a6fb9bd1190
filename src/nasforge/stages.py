"""The long-running stages of nasforge and the facts about each, in one registry.

A *stage* is a command that trains or measures for a while and leaves a run directory (or
a study folder) behind: ``search``, ``train``, ``entropy``, ``snn supernet``, ... Its entry
says which command starts it, which config section holds its settings, which per-epoch log
and which results file it writes, whether and how a killed run is continued, whether it
runs data-parallel under torchrun, and which learning rates a ``--resume`` may change.

The command line (``nasforge.cli``), ``nasforge sweep``, ``nasforge runs``, ``nasforge
report`` and :mod:`nasforge.runtime` read these facts here instead of keeping tables of
their own. Adding a stage means adding one :func:`register_stage` call below (in the order
the commands are listed in messages: registration order is kept).

This module imports nothing heavy (no torch), so a Ray worker or ``nasforge runs`` can use
it cheaply.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from nasforge.errors import NasforgeError


@dataclass(frozen=True)
class Stage:
    """What nasforge knows about one long-running stage.

    ``name`` is the stage's kind: the ``"stage"`` key of its ``results.json`` and the KIND
    column of ``nasforge runs``. ``command`` is the CLI command that runs it
    (``("snn", "supernet")``). ``section`` is its config section. ``log`` is the per-epoch
    CSV log in its run directory (None: it keeps none) and ``epochs`` the config key of the
    epoch budget that log counts towards. ``results`` is the file written last, whole, once
    the stage has finished. ``resumable``: a killed run can be continued where it stopped;
    ``resume_option``: that is done with ``--resume RUN_DIR`` (else by re-running the same
    command into the same ``--out``); ``resume_hint`` says how, with ``{dir}`` for the run
    directory; ``progress_file`` is what such a run keeps its progress in when it is not a
    ``checkpoint.pt``. ``data_parallel``: it may run under ``torchrun``. ``resume_lrs``:
    the learning-rate keys ``--resume RUN --set`` may change. ``sweepable``: ``nasforge
    sweep`` may run it as a step.
    """

    name: str
    command: tuple[str, ...]
    section: str | None
    results: str
    log: str | None = None
    epochs: str | None = None
    resumable: bool = False
    resume_option: bool = False
    resume_hint: str | None = None
    progress_file: str | None = None
    data_parallel: bool = False
    resume_lrs: tuple[str, ...] = ()
    sweepable: bool = False

    @property
    def command_text(self) -> str:
        """The command as typed after ``nasforge``: ``snn supernet``."""
        return " ".join(self.command)

    def resume_command(self, run_dir: object) -> str | None:
        """How to continue a killed run of this stage in ``run_dir`` (None: it cannot be)."""
        return None if self.resume_hint is None else self.resume_hint.format(dir=run_dir)


_STAGES: dict[str, Stage] = {}


def register_stage(stage: Stage) -> Stage:
    """Add ``stage`` to the registry; a name or command registered twice is a bug."""
    if stage.name in _STAGES:
        raise ValueError(f"stage '{stage.name}' registered twice")
    if any(s.command == stage.command for s in _STAGES.values()):
        raise ValueError(f"command '{stage.command_text}' has a stage already")
    _STAGES[stage.name] = stage
    return stage


def get_stage(name: str) -> Stage:
    """The stage of kind ``name`` (``snn-supernet``); an unknown name is a user error."""
    if name not in _STAGES:
        raise NasforgeError(f"unknown stage '{name}'; choose from: {', '.join(_STAGES)}")
    return _STAGES[name]


def find_stage(name: str) -> Stage | None:
    """The stage of kind ``name``, or None (a run of an unknown or no stage)."""
    return _STAGES.get(name)


def stage_of_command(command: tuple[str, ...] | list[str]) -> Stage | None:
    """The stage the command ``command`` (``("snn", "train")``) runs, or None."""
    return next((s for s in _STAGES.values() if s.command == tuple(command)), None)


def all_stages() -> Iterator[Stage]:
    """Every registered stage, in registration order."""
    return iter(list(_STAGES.values()))


def stage_logs() -> dict[str, str]:
    """Stage name → its per-epoch CSV log, for the stages that keep one."""
    return {s.name: s.log for s in all_stages() if s.log}


def data_parallel_commands() -> tuple[str, ...]:
    """The commands that run data-parallel under torchrun (docs/distributed.md)."""
    return tuple(s.command_text for s in all_stages() if s.data_parallel)


def sweepable_stages() -> tuple[Stage, ...]:
    """The stages ``nasforge sweep`` can run as steps, in the order messages list them."""
    return tuple(s for s in all_stages() if s.sweepable)


def resume_learning_rates() -> tuple[str, ...]:
    """Every stage's learning-rate keys a ``--resume`` may change, each once, in order."""
    keys: list[str] = []
    for stage in all_stages():
        keys += [k for k in stage.resume_lrs if k not in keys]
    return tuple(keys)


# --------------------------------------------------------------------------- the stages
# Registration order is the order in which messages list commands (torchrun's refusal,
# sweep's COMMAND list) and in which --resume's allowed learning rates are named.

register_stage(Stage(
    "search", ("search",), "search", "results.json", log="search_log.csv",
    epochs="search.epochs", resumable=True, resume_option=True,
    resume_hint="nasforge search --resume {dir}", data_parallel=True,
    resume_lrs=("search.w_lr", "search.w_lr_min"), sweepable=True))
register_stage(Stage(
    "train", ("train",), "train", "results.json", log="train_log.csv", epochs="train.epochs",
    resumable=True, resume_option=True, resume_hint="nasforge train --resume {dir}",
    data_parallel=True, resume_lrs=("train.lr", "train.lr_min"), sweepable=True))
# entropy's run directory is LIST.run next to the entropy list it writes
register_stage(Stage(
    "entropy", ("entropy",), "entropy", "results.json", log="train_log.csv",
    epochs="entropy.epochs", resumable=True, resume_option=True,
    resume_hint="nasforge entropy --resume --out LIST (the list next to {dir})",
    data_parallel=True, resume_lrs=("entropy.lr",)))
register_stage(Stage(
    "quality", ("quality",), "quality", "summary.json", resumable=True,
    resume_hint="re-run the same `nasforge quality ... --out {dir}`", sweepable=True))
register_stage(Stage(
    "snn-supernet", ("snn", "supernet"), "snn", "results.json", log="supernet_log.csv",
    epochs="snn.epochs", resumable=True, resume_option=True,
    resume_hint="nasforge snn supernet --resume {dir}", data_parallel=True,
    resume_lrs=("snn.lr",), sweepable=True))
register_stage(Stage(
    "snn-search", ("snn", "search"), "snn", "results.json", resumable=True,
    resume_hint="re-run the same `nasforge snn search ... --out {dir}`",
    progress_file="evaluations.json", sweepable=True))
register_stage(Stage(
    "snn-train", ("snn", "train"), "snn", "results.json", log="train_log.csv",
    epochs="snn.epochs", resumable=True, resume_option=True,
    resume_hint="nasforge snn train --resume {dir}", resume_lrs=("snn.lr",), sweepable=True))
register_stage(Stage(
    "snn-quality", ("snn", "quality"), "snn", "results.json", resumable=True,
    resume_hint="re-run the same `nasforge snn quality ... --out {dir}`", sweepable=True))
register_stage(Stage(
    "study-proxy", ("study", "proxy"), "study", "summary.json", resumable=True,
    resume_hint="re-run the same `nasforge study proxy ... --out {dir}`"))
register_stage(Stage(
    "study-algorithms", ("study", "algorithms"), "study", "algorithms.json", resumable=True,
    resume_hint="re-run the same `nasforge study algorithms ... --out {dir}`"))
register_stage(Stage("demo", ("demo",), None, "results.json"))


__all__ = ["Stage", "all_stages", "data_parallel_commands", "find_stage", "get_stage",
           "register_stage", "resume_learning_rates", "stage_logs", "stage_of_command",
           "sweepable_stages"]
