"""Exact ranks over a whole candidate pool, and the measures computed from them.

Ranking convention. A query's ranking orders *all* candidates by descending score; ties are broken as trec_eval
(and so ir_measures' default pytrec_eval provider) breaks them: by docno, descending. Ranks are 0-based, like the
``rank`` column of a PyTerrier results frame.

Measures (per query, then averaged):

- ``AP``: average precision over the whole candidate pool with every relevant candidate counted (LAReQA's mAP).
  It is ir_measures' ``AP`` *without* a cutoff evaluated on a full ranking (trec_eval's ``map`` has no depth limit
  of its own; a run's length is its only cutoff). A full ranking of the multilingual pool (13,090 questions x
  ~13k candidates) is far too big to hand to ir_measures, so AP is computed here from the exact ranks of the
  relevant candidates, which is all it depends on: AP = (1/R) * sum_i i / (rank_i + 1) over the relevant candidates
  sorted by rank (i = 1..R). The runner cross-checks this value against ir_measures' ``AP`` on the truncated run
  for every query whose relevant candidates all lie inside it (there the truncated run gives the full-pool value).
- ``R@k`` (ir_measures): the fraction of a query's relevant candidates in its top k. Computed by ir_measures on
  the top-``depth`` run, which is exact for k <= depth. In the multilingual pool of XQuAD-R a question has 11
  relevant candidates, so R@1 there is at most 1/11.
- ``RankDistance`` (multilingual pool only, lower is better): the largest minus the smallest rank among a query's
  relevant (parallel) candidates: how far apart the same answer in different languages is ranked. Queries with
  fewer than two relevant candidates have no distance and are left out. Needs exact ranks beyond any cutoff.
- ``PEER@k`` (multilingual pool only, on request): Yang et al.'s Probability of Equal Expected Rank from the
  ``peer-measure`` ir_measures plugin, over the relevant candidates grouped by language (weights {1: 1.0}). It runs
  (through :func:`peer_per_query`), but it is uninformative on LAReQA: each question has exactly one relevant
  candidate per language, the Kruskal-Wallis test behind PEER then compares groups of a single rank, its statistic
  is always (number of languages - 1), and PEER is chi2.sf(n - 1, n - 1) when any relevant candidate is in the
  top k, 1.0 when none is, whatever the ranks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import ir_measures
import numpy as np
import pandas as pd

AP = "AP"
RANK_DISTANCE = "RankDistance"
#: The name of AP's mean in summaries and tables.
MAP = "mAP"

# Elements of the score sub-matrix compared at once when counting ranks (float32: 16 MiB plus boolean masks).
_RANK_CHUNK_ELEMENTS = 1 << 22


class IncompleteRankingError(ValueError):
    """A retriever's ranking lacks a relevant candidate, so exact ranks over the whole pool cannot be computed."""


class MeasureMismatchError(AssertionError):
    """A measure computed here from exact ranks disagrees with ir_measures on the same ranking."""


# ---------------------------------------------------------------------------------------------------------------
# Exact ranks from a score matrix


def tie_order(docnos: Sequence[str]) -> np.ndarray:
    """Position of each candidate among equal scores: trec_eval ranks tied candidates by docno, descending.

    Returns an int array ``t`` with ``t[j] < t[k]`` when candidate j comes before candidate k at equal score.
    """
    docnos = np.asarray(docnos, dtype=str)
    order = np.argsort(docnos, kind="stable")[::-1]
    positions = np.empty(len(docnos), dtype=np.int64)
    positions[order] = np.arange(len(docnos))
    return positions


