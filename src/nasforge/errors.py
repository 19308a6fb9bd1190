"""User-facing errors.

A :class:`NasforgeError` is a mistake in what the user asked for (a bad value, a missing
file). The CLI prints its message as one line and exits with code 2, and does the same for
an ``OSError`` (an unwritable output path, a full disk); anything else is a bug and keeps
its traceback (docs/errors.md).
"""


class NasforgeError(Exception):
    """A problem with the user's input: reported as one line, exit code 2."""


class NumericalError(NasforgeError):
    """A NaN or infinite loss stopped a run."""
