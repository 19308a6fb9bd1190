"""The ``nasforge`` command line: a thin layer over the library's stage functions.

One module per command group holds its parser and its handlers (:mod:`.search`,
:mod:`.train`, :mod:`.proxy`, :mod:`.plot`, :mod:`.bench`, :mod:`.study`, :mod:`.snn`,
:mod:`.data`, :mod:`.demo`, :mod:`.runs`, :mod:`.sweep`); :mod:`.app` builds the whole
parser and runs a command; :mod:`.common` holds what the groups share.
"""

from nasforge.cli.app import build_parser, main

__all__ = ["build_parser", "main"]
