"""Evaluation over debiased vectors: a retriever factory that fits :class:`~.debias.LanguageDebias` on each pool.

:class:`DebiasedRetrieverFactory` wraps a :class:`~.dense.DenseRetrieverFactory` (kept as ``base``): it fits the
debiasing on the candidate pool it is asked for, reuses the base factory's cached vectors (encode once, debias
many) and returns a :class:`DebiasedExactRetriever`, an exact retriever over the debiased vectors.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .debias import QUERY, DebiasConfig, DebiasError, LanguageDebias, row_languages
from .debias_langid import LanguageIdentifier
from .dense import DenseRetrieverFactory, ExactDenseRetriever

__all__ = ["DebiasedExactRetriever", "DebiasedRetrieverFactory"]


class DebiasedExactRetriever(ExactDenseRetriever):
    """An :class:`ExactDenseRetriever` whose candidate vectors are debiased and whose query vectors are debiased
    by ``debias`` at scoring time (query languages from ``query_lang``/``lang`` or the debias' detector)."""

    def __init__(self, encoder, docnos, doc_vectors, debias: LanguageDebias, **kwargs):
        super().__init__(encoder, docnos, doc_vectors, **kwargs)
        self.debias = debias

    def __repr__(self) -> str:
        return f"DebiasedExactRetriever({self.encoder!r}, {len(self.docnos)} candidates, {self.debias!r})"

    def query_vectors(self, topics: pd.DataFrame) -> np.ndarray:
        vectors = super().query_vectors(topics)
        langs = row_languages(topics, ("query_lang", "lang"), "query", self.debias.detector, self.debias.config)
        return self.debias.transform_vectors(vectors, langs, QUERY)


class DebiasedRetrieverFactory:
    """``factory(candidates) -> DebiasedExactRetriever``: the base factory's retriever over ``candidates`` with the
    debiasing fitted on exactly those candidates (non-transductive: the candidate pool, plus optional query
    statistics from ``query_topics``, e.g. another collection's questions).

    Vectors come from the base factory's caches, so several debiased factories over one base factory (one per
    method) encode every candidate and query once.

    Args:
        base: a :class:`~.dense.DenseRetrieverFactory` (similarity "dot").
        config: the method.
        query_topics: questions (``qid``, ``query``, ``lang``) whose vectors give the query-side statistics.
        fit_candidates: fit once on these candidates (e.g. a collection's whole multilingual candidate set) and
            apply that fit to every pool, instead of fitting on each pool: then a query whose language is absent
            from a monolingual pool still gets its own language's statistics.
        label: how the system is described (``mean``, ``mean@mlqa-r``, ...).
    """

    def __init__(self, base: DenseRetrieverFactory, config: DebiasConfig, *,
                 query_topics: pd.DataFrame | None = None, detector: LanguageIdentifier | None = None,
                 fit_candidates: pd.DataFrame | None = None, label: str | None = None):
        if not isinstance(base, DenseRetrieverFactory):
            raise DebiasError(f"debiasing applies to dense systems, got {type(base).__name__}")
        if base.similarity != "dot":
            raise DebiasError("debiasing renormalises vectors: use it over a 'dot' factory")
        self.base = base
        self.config = config
        self.query_topics = query_topics
        self.detector = detector
        self.label = label or config.label
        self.fit_candidates = fit_candidates
        self._query_stats: tuple[np.ndarray, np.ndarray | None] | None = None
        self._fixed: LanguageDebias | None = None

    def __repr__(self) -> str:
        return f"DebiasedRetrieverFactory({self.base!r}, {self.label!r})"

    def query_statistics_vectors(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Vectors and languages of ``query_topics`` (encoded once, through the base factory's query cache)."""
        if self.query_topics is None:
            return None
        if self._query_stats is None:
            topics = self.query_topics
            keys = list(zip(topics["qid"].astype(str), topics["query"].astype(str)))
            vectors = self.base.query_cache.vectors(keys, topics["query"].astype(str).tolist(),
                                                    self.base.encoder.encode_queries)
            langs = row_languages(topics, ("query_lang", "lang"), "query", self.detector, self.config)
            self._query_stats = (vectors, langs)
        return self._query_stats

    def fit(self, candidates: pd.DataFrame) -> tuple[ExactDenseRetriever, LanguageDebias, np.ndarray | None]:
        """The base retriever over ``candidates``, the debiasing fitted on them (or on ``fit_candidates``) and the
        candidates' languages in the retriever's (docno) order."""
        base = self.base(candidates)
        langs = self._candidate_languages(candidates, base.docnos)
        if self.fit_candidates is not None:
            if self._fixed is None:
                self._fixed = self._fit_on(self.fit_candidates)
            return base, self._fixed, langs
        return base, self._fit_on(candidates, base, langs), langs

    def _candidate_languages(self, candidates: pd.DataFrame, docnos) -> np.ndarray | None:
        """The candidates' languages in ``docnos`` order (None for the label-free ``global`` method)."""
        if self.config.method == "global":
            return None
        by_docno = pd.Series(row_languages(candidates, ("doc_lang", "lang"), "text", self.detector, self.config),
                             index=candidates["docno"].astype(str).to_numpy())
        return by_docno.reindex(docnos).to_numpy(dtype=object)

    def _fit_on(self, candidates: pd.DataFrame, base: ExactDenseRetriever | None = None,
                langs: np.ndarray | None = None) -> LanguageDebias:
        if base is None:
            base = self.base(candidates)
            langs = self._candidate_languages(candidates, base.docnos)
        query = self.query_statistics_vectors()
        return LanguageDebias.fit_vectors(base.doc_vectors, langs, query_vectors=None if query is None else query[0],
                                          query_langs=None if query is None else query[1], method=self.config,
                                          detector=self.detector)

    def __call__(self, candidates: pd.DataFrame) -> DebiasedExactRetriever:
        base, debias, langs = self.fit(candidates)
        return DebiasedExactRetriever(base.encoder, base.docnos, debias.transform_vectors(base.doc_vectors, langs),
                                      debias, similarity="dot", num_results=base.num_results,
                                      query_cache=base.query_cache, query_chunk_size=base.query_chunk_size)
