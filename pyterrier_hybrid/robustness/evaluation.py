"""Evaluating retrievers on perturbed queries with the LAReQA evaluation runner, and comparing with clean queries.

    from pyterrier_hybrid.evaluation import evaluate_lareqa
    from pyterrier_hybrid.robustness import CharacterNoise
    from pyterrier_hybrid.robustness.evaluation import PerturbedFactory, compare_to_clean

    clean = evaluate_lareqa(factory, "xquad-r", ["de", "en"])
    noisy = evaluate_lareqa(PerturbedFactory(factory, CharacterNoise(edits=2)), "xquad-r", ["de", "en"])
    compare_to_clean(clean, noisy)      # setting_type, measure, value, clean_value, relative_drop, ...

Pieces:

- :class:`CachedPerturbation`: a query perturbation that perturbs each distinct topic once and remembers the
  result. The runner asks the same questions in many settings (a German question is asked against German
  candidates, against every other language and in the pool), and some perturbations are slow (romanisation,
  white-box attacks), so each is computed once per (qid, query) and shared by every retriever (and, when the
  same object is passed to several factories, every system).
- :class:`PerturbedFactory` / :class:`PerturbedRetriever`: a retriever factory whose retrievers perturb the
  queries before scoring, in ``transform`` and in the runner's ``score_matrix`` fast path alike (so an evaluation
  on perturbed queries stays as fast as a clean one).
- :class:`QueryTable`: a "perturbation" that looks queries up by qid (precomputed rewrites: adversarial attacks).
- :class:`~pyterrier_hybrid.evaluation.cache.RetrieverCache` (re-exported here): reuses
  the retriever built for a candidate set, so that a clean run and many perturbed runs of one system build each
  index (BM25) once.
- :class:`~pyterrier_hybrid.evaluation.subsets.TopicSubset` (re-exported here): a LAReQA collection restricted to
  some of its questions (a deterministic sample per language for CPU budgets, or the questions of held-out
  articles), every candidate kept.
- :func:`compare_to_clean`, :func:`compare_per_language`, :func:`relative_drop`: the drop from clean to perturbed.
- :func:`dense_text_scorer`, :func:`adversarial_queries_by_budget`: white-box adversarial typos against a dense
  system's own ``text_scorer()``, one greedy search giving every budget.

Dependency direction: this module uses :mod:`pyterrier_hybrid.evaluation` (and, for :func:`dense_text_scorer`,
the retrieval encoders); neither depends on it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyterrier as pt

from ..evaluation.cache import RetrieverCache
from ..evaluation.measures import AP, MAP, RANK_DISTANCE
from ..evaluation.protocol import SCORE_MATRIX_METHOD, has_score_matrix
from ..evaluation.report import EvaluationResult, summary_frame
from ..evaluation.subsets import TopicSubset
from .base import replace_queries
from .text import SegmentedText

__all__ = [
    "LOWER_IS_BETTER",
    "CachedPerturbation",
    "PerturbedFactory",
    "PerturbedRetriever",
    "QueryTable",
    "RetrieverCache",
    "TopicSubset",
    "adversarial_queries_by_budget",
    "compare_per_language",
    "compare_to_clean",
    "dense_text_scorer",
    "relative_drop",
    "supported_languages",
]

#: Measures for which a larger value is worse (the drop is then the relative increase).
LOWER_IS_BETTER = frozenset({RANK_DISTANCE})


# ---------------------------------------------------------------------------------------------------------------
# Perturbing queries once


def supported_languages(perturbation: pt.Transformer, langs: Iterable[str]) -> tuple[str, ...]:
    """The languages of ``langs`` that ``perturbation`` accepts (its ``check_language`` does not raise); every one
    for a transformer without ``check_language``."""
    check = getattr(perturbation, "check_language", None)
    if check is None:
        return tuple(langs)
    supported = []
    for lang in langs:
        try:
            check(lang)
        except ValueError:
            continue
        supported.append(lang)
    return tuple(supported)


class CachedPerturbation(pt.Transformer):
    """Applies a query perturbation once per distinct topic and reuses the result.

    Args:
        perturbation: a ``pt.Transformer`` mapping topics to topics with ``query`` rewritten (every
            :class:`~pyterrier_hybrid.robustness.QueryPerturbation`, a :class:`QueryTable`, ...), one output row per
            input row, same qids in the same order. Its result for a topic must depend on the topic alone (true of
            the package's perturbations: they are seeded per qid), since it is computed once for all frames.
        langs: perturb only queries in these languages (needs a ``lang`` column); others pass unchanged. ``None``
            perturbs every query.

    Input: topics with ``qid``, ``query`` (and ``lang`` when ``langs`` is given, plus whatever the perturbation
    needs). Output: the same frame with ``query`` perturbed and the original in ``query_0`` (PyTerrier's convention
    for rewritten queries), every row, in order.

    The cache key is (qid, query): a topic asked again with another text is perturbed again.
    """

    def __init__(self, perturbation: pt.Transformer, *, langs: Iterable[str] | None = None):
        if not callable(getattr(perturbation, "transform", None)):
            raise TypeError(f"perturbation must be a pt.Transformer, got {type(perturbation).__name__}")
        self.perturbation = perturbation
        self.langs = None if langs is None else frozenset(langs)
        self._queries: dict[tuple[str, str], str] = {}
        self._langs: dict[tuple[str, str], Any] = {}

    def __repr__(self) -> str:
        langs = "" if self.langs is None else f", langs={sorted(self.langs)}"
        return f"CachedPerturbation({self.perturbation!r}{langs})"

    def __len__(self) -> int:
        return len(self._queries)

    def _selected(self, topics: pd.DataFrame) -> np.ndarray:
        if self.langs is None:
            return np.ones(len(topics), dtype=bool)
        if "lang" not in topics.columns:
            raise KeyError("CachedPerturbation(langs=...) needs a 'lang' column in the topics to choose the queries "
                           "to perturb")
        return topics["lang"].isin(self.langs).to_numpy()

    def perturbed_queries(self, topics: pd.DataFrame) -> list[str]:
        """The perturbed query text of every row of ``topics`` (computing the ones not seen yet)."""
        pt.validate.query_frame(topics, ["query"])
        keys = list(zip(topics["qid"].astype(str), topics["query"].astype(str)))
        selected = self._selected(topics)
        todo = [i for i, key in enumerate(keys) if selected[i] and key not in self._queries]
        if todo:
            # one row per new key: the same question may occur twice in a frame
            first: dict[tuple[str, str], int] = {}
            for i in todo:
                first.setdefault(keys[i], i)
            rows = topics.iloc[list(first.values())].reset_index(drop=True)
            perturbed = self.perturbation.transform(rows)
            if len(perturbed) != len(rows) or "query" not in perturbed.columns:
                raise ValueError(f"the perturbation {self.perturbation!r} must return one row with a 'query' per "
                                 f"topic: got {len(perturbed)} rows for {len(rows)} topics")
            if list(perturbed["qid"].astype(str)) != list(rows["qid"].astype(str)):
                raise ValueError(f"the perturbation {self.perturbation!r} changed the qids or their order")
            for key, query, row in zip(first, perturbed["query"], range(len(rows))):
                if not isinstance(query, str):
                    raise ValueError(f"the perturbation returned a non-text query {query!r} for qid {key[0]!r}")
                self._queries[key] = query
                self._langs[key] = rows["lang"].iloc[row] if "lang" in rows.columns else None
        return [self._queries[key] if selected[i] else key[1] for i, key in enumerate(keys)]

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        return replace_queries(topics, self.perturbed_queries(topics))

    def examples(self) -> pd.DataFrame:
        """Every topic perturbed so far: qid, lang, query_0 (original), query (perturbed), changed (bool)."""
        frame = pd.DataFrame(
            [(qid, self._langs[(qid, original)], original, query) for (qid, original), query in self._queries.items()],
            columns=["qid", "lang", "query_0", "query"],
        )
        frame["changed"] = frame["query"] != frame["query_0"]
        return frame


class QueryTable(pt.Transformer):
    """Replaces each topic's query by the one given for its qid (precomputed rewrites such as adversarial attacks).

    Args:
        queries: qid -> new query.
        missing: "error" (default): a topic whose qid is not in ``queries`` raises KeyError; "keep": it keeps its
            query.

    Input: topics with ``qid``, ``query``; output: ``query`` replaced, the original in ``query_0``.
    """

    def __init__(self, queries: Mapping[str, str], *, missing: str = "error"):
        if missing not in ("error", "keep"):
            raise ValueError(f"missing must be 'error' or 'keep', got {missing!r}")
        self.queries = {str(qid): query for qid, query in queries.items()}
        self.missing = missing

    def __repr__(self) -> str:
        return f"QueryTable({len(self.queries)} queries, missing={self.missing!r})"

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        pt.validate.query_frame(topics, ["query"])
        qids = topics["qid"].astype(str).tolist()
        unknown = [qid for qid in qids if qid not in self.queries]
        if unknown and self.missing == "error":
            raise KeyError(f"QueryTable has no query for {len(unknown)} topic(s), e.g. {unknown[:3]}; pass "
                           "missing='keep' to leave them unchanged")
        queries = [self.queries.get(qid, query) for qid, query in zip(qids, topics["query"].astype(str))]
        return replace_queries(topics, queries)


# ---------------------------------------------------------------------------------------------------------------
# Retriever factories


class PerturbedRetriever(pt.Transformer):
    """A retriever that perturbs the queries first: ``perturbation >> retriever``, plus the fast path.

    Input: topics (``qid``, ``query`` and what the perturbation needs). Output: the wrapped retriever's results for
    the perturbed topics (``query`` perturbed, the original in ``query_0``).

    Fast path (see :mod:`pyterrier_hybrid.evaluation.runner`): when the wrapped retriever has ``docnos`` and
    ``score_matrix``, so does this one, scoring the perturbed queries; otherwise ``docnos`` is None and the
    runner uses ``transform``.
    """

    def __init__(self, retriever: pt.Transformer, perturbation: CachedPerturbation):
        self.retriever = retriever
        self.perturbation = perturbation

    def __repr__(self) -> str:
        return f"PerturbedRetriever({self.perturbation!r} >> {self.retriever!r})"

    @property
    def docnos(self) -> np.ndarray | None:
        return self.retriever.docnos if has_score_matrix(self.retriever) else None

    def score_matrix(self, topics: pd.DataFrame) -> np.ndarray:
        """The wrapped retriever's scores for the perturbed topics (row i: ``topics.iloc[i]``)."""
        if not has_score_matrix(self.retriever):
            raise AttributeError(f"the wrapped retriever {self.retriever!r} has no score_matrix fast path")
        return getattr(self.retriever, SCORE_MATRIX_METHOD)(self.perturbation.transform(topics))

    def transform(self, topics: pd.DataFrame) -> pd.DataFrame:
        return self.retriever.transform(self.perturbation.transform(topics))


class PerturbedFactory:
    """A retriever factory (``factory(candidates) -> retriever``) whose retrievers see perturbed queries.

    Args:
        factory: the clean retriever factory.
        perturbation: a query perturbation (``pt.Transformer``), or a :class:`CachedPerturbation` to share
            perturbed queries between factories (several systems evaluated on the same perturbed queries).
        langs: perturb only queries in these languages (see :class:`CachedPerturbation`); not allowed together with
            a ready :class:`CachedPerturbation` (which has its own).

    Every retriever the factory makes shares one cache, so a question is perturbed once however many settings ask
    it.
    """

    def __init__(self, factory: Callable[[pd.DataFrame], Any], perturbation: pt.Transformer, *,
                 langs: Iterable[str] | None = None):
        if not callable(factory):
            raise TypeError(f"factory must be callable (candidates -> retriever), got {type(factory).__name__}")
        if isinstance(perturbation, CachedPerturbation):
            if langs is not None:
                raise ValueError("pass langs to the CachedPerturbation, not to PerturbedFactory")
            self.perturbation = perturbation
        else:
            self.perturbation = CachedPerturbation(perturbation, langs=langs)
        self.factory = factory

    def __repr__(self) -> str:
        return f"PerturbedFactory({self.factory!r}, {self.perturbation!r})"

    def __call__(self, candidates: pd.DataFrame) -> PerturbedRetriever:
        return PerturbedRetriever(self.factory(candidates), self.perturbation)


# ---------------------------------------------------------------------------------------------------------------
# Clean versus perturbed


def relative_drop(value: float, clean_value: float, measure: str) -> float:
    """How much worse ``value`` is than ``clean_value``, relative to it: (clean - value) / clean for measures where
    higher is better (mAP, R@k), (value - clean) / clean for :data:`LOWER_IS_BETTER` ones (rank distance). Positive
    means worse, 0.25 a quarter worse; NaN when the clean value is 0 or missing."""
    if clean_value is None or not np.isfinite(clean_value) or clean_value == 0 or value is None:
        return float("nan")
    change = (value - clean_value) / abs(clean_value)
    return float(change if measure in LOWER_IS_BETTER else -change) + 0.0  # + 0.0: no -0.0 in reports


def _check_same_settings(clean: EvaluationResult, perturbed: EvaluationResult) -> None:
    columns = ["setting", "query_lang", "measure"]
    a = clean.per_setting.set_index(columns)["n_queries"].sort_index()
    b = perturbed.per_setting.set_index(columns)["n_queries"].sort_index()
    if not a.index.equals(b.index) or not (a.to_numpy() == b.to_numpy()).all():
        raise ValueError("the clean and perturbed results cover different settings or questions: evaluate both on "
                         "the same collection, languages and topic subset")


def _restrict(per_setting: pd.DataFrame, query_langs: Iterable[str] | None) -> pd.DataFrame:
    if query_langs is None:
        return per_setting
    return per_setting[per_setting["query_lang"].isin(set(query_langs))]


def compare_to_clean(clean: EvaluationResult, perturbed: EvaluationResult,
                     query_langs: Iterable[str] | None = None) -> pd.DataFrame:
    """Summary measures per setting type on perturbed and clean queries, and the relative drop.

    ``query_langs``: average only over settings whose questions are in these languages (the languages the
    perturbation applies to; queries of other languages are unchanged and would dilute the drop). Both values are
    averaged over the same settings, as LAReQA averages (monolingual: languages; cross-lingual: ordered pairs;
    multilingual pool: query languages).

    Columns: setting_type, measure (mAP, R@k, RankDistance), value, clean_value, relative_drop, averaged_over.
    """
    _check_same_settings(clean, perturbed)
    langs = None if query_langs is None else list(query_langs)
    if langs is not None and not langs:
        raise ValueError("query_langs is empty: nothing to compare")
    value = summary_frame(_restrict(perturbed.per_setting, langs))
    base = summary_frame(_restrict(clean.per_setting, langs))
    frame = value.merge(base[["setting_type", "measure", "value"]].rename(columns={"value": "clean_value"}),
                        on=["setting_type", "measure"], how="left", validate="one_to_one")
    frame["relative_drop"] = [relative_drop(v, c, m)
                              for v, c, m in zip(frame["value"], frame["clean_value"], frame["measure"])]
    return frame[["setting_type", "measure", "value", "clean_value", "relative_drop", "averaged_over"]]


def compare_per_language(clean: EvaluationResult, perturbed: EvaluationResult,
                         query_langs: Iterable[str] | None = None) -> pd.DataFrame:
    """Like :func:`compare_to_clean`, per query language: monolingual (the language's own setting), cross-lingual
    (averaged over the document languages it is asked against) and the multilingual pool (its questions).

    Columns: setting_type, query_lang, measure, value, clean_value, relative_drop.
    """
    _check_same_settings(clean, perturbed)
    keys = ["setting_type", "query_lang", "measure"]

    def by_language(per_setting: pd.DataFrame) -> pd.DataFrame:
        frame = _restrict(per_setting, query_langs).groupby(keys, sort=False)["value"].mean().reset_index()
        frame["measure"] = frame["measure"].replace({AP: MAP})
        return frame

    frame = by_language(perturbed.per_setting).merge(
        by_language(clean.per_setting).rename(columns={"value": "clean_value"}), on=keys, how="left",
        validate="one_to_one")
    frame["relative_drop"] = [relative_drop(v, c, m)
                              for v, c, m in zip(frame["value"], frame["clean_value"], frame["measure"])]
    return frame[keys + ["value", "clean_value", "relative_drop"]]


# ---------------------------------------------------------------------------------------------------------------
# White-box adversarial typos against a dense system


class DocVectorLookup(pt.Transformer):
    """Adds ``doc_vec`` to rows by ``docno`` from precomputed candidate vectors (pyterrier-dr's scorers then skip
    encoding the candidate again for each query variant).

    Input: rows with ``docno``; output: the rows + ``doc_vec``. An unknown docno raises KeyError.
    """

    def __init__(self, docnos: Sequence[str], vectors: np.ndarray):
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(docnos):
            raise ValueError(f"vectors must have shape [{len(docnos)}, dim], got {vectors.shape}")
        self.row_of = {str(d): i for i, d in enumerate(docnos)}
        self.vectors = vectors

    def __repr__(self) -> str:
        return f"DocVectorLookup({len(self.row_of)} candidates)"

    def transform(self, rows: pd.DataFrame) -> pd.DataFrame:
        pt.validate.columns(rows, includes=["docno"])
        docnos = rows["docno"].astype(str)
        unknown = sorted(set(docnos) - set(self.row_of))
        if unknown:
            raise KeyError(f"no vector for {len(unknown)} docno(s), e.g. {unknown[:3]}")
        return rows.assign(doc_vec=list(self.vectors[[self.row_of[d] for d in docnos]]))


def dense_text_scorer(encoder, candidates: pd.DataFrame) -> pt.Transformer:
    """The white-box scorer of a dense system for :class:`~pyterrier_hybrid.robustness.AdversarialTypos`: the
    encoder's own pyterrier-dr ``text_scorer()`` (query vector . candidate vector), with the vectors of
    ``candidates`` computed once by the same encoder (``encode_candidates``: its ``candidate_text``, e.g. sentence +
    context) instead of once per scored query variant.

    Input: rows with ``qid``, ``query``, ``docno`` (a docno of ``candidates``); output: + ``doc_vec``, ``score``,
    ``rank``.
    """
    vectors = encoder.encode_candidates(candidates)
    return DocVectorLookup(candidates["docno"].astype(str).tolist(), vectors) >> encoder.text_scorer()


def adversarial_queries_by_budget(attack: pd.DataFrame, budgets: Iterable[int]) -> dict[int, dict[str, str]]:
    """The attacked query of every topic at each budget, from one greedy search at the largest budget.

    ``attack`` is :meth:`AdversarialTypos.attack`'s record (qid, lang, query_0, edits). The greedy search adds one
    edit per step and its first k steps do not depend on the budget, so the queries at budget k are the original
    queries with the first k edits of the search (the search may stop earlier: then fewer edits). Returns
    ``{budget: {qid: query}}``.
    """
    missing = [c for c in ("qid", "lang", "query_0", "edits") if c not in attack.columns]
    if missing:
        raise KeyError(f"the attack record lacks columns {missing}")
    budgets = sorted(set(budgets))
    if not budgets or budgets[0] < 1:
        raise ValueError(f"budgets must be integers >= 1, got {budgets}")
    out: dict[int, dict[str, str]] = {b: {} for b in budgets}
    for qid, lang, query, edits in zip(attack["qid"], attack["lang"], attack["query_0"], attack["edits"]):
        segmented = SegmentedText.of(query, lang)
        for budget in budgets:
            out[budget][str(qid)] = segmented.replace_words({e.word_index: e.edited for e in list(edits)[:budget]})
    return out
