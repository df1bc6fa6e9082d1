"""BM25 over a candidate pool in any LAReQA language, without Java.

``BM25Retriever`` indexes a candidates frame with bm25s (BM25 with Lucene's IDF) over the terms of
``MultilingualTokenizer`` (ICU words, case folding, Snowball stemming), each candidate read in its own language, so
one index may hold a multilingual pool. With ``num_results=None`` it ranks *every* candidate for every query, with
its exact BM25 score (0 for a candidate that shares no term with the query), which is what rank-based measures
over the whole pool need (LAReQA's mAP). Ties are broken by docno, so rankings are deterministic.

Queries: an empty or whitespace-only ``query`` raises ``ValueError`` naming its qid (it is a broken topic, not a
question with no answer). A non-empty query none of whose terms occurs in the pool (or which has no terms at
all, e.g. only punctuation) scores every candidate 0, and the ranking is then the docno order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import pyterrier as pt

from .tokenization import MultilingualTokenizer, Tokenizer, TokenizerConfig

__all__ = ["BM25Config", "BM25Factory", "BM25Retriever"]


class BM25Retriever(pt.Transformer):
    """Ranks a fixed pool of candidates with BM25.

    Build it with ``BM25Retriever.from_candidates(candidates, ...)``.

    Input (topics): ``qid``, ``query``; optional ``lang`` (ISO 639 code of each query). Other columns are passed
    through.
    Output (results): the topic columns, ``docno``, ``score`` (float), ``rank`` (0-based, by descending score,
    ties by ascending docno); every candidate per query when ``num_results`` is None, else the first
    ``num_results``.

    Language of a query: its ``lang`` column when the topics have one, else ``query_lang``, else the language of
    the candidates when they are all in one language; otherwise ``ValueError``.

    Attributes: ``docnos`` (np.ndarray of the candidates' docnos in index order, which is ascending docno order)
    and ``score_matrix(topics)`` (the scores of every topic against every candidate, as used by the evaluation
    runner's fast path).
    """

    def __init__(
        self,
        bm25,
        docnos: np.ndarray,
        doc_langs: np.ndarray,
        tokenizer: Tokenizer,
        num_results: int | None = None,
        query_lang: str | None = None,
    ):
        """Wrap a bm25s index whose document i is ``docnos[i]``; prefer ``from_candidates``.

        ``docnos`` must be in ascending order: the stable sort by score then breaks ties by docno.
        """
        docnos = np.asarray(docnos, dtype=object)
        if len(docnos) != bm25.scores["num_docs"]:
            raise ValueError(f"{len(docnos)} docnos for an index of {bm25.scores['num_docs']} documents")
        if len(docnos) > 1 and not all(a < b for a, b in zip(docnos[:-1], docnos[1:])):
            raise ValueError("docnos must be unique and in ascending order (the order that breaks score ties)")
        if num_results is not None and num_results < 1:
            raise ValueError(f"num_results must be a positive number or None (all candidates), got {num_results}")
        if query_lang is not None:
            MultilingualTokenizer.language(query_lang)  # fail now on a malformed code, not at the first query
        self.bm25 = bm25
        self.docnos = docnos
        self.doc_langs = np.asarray(doc_langs, dtype=object)
        self.tokenizer = tokenizer
        self.num_results = num_results
        self.query_lang = query_lang

    def __repr__(self) -> str:
        return (
            f"BM25Retriever({len(self.docnos)} candidates, k1={self.bm25.k1}, b={self.bm25.b}, "
            f"num_results={self.num_results}, tokenizer={self.tokenizer!r})"
        )

    @classmethod
    def from_candidates(
        cls,
        candidates: pd.DataFrame,
        fields: Sequence[str] = ("text",),
        k1: float = 1.2,
        b: float = 0.75,
        tokenizer: Tokenizer | TokenizerConfig | None = None,
        num_results: int | None = None,
        query_lang: str | None = None,
        lang: str | None = None,
        show_progress: bool = True,
    ) -> "BM25Retriever":
        """Index ``candidates`` (``docno``, the ``fields`` columns, ``lang``).

        fields: the text columns indexed as one document, e.g. ``("text",)`` (the sentence) or
            ``("text", "context")`` (sentence and paragraph, LAReQA's candidate text); each is tokenised on its own
            so that words never run together across fields; a missing value (None/NaN) counts as empty.
        k1, b: BM25 parameters (defaults: Lucene's and Terrier's 1.2 and 0.75).
        tokenizer: a MultilingualTokenizer or its TokenizerConfig (default: ``TokenizerConfig()``), or any object
            with ``tokenize(text, lang) -> list[str]`` (e.g. a baseline tokeniser in a benchmark).
        lang: the language of every candidate when the frame has no ``lang`` column.
        """
        import bm25s

        fields = (fields,) if isinstance(fields, str) else tuple(fields)
        if not fields:
            raise ValueError("fields must name at least one text column of the candidates")
        tokenizer = _checked_tokenizer(tokenizer)
        _check_candidates(candidates, fields, lang)
        # Index in ascending docno order: a stable sort by score then breaks ties by docno.
        candidates = candidates.assign(docno=candidates["docno"].astype(str)).sort_values("docno", kind="stable")
        docnos = np.asarray(candidates["docno"], dtype=object)
        doc_langs = np.asarray(candidates["lang"], dtype=object) if "lang" in candidates.columns else None
        if doc_langs is None:
            doc_langs = np.full(len(candidates), lang, dtype=object)
        field_values = [np.asarray(candidates[name], dtype=object) for name in fields]

        corpus_tokens = _tokenized_candidates(field_values, doc_langs, fields, tokenizer, show_progress)
        if not any(corpus_tokens):
            raise ValueError(
                f"none of the {len(candidates)} candidates has a word in fields {list(fields)}: nothing to index"
            )
        # method="lucene": IDF log(1 + (N - df + 0.5) / (df + 0.5)) is never negative, so every score is >= 0 and a
        # candidate sharing no term with the query scores exactly 0.
        bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        bm25.index(corpus_tokens, show_progress=show_progress)
        return cls(bm25, docnos, doc_langs, tokenizer, num_results=num_results, query_lang=query_lang)

    # -- scoring ---------------------------------------------------------------------------------------------

    def _query_languages(self, topics: pd.DataFrame) -> np.ndarray:
        if "lang" in topics.columns:
            langs = np.asarray(topics["lang"], dtype=object)
            unset = [qid for qid, lang in zip(topics["qid"], langs) if not isinstance(lang, str)]
            if unset:
                raise ValueError(f"topics have no language in column 'lang' for qid(s) {unset[:5]}")
            return langs
        if self.query_lang is not None:
            return np.full(len(topics), self.query_lang, dtype=object)
        doc_languages = set(self.doc_langs)
        if len(doc_languages) == 1:
            return np.full(len(topics), next(iter(doc_languages)), dtype=object)
        raise ValueError(
            "the language of the queries is unknown: topics have no 'lang' column, no query_lang was given, and the "
            f"candidates are in several languages ({sorted(doc_languages)})"
        )

    def score_matrix(self, topics: pd.DataFrame) -> np.ndarray:
        """BM25 scores, float32 of shape [len(topics), len(self.docnos)]; row i scores ``topics.iloc[i]``."""
        pt.validate.query_frame(topics, ["query"])
        langs = self._query_languages(topics)
        queries = np.asarray(topics["query"], dtype=object)
        blank = [qid for qid, q in zip(topics["qid"], queries) if not isinstance(q, str) or not q.strip()]
        if blank:
            raise ValueError(f"empty or whitespace-only query for qid(s) {blank[:5]}: BM25 has nothing to match")
        vocab = self.bm25.vocab_dict
        # bm25s adds "" to the vocabulary past the index's last term (for empty documents): it can never match.
        indexed_terms = len(self.bm25.scores["indptr"]) - 1
        scores = np.zeros((len(topics), len(self.docnos)), dtype=np.float32)
        for i, (query, lang) in enumerate(zip(queries, langs)):
            # Terms not in the pool's vocabulary cannot match; every repetition of a term counts (bm25s' rule).
            term_ids = [vocab[term] for term in self.tokenizer.tokenize(query, lang)
                        if term in vocab and vocab[term] < indexed_terms]
            if term_ids:
                scores[i] = self.bm25.get_scores_from_ids(term_ids)
        return scores

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        scores = self.score_matrix(topics)
        num_docs = len(self.docnos)
        depth = num_docs if self.num_results is None else min(self.num_results, num_docs)
        # Stable sort of the negated scores: equal scores keep index order, which is ascending docno order.
        order = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        topic_rows = np.repeat(np.arange(len(topics)), depth)
        results = {column: np.asarray(topics[column])[topic_rows] for column in topics.columns
                   if column not in ("docno", "score", "rank")}
        results["docno"] = self.docnos[order.ravel()]
        results["score"] = np.take_along_axis(scores, order, axis=1).ravel().astype(np.float64)
        results["rank"] = np.tile(np.arange(depth), len(topics))
        return pd.DataFrame(results)


def _checked_tokenizer(tokenizer):
    """A MultilingualTokenizer for None or a TokenizerConfig; any other tokenizer must have ``tokenize``."""
    if tokenizer is None or isinstance(tokenizer, TokenizerConfig):
        return MultilingualTokenizer(tokenizer)
    if not callable(getattr(tokenizer, "tokenize", None)):
        raise TypeError(f"tokenizer must have a tokenize(text, lang) method, got {type(tokenizer).__name__}")
    return tokenizer


def _check_candidates(candidates: pd.DataFrame, fields: tuple[str, ...], lang: str | None) -> None:
    """The candidates have a docno, every field and a language (column or ``lang``), unique docnos, and rows."""
    required = ["docno", *fields] + ([] if lang is not None else ["lang"])
    missing = [column for column in required if column not in candidates.columns]
    if missing:
        hint = " (or pass lang= for a pool in one language)" if "lang" in missing else ""
        raise ValueError(f"candidates lack the column(s) {missing}{hint}; they have {list(candidates.columns)}")
    if len(candidates) == 0:
        raise ValueError("candidates is empty: there is nothing to index")
    duplicated = candidates["docno"][candidates["docno"].duplicated()]
    if len(duplicated):
        raise ValueError(f"candidates have duplicate docnos, e.g. {list(duplicated[:3])}")


def _tokenized_candidates(field_values, doc_langs, fields, tokenizer, show_progress: bool) -> list[list[str]]:
    """Every candidate's terms, field after field (a field is tokenised on its own)."""
    from tqdm.auto import tqdm

    # Candidates of one paragraph share its context: tokenise each distinct (language, text) once.
    cache: dict[tuple[str, str], list[str]] = {}

    def terms(text, language: str) -> list[str]:
        if not isinstance(text, str):
            if pd.isna(text):
                return []
            raise TypeError(f"candidate fields {list(fields)} must hold text, found {type(text).__name__} {text!r}")
        key = (language, text)
        if key not in cache:
            cache[key] = tokenizer.tokenize(text, language)
        return cache[key]

    return [
        [term for values in field_values for term in terms(values[i], doc_langs[i])]
        for i in tqdm(range(len(doc_langs)), desc="BM25 tokenising candidates", unit="doc",
                      disable=not show_progress)
    ]


@dataclass(frozen=True)
class BM25Config:
    """Settings of a BM25 baseline (see ``BM25Retriever.from_candidates``).

    The defaults are the best measured on XQuAD-R monolingual retrieval (benchmarks/bm25_tokenizers.py, mean mAP
    over 11 languages): sentence + paragraph 0.814 vs sentence alone 0.774, with ICU words + Snowball stemming and
    no stopword removal (stopwords: 0.813).
    """

    fields: tuple[str, ...] = ("text", "context")
    k1: float = 1.2
    b: float = 0.75
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    num_results: int | None = None
    show_progress: bool = True


class BM25Factory:
    """Retriever factory for the evaluation runner: ``BM25Factory(config)(candidates) -> BM25Retriever``."""

    def __init__(self, config: BM25Config | None = None):
        self.config = config if config is not None else BM25Config()

    def __repr__(self) -> str:
        return f"BM25Factory({self.config!r})"

    def __call__(self, candidates: pd.DataFrame) -> BM25Retriever:
        config = self.config
        return BM25Retriever.from_candidates(
            candidates,
            fields=config.fields,
            k1=config.k1,
            b=config.b,
            tokenizer=MultilingualTokenizer(config.tokenizer),
            num_results=config.num_results,
            show_progress=config.show_progress,
        )
