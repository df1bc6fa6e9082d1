"""The package's one user-error type.

A :class:`UserError` is a problem with what the user asked for (an unknown language or collection, a missing model
folder, a missing or corrupt data file, a bad option value), not a bug. The ``pyterrier-hybrid`` command prints it
as one line, ``pyterrier-hybrid <command>: error: <message>``, and exits with status 2, like argparse does for a bad
flag (:func:`error_line` is that line). Library callers can catch it to tell bad input from failures.

This module imports nothing from the package, so every layer (datasets, training, models, retrieval, evaluation,
experiments) can raise it or subclass it.
"""
from __future__ import annotations

__all__ = ["UserError", "error_line"]


class UserError(Exception):
    """A problem with what the user asked for; the CLI prints it as one line and exits 2."""


def error_line(prog: str, error: BaseException) -> str:
    """``<prog>: error: <message>`` on one line (a message spanning lines is joined with spaces)."""
    return f"{prog}: error: {' '.join(str(error).split())}"
