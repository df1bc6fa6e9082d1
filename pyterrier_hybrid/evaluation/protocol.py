"""What the evaluations ask of a retriever factory and of its retrievers, shared by every runner.

A retriever factory, ``factory(candidates) -> pt.Transformer``, builds a retriever over exactly the given
candidates (:data:`RetrieverFactory`; the LAReQA runner, :mod:`.runner`, says what its rankings must hold). A
retriever may also offer the fast path :class:`ScoreMatrixRetriever`: ``docnos`` and ``score_matrix(topics)``, the
scores of every topic against every candidate, from which exact ranks and top-k runs are taken without building
results frames (:func:`has_score_matrix` tells whether it does).
"""
from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import numpy as np
import pandas as pd

__all__ = ["SCORE_MATRIX_METHOD", "RetrieverFactory", "ScoreMatrixRetriever", "describe_factory", "has_score_matrix"]

SCORE_MATRIX_METHOD = "score_matrix"

RetrieverFactory = Callable[[pd.DataFrame], "object"]


@runtime_checkable
class ScoreMatrixRetriever(Protocol):
    """The optional fast path of a retriever made by a retriever factory (see the module documentation)."""

    docnos: np.ndarray

    def score_matrix(self, topics: pd.DataFrame) -> np.ndarray:
        """Scores of every topic against every candidate: shape [len(topics), len(self.docnos)]."""
        ...


def has_score_matrix(retriever) -> bool:
    return callable(getattr(retriever, SCORE_MATRIX_METHOD, None)) and getattr(retriever, "docnos", None) is not None


def describe_factory(factory) -> str:
    """The name a result gives a retriever factory when the caller names no system: its ``__name__`` or type."""
    return getattr(factory, "__name__", None) or type(factory).__name__
