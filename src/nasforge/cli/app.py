"""``nasforge``: the top-level parser and what every command shares when it runs: one-line
errors (``--debug`` shows the traceback instead), nasforge's warnings as one line, output
files checked before the command starts, inputs declared so ``--force`` never clears them,
run directories of a failed command removed again, and data-parallel commands under
torchrun."""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from nasforge.cli import (
    bench,
    data,
    demo,
    plot,
    proxy,
    runs,
    search,
    snn,
    study,
    sweep,
    train,
    zc,
)
from nasforge.cli.common import command_parser
from nasforge.errors import NasforgeError

GROUPS = (search, train, proxy, plot, bench, study, zc, snn, data, demo, runs, sweep)
"""The command groups, in the order ``nasforge --help`` lists their commands."""

MAX_MESSAGE = 2000
"""Longest error line printed (a hostile value cannot flood the terminal)."""

_PACKAGE = Path(__file__).resolve().parent.parent
"""nasforge's own source folder: warnings raised there are shown as one line."""


def build_parser() -> argparse.ArgumentParser:
    """The whole ``nasforge`` command line."""
    return command_parser(GROUPS)


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
    from nasforge.stages import data_parallel_commands

    if not launched():
        args.func(args)
        return
    name = f"snn {args.snn_command}" if args.command == "snn" else args.command
    allowed = data_parallel_commands()
    if name not in allowed:
        raise NasforgeError(f"'{name}' does not run under torchrun; data-parallel commands: "
                            f"{', '.join(allowed)}")
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


_CPU_ALLOC = re.compile(r"can't allocate memory: you tried to allocate (\d+) bytes")


def _out_of_memory(exc: BaseException) -> str | None:
    """One line for an allocation that failed (host or GPU memory), None for other errors.

    A batch size, channel count or image size too large for the machine is the usual
    cause, so the line says which settings to lower."""
    text = str(exc)
    cpu = _CPU_ALLOC.search(text)
    if cpu:
        what = f"could not allocate {int(cpu.group(1)) / 2**30:,.1f} GiB of host memory"
    elif type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text.lower():
        what = text.strip().splitlines()[0] if text.strip() else "GPU out of memory"
        what = what.split(". GPU")[0].split(" Of the allocated")[0].rstrip(".")
    elif isinstance(exc, MemoryError):
        what = "Python ran out of memory"
    else:
        return None
    return (f"out of memory: {what}; lower the batch size, the channels or the image size "
            "(a run continues with --resume RUN_DIR from its last checkpoint)")


def _show_warning(default, seen: set[str], message, category, filename, lineno, file=None,
                  line=None) -> None:
    """nasforge's own warnings as one line on stderr, like its errors, each text once per
    command (λ > 0 is flagged by the search and again by each evolution); others by
    ``default``."""
    if not Path(filename).resolve().is_relative_to(_PACKAGE):
        default(message, category, filename, lineno, file, line)
        return
    text = " ".join(str(message).split())
    if text not in seen:
        seen.add(text)
        print(f"nasforge: warning: {text}", file=sys.stderr)


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
    """Run ``nasforge ARGV``; returns the exit code (0, 2 for a user error, 130 on ^C)."""
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
    except (MemoryError, RuntimeError) as exc:  # torch's allocators raise RuntimeErrors
        message = _out_of_memory(exc)
        if debug or message is None:
            raise
        print(f"nasforge: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nasforge: interrupted", file=sys.stderr)
        return 130
    return 0
