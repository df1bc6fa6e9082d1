"""A retriever factory that builds one retriever per distinct candidate set and hands it out again.

An evaluation asks a factory for a retriever per candidate set; a study that evaluates one system many times over
the same candidate sets (clean and perturbed queries, the significance runs after the evaluation) would build each
index (BM25, a dense candidate matrix) again every time. The retriever of a candidate set does not depend on the
queries, so :class:`RetrieverCache` builds it once.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pandas as pd

__all__ = ["RetrieverCache"]


class RetrieverCache:
    """Wraps a retriever factory (``factory(candidates) -> retriever``) and keeps the retriever of every candidate
    set it was asked for.

    The key is the candidates' docnos (in order) and a hash of every column's content, so a candidate set with the
    same docnos but another text gets its own retriever. ``factory`` stays reachable as ``.factory`` (e.g. a dense
    factory's ``.factory.encoder``). Deleting the cache frees the retrievers (models, indexes) it holds.
    """

    def __init__(self, factory: Callable[[pd.DataFrame], Any]):
        if not callable(factory):
            raise TypeError(f"factory must be callable (candidates -> retriever), got {type(factory).__name__}")
        self.factory = factory
        self._retrievers: dict[tuple, Any] = {}

    def __repr__(self) -> str:
        return f"RetrieverCache({self.factory!r}, {len(self._retrievers)} retrievers)"

    def __len__(self) -> int:
        return len(self._retrievers)

    def __call__(self, candidates: pd.DataFrame) -> Any:
        key = (tuple(candidates["docno"].astype(str)), _content_hash(candidates))
        if key not in self._retrievers:
            self._retrievers[key] = self.factory(candidates)
        return self._retrievers[key]


def _content_hash(frame: pd.DataFrame) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for column in sorted(frame.columns):
        digest.update(column.encode("utf-8"))
        for value in frame[column].astype(str):
            digest.update(value.encode("utf-8"))
            digest.update(b"\x1f")
    return digest.hexdigest()