def check_scores(scores: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.shape != shape:
        raise ValueError(f"score matrix has shape {scores.shape}, expected [n_queries, n_candidates] = {shape}")
    if not np.issubdtype(scores.dtype, np.floating):
        raise ValueError(f"score matrix must hold floats, got {scores.dtype}")
    if np.isnan(scores).any():
        rows = np.unique(np.nonzero(np.isnan(scores))[0])
        raise ValueError(f"score matrix has NaN scores in {len(rows)} query rows (first row {rows[0]})")
    return scores


def relevant_ranks(scores: np.ndarray, ties: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Exact 0-based rank of candidate ``cols[i]`` in the full ranking of query row ``rows[i]``.

    rank = #candidates with a higher score + #candidates with the same score that come first in :func:`tie_order`.
    Counting is O(n_candidates) per pair, with no sort of the rows; pairs are processed in chunks to bound memory.
    """
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    ranks = np.empty(len(rows), dtype=np.int64)
    chunk = max(1, _RANK_CHUNK_ELEMENTS // max(1, scores.shape[1]))
    for start in range(0, len(rows), chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        block = scores[r]
        own = block[np.arange(len(r)), c][:, None]
        higher = np.count_nonzero(block > own, axis=1)
        tied_first = np.count_nonzero((block == own) & (ties[None, :] < ties[c][:, None]), axis=1)
        ranks[start : start + chunk] = higher + tied_first
    return ranks


def top_k_columns(scores: np.ndarray, ties: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the first ``k`` candidates of each row's ranking, in rank order (trec_eval tie order)."""
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    if k == 0 or n_rows == 0:
        return np.empty((n_rows, k), dtype=np.int64)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    kth = top_scores.min(axis=1)
    # argpartition picks an arbitrary subset of the candidates tied with the k-th score; rows where such ties cross
    # the cut are redone below over every candidate scoring at least the k-th score.
    crossing = np.count_nonzero(scores >= kth[:, None], axis=1) > k
    order = np.lexsort((ties[top], -top_scores), axis=1)
    top = np.take_along_axis(top, order, axis=1)
    for row in np.nonzero(crossing)[0]:
        candidates = np.nonzero(scores[row] >= kth[row])[0]
        order = np.lexsort((ties[candidates], -scores[row, candidates]))
        top[row] = candidates[order[:k]]
    return top


@dataclass(frozen=True)
class SettingRanking:
    """What the measures need of the full rankings of one setting's queries.

    Attributes:
        qids: the queries, shape (n_queries,).
        relevant: one row per (query, relevant candidate): ``qid``, ``docno``, ``rank`` (exact, 0-based, over all
            ``n_candidates`` candidates).
        top_docnos / top_scores: the first ``depth`` candidates of each ranking, in rank order, shape
            (n_queries, depth); enough for every measure with a cutoff <= depth.
        n_candidates: size of the candidate set that was ranked.
    """

    qids: np.ndarray
    relevant: pd.DataFrame
    top_docnos: np.ndarray
    top_scores: np.ndarray
    n_candidates: int

    @property
    def depth(self) -> int:
        return self.top_docnos.shape[1]

    def run(self) -> dict[str, dict[str, float]]:
        """The top-``depth`` run for ir_measures, as ``{qid: {docno: score}}``.

        The score handed to ir_measures is minus the rank, not the retriever's score: it pins every provider to the
        tie order used for the exact ranks (pytrec_eval breaks ties by docno descending, peer-measure ascending).
        Dicts rather than frames: ir_measures iterates a frame row by row, slowly for pandas' Arrow strings.
        """
        scores = (-np.arange(self.depth, dtype=np.float64)).tolist()
        return {
            qid: dict(zip(docnos, scores))
            for qid, docnos in zip(np.asarray(self.qids, dtype=object).tolist(), self.top_docnos.tolist())
        }

    def qrels(self) -> dict[str, dict[str, int]]:
        """The relevant candidates as ir_measures qrels ``{qid: {docno: 1}}``."""
        qrels: dict[str, dict[str, int]] = {}
        for qid, docno in zip(self.relevant["qid"].tolist(), self.relevant["docno"].tolist()):
            qrels.setdefault(qid, {})[docno] = 1
        return qrels


# ---------------------------------------------------------------------------------------------------------------
# Measures from exact ranks


def average_precision(ranks: Sequence[int], n_relevant: int | None = None) -> float:
    """Average precision of one query from the 0-based ranks of its relevant candidates in a full ranking.

    ``n_relevant`` defaults to ``len(ranks)`` (every relevant candidate ranked, as in a full ranking).
    """
    ranks = np.sort(np.asarray(ranks, dtype=np.float64))
    n_relevant = len(ranks) if n_relevant is None else n_relevant
    if n_relevant == 0:
        raise ValueError("average precision is undefined for a query without relevant candidates")
    return float(np.sum(np.arange(1, len(ranks) + 1) / (ranks + 1)) / n_relevant)


def mean_average_precision(run: pd.DataFrame, qrels: pd.DataFrame) -> float:
    """ir_measures' AP (no cutoff) of a run, averaged over its queries: the mAP of a ranking given as frames.

    ``run``: ``qid, docno, score`` (higher is better; a full ranking of every candidate gives LAReQA's mAP);
    ``qrels``: ``qid, docno, label``. For a single score column per query and candidate; the evaluation runner
    computes the same AP from exact ranks (:func:`exact_rank_measures`) without building frames.
    """
    frame = pd.DataFrame({"query_id": run["qid"].astype(str), "doc_id": run["docno"].astype(str),
                          "score": run["score"].astype(np.float64)})
    judged = pd.DataFrame({"query_id": qrels["qid"].astype(str), "doc_id": qrels["docno"].astype(str),
                           "relevance": qrels["label"].astype(int)})
    return float(ir_measures.calc_aggregate([ir_measures.AP], judged, frame)[ir_measures.AP])


def rank_distance(ranks: Sequence[int]) -> float:
    """Largest minus smallest rank among a query's relevant candidates (NaN with fewer than two)."""
    ranks = np.asarray(ranks)
    return float(ranks.max() - ranks.min()) if len(ranks) >= 2 else float("nan")


def exact_rank_measures(relevant: pd.DataFrame) -> pd.DataFrame:
    """Per-query AP and rank distance from exact ranks (vectorised :func:`average_precision`, :func:`rank_distance`).

    Input: ``qid``, ``rank`` (every relevant candidate of each query). Output indexed by qid: ``n_relevant``,
    ``best_rank`` (0-based), ``AP``, ``RankDistance`` (NaN for queries with one relevant candidate).
    """
    frame = relevant[["qid", "rank"]].sort_values(["qid", "rank"], kind="stable")
    position = frame.groupby("qid", sort=False).cumcount().to_numpy() + 1
    frame = frame.assign(precision=position / (frame["rank"].to_numpy() + 1))
    grouped = frame.groupby("qid", sort=True)
    out = pd.DataFrame(
        {
            "n_relevant": grouped["rank"].size(),
            "best_rank": grouped["rank"].min(),
            AP: grouped["precision"].mean(),
            RANK_DISTANCE: (grouped["rank"].max() - grouped["rank"].min()).astype(np.float64),
        }
    )
    out.loc[out["n_relevant"] < 2, RANK_DISTANCE] = np.nan
    return out


def ir_measures_per_query(ranking: SettingRanking, measures: Sequence[str]) -> pd.DataFrame:
    """ir_measures values of ``measures`` (e.g. "R@1", "AP") per query on the top-``depth`` run; index qid.

    Only measures whose cutoff is <= depth are exact on that run (checked by the caller).
    """
    parsed = [ir_measures.parse_measure(m) for m in measures]
    values: dict[str, dict[str, float]] = {str(m): {} for m in parsed}
    for metric in ir_measures.iter_calc(parsed, ranking.qrels(), ranking.run()):
        values[str(metric.measure)][metric.query_id] = metric.value
    return pd.DataFrame(values).reindex(pd.Index(np.asarray(ranking.qids, dtype=object), name="qid"))


def cross_check_ap(exact: pd.DataFrame, ranking: SettingRanking, ir_measures_ap: pd.Series,
                   tolerance: float = 1e-9) -> int:
    """Compare exact AP with ir_measures' AP on the top-``depth`` run (``ir_measures_ap``, index qid) for the queries
    whose relevant candidates all lie in that run: there the truncated run gives the full-pool AP.

    Returns how many queries were checked; raises :class:`MeasureMismatchError` on a difference.
    """
    last_rank = ranking.relevant.groupby("qid")["rank"].max()
    inside = last_rank.index[last_rank.to_numpy() < ranking.depth]
    theirs = ir_measures_ap.reindex(inside)
    ours = exact[AP].reindex(inside)
    difference = (theirs - ours).abs()
    if difference.isna().any() or (difference > tolerance).any():
        qid = difference.fillna(np.inf).idxmax()
        raise MeasureMismatchError(
            f"AP from exact ranks ({ours[qid]!r}) differs from ir_measures AP ({theirs[qid]!r}) for query {qid!r}"
        )
    return len(inside)


# ---------------------------------------------------------------------------------------------------------------
# PEER (peer-measure plugin)


def peer_per_query(ranking: SettingRanking, doc_lang: Mapping[str, str], cutoff: int) -> pd.Series:
    """PEER@cutoff per query (index qid) over the relevant candidates grouped by ``doc_lang[docno]``.

    peer-measure 0.0.1 is an ir_measures plugin, but its provider calls ``ir_measures.util.flatten_measures``, which
    ir_measures 0.4.3 does not have, so ``ir_measures.iter_calc`` fails with AttributeError. Its evaluator works:
    it is built here the way its provider would build it. Its evaluator also indexes its per-relevance-level groups
    by the qrels' labels and fails (KeyError) on a retrieved candidate judged 0 when no label 0 appears in the
    query's qrels: LAReQA qrels hold only relevant candidates, so a placeholder judged 0 (never retrieved, weight 0)
    is added to each query's qrels.
    """
    if cutoff > ranking.depth:
        raise ValueError(f"PEER@{cutoff} needs a run of depth >= {cutoff}, got {ranking.depth}")
    from peer_measure import PEER, PEEREvaluator

    mapping = dict(doc_lang)
    measure = PEER(weights={1: 1.0}, lang_mapping=mapping) @ cutoff
    qrels = ranking.qrels()
    for judged in qrels.values():
        judged["__placeholder_judged_non_relevant__"] = 0
    evaluator = PEEREvaluator([measure], qrels, {id(mapping): [(cutoff, measure)]}, {id(mapping): mapping})
    values = {metric.query_id: metric.value for metric in evaluator.iter_calc(ranking.run())}
    return pd.Series(values, name=f"PEER@{cutoff}", dtype=np.float64).reindex(
        pd.Index(np.asarray(ranking.qids, dtype=object), name="qid")
    )
