"""Argument helpers shared by the ``pyterrier-hybrid`` subcommands.

Language lists are accepted the same way everywhere: ``--langs de,en``, ``--langs de en`` and ``--langs de, en``
all mean ``("de", "en")``. Add such an option with :func:`add_language_option` (or ``nargs="+"`` and
``action=LanguageListAction`` by hand); library code that takes a user's list can call :func:`language_list`.
Numeric options that must be positive take ``type=positive_int`` / ``type=positive_float``, so a bad value is an
argparse error (one line, exit 2) before anything is loaded.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Iterable

__all__ = ["LanguageListAction", "add_language_option", "language_list", "positive_float", "positive_int"]

_SEPARATORS = re.compile(r"[,\s]+")


def language_list(values: str | Iterable[str] | None) -> tuple[str, ...]:
    """The languages in ``values`` (one string or several), split on commas and whitespace, in order, without
    repeats: ``language_list(["de,en", "ar"]) == ("de", "en", "ar")``; ``None`` gives ``()``."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    languages: dict[str, None] = {}  # a dict keeps the first-seen order
    for value in values:
        for lang in _SEPARATORS.split(value.strip()):
            if lang:
                languages[lang] = None
    return tuple(languages)


class LanguageListAction(argparse.Action):
    """argparse action for ``nargs="+"`` language options: stores :func:`language_list` of the values, a tuple.

    A value that holds no language at all (``--langs ,``) is an argparse error (exit 2)."""

    def __call__(self, parser, namespace, values, option_string=None):
        languages = language_list(values)
        if not languages:
            parser.error(f"argument {option_string}: expected at least one language code")
        setattr(namespace, self.dest, languages)


def add_language_option(parser, *flags: str, **kwargs) -> argparse.Action:
    """``parser.add_argument(*flags, nargs="+", action=LanguageListAction, metavar="LANG", **kwargs)``."""
    kwargs.setdefault("metavar", "LANG")
    return parser.add_argument(*flags, nargs="+", action=LanguageListAction, **kwargs)


def add_answer_paragraphs_option(parser, sample_flag: str = "--max-queries") -> argparse.Action:
    """``--answer-paragraphs-only``, as ``evaluate``, ``compare`` and ``robustness`` take it (the same words in every
    help); ``sample_flag`` is the command's option that draws the questions."""
    return parser.add_argument("--answer-paragraphs-only", action="store_true",
                               help=f"with {sample_flag}, keep only the candidates of the kept questions' answer "
                                    "paragraphs (tiny pools: smoke tests only)")


def positive_int(text: str) -> int:
    """argparse ``type`` for an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse ``type`` for a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value
