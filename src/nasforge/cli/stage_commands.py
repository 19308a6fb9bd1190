"""The command-line grammar of the stage commands alone (``search``, ``train``, ``entropy``,
``quality``, ``study ...``, ``snn ...``, ``demo``): what :mod:`nasforge.sweep` needs to
write a stage's command line and check it before anything runs, without the rest of the
command line (whose ``sweep`` command runs :mod:`nasforge.sweep`)."""

from __future__ import annotations

import argparse
import functools

from nasforge.cli import demo, proxy, search, snn, study, train
from nasforge.cli.common import command_parser

STAGE_GROUPS = (search, train, proxy, study, snn, demo)
"""The command groups holding a command of every stage in :mod:`nasforge.stages`."""


def stage_parser() -> argparse.ArgumentParser:
    """``nasforge`` with only the stage commands' groups: parses a stage's command line
    exactly as the full command line does."""
    return command_parser(STAGE_GROUPS)


@functools.cache
def command_options(command: tuple[str, ...]) -> frozenset[str]:
    """The option strings (``--algo``, ...) that the command ``command`` accepts."""
    parser = stage_parser()
    for word in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    return frozenset(s for action in parser._actions for s in action.option_strings)
