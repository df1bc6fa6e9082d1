"""LAReQA collections (XQuAD-R, MLQA-R): release files, parsing, ir_datasets registration, training view."""
from .candidates import CANDIDATE_TEXT_OPTIONS, candidate_text, join_candidate_text
from .errors import (
    ChecksumMismatchError,
    CorruptReleaseFileError,
    LAReQAError,
    MissingReleaseFileError,
    UnknownCollectionError,
    UnknownDatasetIdError,
    UnknownLanguageError,
)
from .lareqa import COLLECTIONS, LAReQACollection, lareqa_collection
from .parallel import ParallelExample
from .release import LANGUAGES as LAREQA_LANGUAGES
from .release import LOCAL_DIR_ENV, ReleaseFiles

__all__ = [
    "CANDIDATE_TEXT_OPTIONS",
    "COLLECTIONS",
    "LAREQA_LANGUAGES",
    "LOCAL_DIR_ENV",
    "ChecksumMismatchError",
    "CorruptReleaseFileError",
    "LAReQACollection",
    "LAReQAError",
    "MissingReleaseFileError",
    "ParallelExample",
    "ReleaseFiles",
    "UnknownCollectionError",
    "UnknownDatasetIdError",
    "UnknownLanguageError",
    "candidate_text",
    "join_candidate_text",
    "lareqa_collection",
]
