"""Exact in-memory dense retrieval over a candidate pool, for evaluation.

:class:`ExactDenseRetriever` ranks ALL candidates of its pool for every query (exact scores, ties broken by docno),
so rank-based measures over the whole pool can be computed; :class:`DenseRetrieverFactory` builds one per
candidate pool and caches embeddings, so an evaluation that asks for many overlapping pools (one per language
setting) encodes every candidate and every query once per model::

    factory = DenseRetrieverFactory(SentenceTransformerBiEncoder(model_path))
    retriever = factory(collection.candidates(["de", "en"]))          # qid, query -> all candidates ranked
    scores = retriever.score_matrix(topics)                           # fast path: [len(topics), len(docnos)]

For large indexes or approximate search, index with pyterrier-dr's ``FlexIndex`` instead (see ``biencoder.py``).
"""
from __future__ import annotations

from typing import Callable, Hashable, Literal, Sequence

import numpy as np
import pandas as pd
import pyterrier as pt

from pyterrier_hybrid.retrieval.biencoder import SentenceTransformerBiEncoder, candidate_texts, check_queries

SimilarityName = Literal["dot", "cos"]
SIMILARITY_OPTIONS: tuple[str, ...] = ("dot", "cos")


class EmbeddingCache:
    """Vectors by key, computed on first request: ``vectors(keys, texts, encode)`` encodes only the texts whose
    keys it has not seen (each distinct key once) and returns the rows for ``keys`` in order."""

    def __init__(self):
        self._row_of: dict[Hashable, int] = {}
        self._blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None  # concatenation of _blocks, rebuilt lazily after growth

    def __len__(self) -> int:
        return len(self._row_of)

    def vectors(self, keys: Sequence[Hashable], texts: Sequence[str],
                encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        new_keys: dict[Hashable, str] = {}
        for key, text in zip(keys, texts):
            if key not in self._row_of and key not in new_keys:
                new_keys[key] = text
        if new_keys:
            block = np.asarray(encode(list(new_keys.values())), dtype=np.float32)
            if block.shape[0] != len(new_keys):
                raise RuntimeError(f"encoder returned {block.shape[0]} vectors for {len(new_keys)} texts")
            start = len(self._row_of)
            for offset, key in enumerate(new_keys):
                self._row_of[key] = start + offset
            self._blocks.append(block)
            self._matrix = None
        if self._matrix is None:
            self._matrix = np.concatenate(self._blocks) if self._blocks else np.empty((0, 0), dtype=np.float32)
            self._blocks = [self._matrix]
        rows = np.fromiter((self._row_of[key] for key in keys), dtype=np.int64, count=len(keys))
        return self._matrix[rows]


class ExactDenseRetriever(pt.Transformer):
    """Ranks every candidate of a fixed pool for each query by exact dot-product or cosine similarity.

    Input: ``qid``, ``query`` (+ any topic columns, passed through). Output: the topic columns + ``docno``,
    ``score``, ``rank`` (0-based by descending score; equal scores ranked by ascending docno), all candidates per
    query unless ``num_results`` is given.

    Fast path for evaluation: :attr:`docnos` (candidates in index order) and :meth:`score_matrix`.

    Args:
        encoder: encodes the queries (``encode_queries``).
        docnos: candidate docnos, unique.
        doc_vectors: their vectors [len(docnos), dim].
        similarity: "dot" or "cos".
        num_results: keep the top ``num_results`` per query (``None``: all candidates).
        query_cache: shares query vectors with other retrievers (keys ``(qid, query)``); a private one by default.
    """

    def __init__(self, encoder: SentenceTransformerBiEncoder, docnos: Sequence[str], doc_vectors: np.ndarray, *,
                 similarity: SimilarityName = "dot", num_results: int | None = None,
                 query_cache: EmbeddingCache | None = None, query_chunk_size: int = 256):
        if similarity not in SIMILARITY_OPTIONS:
            raise ValueError(f"similarity must be one of {SIMILARITY_OPTIONS}, got {similarity!r}")
        if num_results is not None and num_results < 1:
            raise ValueError(f"num_results must be a positive integer or None, got {num_results}")
        docnos = np.asarray([str(d) for d in docnos], dtype=object)
        doc_vectors = np.asarray(doc_vectors, dtype=np.float32)
        if doc_vectors.ndim != 2 or doc_vectors.shape[0] != len(docnos):
            raise ValueError(f"doc_vectors must have shape [{len(docnos)}, dim], got {doc_vectors.shape}")
        if len(set(docnos)) != len(docnos):
            raise ValueError("docnos must be unique")
        # Index order is docno order: a stable sort on descending score then breaks ties by docno for free.
        order = np.argsort(docnos.astype(str), kind="stable")
        self.docnos: np.ndarray = docnos[order]
        self.doc_vectors = _normalised(doc_vectors[order]) if similarity == "cos" else doc_vectors[order]
        self.encoder = encoder
        self.similarity = similarity
        self.num_results = num_results
        self.query_cache = query_cache if query_cache is not None else EmbeddingCache()
        self.query_chunk_size = query_chunk_size

    @classmethod
    def from_candidates(cls, encoder: SentenceTransformerBiEncoder, candidates: pd.DataFrame,
                        **kwargs) -> "ExactDenseRetriever":
        """Encode a candidates frame (``docno``, ``text`` [, ``context``]) and retrieve over it (no caching)."""
        pt.validate.columns(candidates, includes=["docno"])
        return cls(encoder, candidates["docno"].astype(str).tolist(), encoder.encode_candidates(candidates),
                   **kwargs)

    def __repr__(self) -> str:
        return (f"ExactDenseRetriever({self.encoder!r}, {len(self.docnos)} candidates, similarity={self.similarity!r}"
                f", num_results={self.num_results})")

    def query_vectors(self, topics: pd.DataFrame) -> np.ndarray:
        """Vectors [len(topics), dim] of the topics' queries (cached by ``(qid, query)``)."""
        pt.validate.columns(topics, includes=["qid", "query"])
        check_queries(topics)
        qids = topics["qid"].astype(str).tolist()
        queries = topics["query"].astype(str).tolist()
        vectors = self.query_cache.vectors(list(zip(qids, queries)), queries, self.encoder.encode_queries)
        return _normalised(vectors) if self.similarity == "cos" else vectors

    def score_matrix(self, topics: pd.DataFrame) -> np.ndarray:
        """Scores [len(topics), len(docnos)] (float32): row i for ``topics.iloc[i]``, column j for ``docnos[j]``."""
        if len(topics) == 0:
            return np.empty((0, len(self.docnos)), dtype=np.float32)
        return (self.query_vectors(topics) @ self.doc_vectors.T).astype(np.float32, copy=False)

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        pt.validate.query_frame(topics, extra_columns=["query"])
        topics = topics.reset_index(drop=True)
        passed = [c for c in topics.columns if c not in ("docno", "score", "rank", "query_vec")]
        if len(topics) == 0 or len(self.docnos) == 0:
            return pd.DataFrame({**{c: topics[c].iloc[:0] for c in passed},
                                 "docno": pd.Series([], dtype=object), "score": pd.Series([], dtype=np.float32),
                                 "rank": pd.Series([], dtype=np.int64)})
        depth = len(self.docnos) if self.num_results is None else min(self.num_results, len(self.docnos))
        chunks = []
        for start in range(0, len(topics), self.query_chunk_size):
            chunk = topics.iloc[start:start + self.query_chunk_size]
            scores = self.score_matrix(chunk)
            ranking = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
            result = chunk[passed].iloc[np.repeat(np.arange(len(chunk)), depth)].reset_index(drop=True)
            chunks.append(result.assign(
                docno=self.docnos[ranking.ravel()],
                score=np.take_along_axis(scores, ranking, axis=1).ravel(),
                rank=np.tile(np.arange(depth, dtype=np.int64), len(chunk)),
            ))
        return pd.concat(chunks, ignore_index=True)


class DenseRetrieverFactory:
    """``factory(candidates) -> ExactDenseRetriever`` over exactly those candidates, sharing embedding caches.

    Candidate vectors are cached by ``(docno, text encoded)`` and query vectors by ``(qid, query)``, for the life
    of the factory: create one factory per model (and per ``candidate_text``) and call it for every pool.

    Args:
        encoder: the bi-encoder (its ``candidate_text`` decides what is encoded for a candidate).
        similarity: "dot" or "cos".
        num_results: passed to the retrievers (``None``: rank all candidates).
    """

    def __init__(self, encoder: SentenceTransformerBiEncoder, *, similarity: SimilarityName = "dot",
                 num_results: int | None = None):
        if similarity not in SIMILARITY_OPTIONS:
            raise ValueError(f"similarity must be one of {SIMILARITY_OPTIONS}, got {similarity!r}")
        self.encoder = encoder
        self.similarity = similarity
        self.num_results = num_results
        self.candidate_cache = EmbeddingCache()
        self.query_cache = EmbeddingCache()

    def __repr__(self) -> str:
        return f"DenseRetrieverFactory({self.encoder!r}, similarity={self.similarity!r})"

    def __call__(self, candidates: pd.DataFrame) -> ExactDenseRetriever:
        pt.validate.columns(candidates, includes=["docno"])
        docnos = candidates["docno"].astype(str).tolist()
        texts = candidate_texts(candidates, self.encoder.candidate_text, self.encoder.text_field)
        vectors = self.candidate_cache.vectors(list(zip(docnos, texts)), texts, self.encoder.encode_docs)
        return ExactDenseRetriever(self.encoder, docnos, vectors, similarity=self.similarity,
                                   num_results=self.num_results, query_cache=self.query_cache)


def _normalised(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, np.finfo(np.float32).tiny)).astype(np.float32, copy=False)


__all__ = ["DenseRetrieverFactory", "EmbeddingCache", "ExactDenseRetriever"]
