"""Errors raised for bad dataset requests and bad release files; each message names the problem."""
from __future__ import annotations


class LAReQAError(Exception):
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
