"""A LAReQA collection restricted to some of its questions, for runs that cannot afford every question.

:class:`TopicSubset` offers what :func:`~pyterrier_hybrid.evaluation.evaluate_lareqa` uses of a collection (``name``,
``languages``, ``check_languages``, ``candidates``, ``topics``, ``qrels``), with the topics and qrels restricted to
some qids. Three ways to choose them:

- :meth:`TopicSubset.sample_per_language`: at most N questions per language, the same parallel questions in every
  language (the robustness study's CPU budget);
- :meth:`TopicSubset.sample_parallel_ids`: the questions of N parallel ids drawn at random (quick runs of the
  comparison), optionally with the candidate pools cut down to the answers' paragraphs (smoke tests only);
- :meth:`TopicSubset.of_articles`: the questions of some articles (held-out splits by article).

Subsets nest: ``TopicSubset.sample_per_language(TopicSubset.of_articles(c, articles), 50)`` samples within the
articles.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = ["TopicSubset"]


class TopicSubset:
    """A LAReQA collection restricted to the questions ``qids``.

    Args:
        collection: a :class:`~pyterrier_hybrid.datasets.LAReQACollection` (or another subset).
        qids: the questions kept (in every language they are asked in).
        description: what the subset is, for reports (", answer paragraphs only" is added when it applies).
        answer_paragraphs_only: keep only the candidates of the paragraphs that hold the kept questions' answers
            (much smaller and easier pools: for smoke tests, not for comparable numbers). By default every
            candidate is kept and the pools are those of the full collection.
    """

    def __init__(self, collection, qids: Iterable[str], description: str = "subset", *,
                 answer_paragraphs_only: bool = False):
        self.collection = collection
        self.qids = frozenset(str(q) for q in qids)
        if not self.qids:
            raise ValueError(f"a topic subset needs at least one question; none of {collection!r} is selected")
        self.description = description + (", answer paragraphs only" if answer_paragraphs_only else "")
        self.answer_paragraphs_only = answer_paragraphs_only
        self.name = collection.name
        self.languages = collection.languages
        self._answer_contexts: set[str] | None = None

    def __repr__(self) -> str:
        return f"TopicSubset({self.collection!r}, {len(self.qids)} questions: {self.description})"

    # -- ways to choose the questions ------------------------------------------------------------------------------

    @classmethod
    def sample_per_language(cls, collection, max_queries_per_lang: int | None, seed: int = 0,
                            langs: Iterable[str] | None = None, *,
                            answer_paragraphs_only: bool = False) -> TopicSubset:
        """At most ``max_queries_per_lang`` questions of each language, the same parallel questions across languages
        where they exist: parallel ids are ordered by a hash of (seed, parallel id) and each language keeps its
        first ones. Deterministic, independent of the language list, and nested (a smaller sample is part of a
        larger one with the same seed). ``None`` keeps every question. ``answer_paragraphs_only``: as in
        :meth:`sample_parallel_ids`."""
        if max_queries_per_lang is not None and max_queries_per_lang < 1:
            raise ValueError(f"max_queries_per_lang must be >= 1 or None, got {max_queries_per_lang}")
        topics = collection.topics(langs)
        within = _within(collection)
        if max_queries_per_lang is None:
            return cls(collection, topics["qid"], within + "all questions",
                       answer_paragraphs_only=answer_paragraphs_only)
        order = topics["parallel_id"].astype(str).map(lambda pid: _stable_hash(seed, pid))
        chosen = (topics.assign(_order=order).sort_values(["lang", "_order", "qid"])
                  .groupby("lang", sort=False).head(max_queries_per_lang))
        return cls(collection, chosen["qid"],
                   within + f"at most {max_queries_per_lang} questions per language (seed {seed})",
                   answer_paragraphs_only=answer_paragraphs_only)

    @classmethod
    def sample_parallel_ids(cls, collection, langs: Sequence[str] | None, n: int, seed: int = 0, *,
                            answer_paragraphs_only: bool = False) -> TopicSubset:
        """The questions (in every language) of ``n`` parallel ids drawn at random (numpy, fixed ``seed``) among
        those asked in ``langs``; all of them when there are no more than ``n``."""
        if n < 1:
            raise ValueError(f"the number of parallel ids must be >= 1, got {n}")
        parallel_ids = sorted(set(collection.topics(langs)["parallel_id"]))
        if n < len(parallel_ids):
            chosen = np.random.default_rng(seed).choice(len(parallel_ids), size=n, replace=False)
            parallel_ids = [parallel_ids[i] for i in sorted(chosen)]
        everything = collection.topics()
        kept = everything[everything["parallel_id"].isin(set(parallel_ids))]
        description = _within(collection) + f"the questions of {len(parallel_ids)} parallel ids (seed {seed})"
        return cls(collection, kept["qid"], description, answer_paragraphs_only=answer_paragraphs_only)

    @classmethod
    def of_articles(cls, collection, articles: Iterable[str], langs: Iterable[str] | None = None) -> TopicSubset:
        """The questions of the given articles (the ``article`` column of the topics: held-out splits by article)."""
        articles = set(articles)
        topics = collection.topics(langs)
        unknown = articles - set(topics["article"])
        if unknown:
            raise ValueError(f"{len(unknown)} article(s) are not in {collection.name}: {sorted(unknown)[:5]}")
        kept = topics[topics["article"].isin(articles)]
        return cls(collection, kept["qid"], f"questions of {len(articles)} articles")

    # -- the collection interface ----------------------------------------------------------------------------------

    def check_languages(self, langs):
        return self.collection.check_languages(langs)

    def candidates(self, langs=None) -> pd.DataFrame:
        candidates = self.collection.candidates(langs)
        if not self.answer_paragraphs_only:
            return candidates
        if self._answer_contexts is None:
            everything = self.collection.candidates()
            answers = set(self.qrels()["docno"])
            self._answer_contexts = set(everything.loc[everything["docno"].isin(answers), "context"])
        return candidates[candidates["context"].isin(self._answer_contexts)].reset_index(drop=True)

    def topics(self, langs=None, doc_langs=None) -> pd.DataFrame:
        topics = self.collection.topics(langs, doc_langs)
        return topics[topics["qid"].astype(str).isin(self.qids)].reset_index(drop=True)

    def qrels(self, query_langs=None, doc_langs=None) -> pd.DataFrame:
        qrels = self.collection.qrels(query_langs, doc_langs)
        return qrels[qrels["qid"].astype(str).isin(self.qids)].reset_index(drop=True)


def _within(collection) -> str:
    return f"{collection.description}; " if isinstance(collection, TopicSubset) else ""


def _stable_hash(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}\x1f{key}".encode("utf-8"), digest_size=8).digest(), "big")
