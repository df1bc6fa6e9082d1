"""The transformer contract shared by every query perturbation."""
from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pyterrier as pt
from pyterrier.model import push_queries

from .text import check_language_code

__all__ = ["QueryPerturbation"]


class QueryPerturbation(pt.Transformer, abc.ABC):
    """A query rewriter placed before a retriever (``perturbation >> retriever``).

    Input: topics with ``qid``, ``query`` and either a ``lang`` column or the ``lang=`` given at construction
    (the column wins when both are present); other columns (``parallel_id``, ...) pass through.
    Output: the same frame with ``query`` replaced and the original moved to ``query_0`` (PyTerrier's convention
    for rewritten queries: an existing ``query_0`` becomes ``query_1``, and so on), every other column and the
    row order unchanged.

    The result for a topic depends only on (seed, qid, query, lang): not on the other topics in the frame.
    """

    def __init__(self, *, seed: int = 0, lang: str | None = None):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.seed = seed
        self.lang = None if lang is None else check_language_code(lang)
        if self.lang is not None:
            self.check_language(self.lang)

    # Subclasses implement these two.
    def check_language(self, lang: str) -> None:
        """Raise ValueError, naming the supported languages, when ``lang`` cannot be perturbed."""

    @abc.abstractmethod
    def perturb(self, topic: Mapping[str, Any]) -> str:
        """The perturbed query of one topic (a mapping with at least ``qid``, ``query`` and ``lang``)."""

    # The contract.
    required_columns: tuple[str, ...] = ("qid", "query")

    def topic_records(self, topics: pd.DataFrame) -> list[dict[str, Any]]:
        """Validated topic rows as dicts, with ``qid`` as str and ``lang`` resolved."""
        if not isinstance(topics, pd.DataFrame):
            raise TypeError(f"{type(self).__name__} expects a topics DataFrame, got {type(topics).__name__}")
        missing = [c for c in self.required_columns if c not in topics.columns]
        if missing:
            raise KeyError(
                f"{type(self).__name__} needs topic columns {list(self.required_columns)}; missing {missing} "
                f"(got {list(topics.columns)})"
            )
        if "lang" not in topics.columns and self.lang is None:
            raise KeyError(
                f"{type(self).__name__} needs to know each query's language: give topics a 'lang' column or pass "
                "lang=... when constructing it"
            )
        records = topics.to_dict("records")
        for record in records:
            record["qid"] = str(record["qid"])
            if "lang" in topics.columns:
                record["lang"] = check_language_code(record["lang"])
            else:
                record["lang"] = self.lang
            query = record["query"]
            if not isinstance(query, str) or not query.strip():
                raise ValueError(f"topic {record['qid']!r} has an empty or missing query: {query!r}")
        for lang in sorted({r["lang"] for r in records}):
            self.check_language(lang)
        return records

    def with_queries(self, topics: pd.DataFrame, queries: list[str]) -> pd.DataFrame:
        return replace_queries(topics, queries)

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        records = self.topic_records(topics)
        return self.with_queries(topics, [self.perturb(record) for record in records])


def replace_queries(topics: pd.DataFrame, queries: list[str]) -> pd.DataFrame:
    """``topics`` with ``query`` replaced by ``queries`` and the original kept as ``query_0`` (PyTerrier's
    ``push_queries`` convention), the new query in the old one's column position."""
    out = push_queries(topics)
    out["query"] = pd.Series(queries, index=out.index, dtype=object)
    # push_queries renamed the column in place: put the new query just before it.
    columns = list(out.columns)
    columns.remove("query")
    columns.insert(columns.index("query_0"), "query")
    return out[columns]
