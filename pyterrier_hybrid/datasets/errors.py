"""Errors raised for bad dataset requests and bad release files; each message names the problem.

They are user errors (:class:`pyterrier_hybrid.errors.UserError`: the CLI prints them as one line and exits 2) and
keep the built-in base that fits each (``KeyError``, ``ValueError``, ``FileNotFoundError``) for callers that catch
those.
"""
from __future__ import annotations

from ..errors import UserError


class LAReQAError(UserError):
    """Base class of the dataset errors."""


class UnknownCollectionError(LAReQAError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownLanguageError(LAReQAError, ValueError):
    pass


class UnknownDatasetIdError(LAReQAError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class MissingReleaseFileError(LAReQAError, FileNotFoundError):
    pass


class ChecksumMismatchError(LAReQAError, ValueError):
    pass


class CorruptReleaseFileError(LAReQAError, ValueError):
    pass
