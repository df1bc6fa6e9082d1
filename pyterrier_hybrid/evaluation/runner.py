"""Run a retriever in every LAReQA setting of a collection (or in one ir_datasets setting) and measure it.

Retriever factory protocol. The runner gets a *factory*, not a retriever: ``factory(candidates) -> pt.Transformer``
builds a retriever over exactly the given candidates (columns docno, text, context, lang, title) that maps topics
(qid, query, ...) to a results frame (qid, docno, score, rank, ...) ranking ALL candidates with exact scores. Exact
full rankings are needed because AP over the whole pool and the rank distance depend on the ranks of every relevant
candidate, however deep; a relevant candidate missing from a ranking is an :class:`IncompleteRankingError`.

The factory is called once per distinct candidate set: once per document language (shared by the monolingual
setting and the cross-lingual settings into that language) and once for the multilingual pool, so 12 times for
XQuAD-R. A lexical retriever is thereby built over the setting's own candidates (BM25's IDF depends on the pool, so
ranking the pool once and filtering it per language would be wrong for BM25). A dense factory should cache candidate
embeddings by docno so that the pool reuses the embeddings of the per-language calls.

Fast path (protocol :class:`~.protocol.ScoreMatrixRetriever`, method name :data:`~.protocol.SCORE_MATRIX_METHOD`, in
:mod:`.protocol` with the rest of what the runners ask of a retriever). A full ranking of the multilingual pool
(13,090 questions x ~13k candidates = 170M rows) does not fit in a pandas frame. A retriever that also has
``docnos`` (np.ndarray of its candidates' docnos, in index order) and ``score_matrix(topics) -> np.ndarray`` (shape
[len(topics), len(docnos)], float, the same scores ``transform`` gives; row i = ``topics.iloc[i]``) is scored in
batches of queries straight from that matrix: exact ranks of the relevant candidates and the top of each ranking are
extracted, and the matrix is dropped. Without it, ``transform`` is called batch by batch and its results frame is
used (fine for monolingual and cross-lingual settings, slow for the pool).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .measures import (
    AP,
    RANK_DISTANCE,
    IncompleteRankingError,
    SettingRanking,
    check_scores,
    cross_check_ap,
    exact_rank_measures,
    ir_measures_per_query,
    peer_per_query,
    relevant_ranks,
    tie_order,
    top_k_columns,
)
from .protocol import SCORE_MATRIX_METHOD, RetrieverFactory, describe_factory, has_score_matrix
from .report import EvaluationResult, build_result
from .settings import EvaluationSetting, group_by_candidates, lareqa_settings

# ---------------------------------------------------------------------------------------------------------------
# Exact rankings of one candidate set


class ExactRanker:
    """Ranks topics over all candidates of one retriever and keeps what the measures need (a SettingRanking).

    Uses the retriever's score matrix when it has one, its results frames otherwise (see the module documentation).
    """

    def __init__(self, retriever, candidates: pd.DataFrame, depth: int, query_batch_size: int = 1024):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if query_batch_size < 1:
            raise ValueError(f"query_batch_size must be >= 1, got {query_batch_size}")
        self.retriever = retriever
        self.depth = depth
        self.query_batch_size = query_batch_size
        self.fast = has_score_matrix(retriever)
        candidate_docnos = np.asarray(candidates["docno"], dtype=object)
        if self.fast:
            self.docnos = np.asarray(retriever.docnos, dtype=object)
            if len(self.docnos) != len(set(self.docnos)):
                raise ValueError("the retriever's docnos have duplicates")
            if set(self.docnos) != set(candidate_docnos):
                missing = len(set(candidate_docnos) - set(self.docnos))
                extra = len(set(self.docnos) - set(candidate_docnos))
                raise ValueError(
                    f"the retriever's docnos are not the candidates it was built for: {missing} candidates missing, "
                    f"{extra} unknown docnos"
                )
        else:
            self.docnos = candidate_docnos
            if len(self.docnos) != len(set(self.docnos)):
                raise ValueError("the candidates have duplicate docnos")
        self.column = pd.Index(self.docnos)
        self.ties = tie_order(self.docnos)

    def rank(self, topics: pd.DataFrame, qrels: pd.DataFrame, progress: bool = False) -> SettingRanking:
        """Exact ranks of the relevant candidates (``qrels`` with label > 0) and the top ``depth`` of each ranking."""
        for column in ("qid", "query"):
            if column not in topics.columns:
                raise ValueError(f"topics lack the column {column!r}")
        topics = topics.reset_index(drop=True)
        qids = np.asarray(topics["qid"], dtype=object)
        relevant = qrels[qrels["label"] > 0]
        relevant = relevant[relevant["qid"].isin(set(qids))]
        unknown = ~relevant["docno"].isin(set(self.docnos))
        if unknown.any():
            row = relevant[unknown].iloc[0]
            raise IncompleteRankingError(
                f"{int(unknown.sum())} relevant candidates are not among the retriever's candidates "
                f"(e.g. {row.docno!r} for query {row.qid!r})"
            )
        query_row = pd.Series(np.arange(len(qids)), index=pd.Index(qids))
        pair_rows = query_row.loc[relevant["qid"]].to_numpy()
        pair_cols = self.column.get_indexer(relevant["docno"])
        ranks = np.empty(len(relevant), dtype=np.int64)
        depth = min(self.depth, len(self.docnos))
        top_cols = np.empty((len(qids), depth), dtype=np.int64)
        top_scores = np.empty((len(qids), depth), dtype=np.float32)
        starts = range(0, len(qids), self.query_batch_size)
        for start in tqdm(starts, desc="query batches", unit="batch", leave=False, disable=not progress):
            stop = min(start + self.query_batch_size, len(qids))
            batch = topics.iloc[start:stop]
            in_batch = (pair_rows >= start) & (pair_rows < stop)
            scores = self._scores(batch, pair_rows[in_batch] - start, pair_cols[in_batch])
            ranks[in_batch] = relevant_ranks(scores, self.ties, pair_rows[in_batch] - start, pair_cols[in_batch])
            cols = top_k_columns(scores, self.ties, depth)
            top_cols[start:stop] = cols
            top_scores[start:stop] = np.take_along_axis(scores, cols, axis=1)
        return SettingRanking(
            qids=qids,
            relevant=pd.DataFrame(
                {"qid": relevant["qid"].to_numpy(object), "docno": relevant["docno"].to_numpy(object), "rank": ranks}
            ),
            top_docnos=self.docnos[top_cols],
            top_scores=top_scores,
            n_candidates=len(self.docnos),
        )

    def _scores(self, batch: pd.DataFrame, relevant_rows: np.ndarray, relevant_cols: np.ndarray) -> np.ndarray:
        shape = (len(batch), len(self.docnos))
        if self.fast:
            return check_scores(getattr(self.retriever, SCORE_MATRIX_METHOD)(batch), shape)
        return self._scores_from_results(batch, relevant_rows, relevant_cols, shape)

    def _scores_from_results(self, batch, relevant_rows, relevant_cols, shape) -> np.ndarray:
        results = self.retriever.transform(batch)
        for column in ("qid", "docno", "score"):
            if column not in results.columns:
                raise ValueError(f"the retriever's results lack the column {column!r}")
        rows = pd.Index(np.asarray(batch["qid"], dtype=object)).get_indexer(np.asarray(results["qid"], dtype=object))
        cols = self.column.get_indexer(np.asarray(results["docno"], dtype=object))
        if (rows < 0).any():
            unknown = results["qid"].iloc[np.argmax(rows < 0)]
            raise ValueError(f"the retriever returned results for unknown queries, e.g. {unknown!r}")
        if (cols < 0).any():
            raise ValueError(
                f"the retriever returned docnos that are not among its candidates, "
                f"e.g. {results['docno'].iloc[np.argmax(cols < 0)]!r}"
            )
        present = np.zeros(shape, dtype=bool)
        present[rows, cols] = True
        if present.sum() != len(results):
            raise ValueError("the retriever returned the same (qid, docno) more than once")
        missing = ~present[relevant_rows, relevant_cols]
        if missing.any():
            qid = batch["qid"].iloc[relevant_rows[missing][0]]
            docno = self.docnos[relevant_cols[missing][0]]
            raise IncompleteRankingError(
                f"the ranking of query {qid!r} lacks its relevant candidate {docno!r} ({int(missing.sum())} relevant "
                "candidates missing in this batch): evaluation needs the retriever to rank ALL candidates with exact "
                "scores (no num_results cutoff, no approximate index)"
            )
        # Candidates left out of a ranking go after every ranked one (as if the ranking were cut there); they are
        # never relevant (checked above), so the relevant candidates' ranks stay exact.
        scores = np.full(shape, -np.inf, dtype=np.float64)
        scores[rows, cols] = np.asarray(results["score"], dtype=np.float64)
        return check_scores(scores, shape)


# ---------------------------------------------------------------------------------------------------------------
# LAReQA


@dataclass(frozen=True)
class LAReQAEvaluationConfig:
    """How :func:`evaluate_lareqa` measures.

    Attributes:
        recall_cutoffs: k of the ``R@k`` measures (ir_measures), in every setting.
        peer_cutoff: k of ``PEER@k`` in the multilingual pool; ``None`` (the default) leaves PEER out, because in
            LAReQA it is a constant: every question has exactly one relevant candidate per language, so the
            Kruskal-Wallis statistic behind PEER compares groups of one rank each and equals (languages - 1) for
            every ranking: PEER is chi2.sf(n - 1, n - 1) (0.4405 for 11 languages) when any relevant candidate is in
            the top k and 1.0 when none is, whatever the ranks.
        query_batch_size: queries scored at once (a score-matrix batch is query_batch_size x candidates floats).
        cross_check: compare the exact AP with ir_measures' AP for every query whose relevant candidates all lie in
            the top-k run (raises :class:`MeasureMismatchError` on a difference).
        per_query: keep the per-query frame in the result.
        show_progress: tqdm bars over the settings (and over query batches of big settings).
    """

    recall_cutoffs: tuple[int, ...] = (1, 10)
    peer_cutoff: int | None = None
    query_batch_size: int = 1024
    cross_check: bool = True
    per_query: bool = True
    show_progress: bool = True

    def __post_init__(self):
        if not self.recall_cutoffs or min(self.recall_cutoffs) < 1:
            raise ValueError(f"recall_cutoffs must be positive, got {self.recall_cutoffs}")
        if self.peer_cutoff is not None and self.peer_cutoff < 1:
            raise ValueError(f"peer_cutoff must be positive or None, got {self.peer_cutoff}")
        if self.query_batch_size < 1:
            raise ValueError(f"query_batch_size must be >= 1, got {self.query_batch_size}")

    def depth(self, setting_type: str) -> int:
        """Length of the kept top of each ranking: the largest cutoff measured in that kind of setting."""
        cutoffs = list(self.recall_cutoffs)
        if setting_type == "multilingual" and self.peer_cutoff is not None:
            cutoffs.append(self.peer_cutoff)
        return max(cutoffs)

    @property
    def recall_measures(self) -> list[str]:
        return [f"R@{k}" for k in self.recall_cutoffs]


def evaluate_lareqa(
    retriever_factory: RetrieverFactory,
    collection,
    langs=None,
    *,
    system: str | None = None,
    config: LAReQAEvaluationConfig | None = None,
) -> EvaluationResult:
    """Evaluate a retriever in every LAReQA setting of ``collection`` for ``langs`` (default: all its languages).

    Args:
        retriever_factory: ``factory(candidates) -> pt.Transformer``, see the module documentation.
        collection: ``"xquad-r"``, ``"mlqa-r"`` or a :class:`~pyterrier_hybrid.datasets.LAReQACollection` (or any
            object with its ``name``, ``check_languages``, ``candidates``, ``topics`` and ``qrels``).
        langs: languages to evaluate: their monolingual settings, ordered pairs and pool.
        system: the name the result and its tables give the retriever.

    Returns an :class:`EvaluationResult` whose summary macro-averages AP (mAP), R@k over the settings of each type
    (monolingual: over languages; cross-lingual: over ordered pairs; multilingual: over query languages in the pool)
    and gives the pool's rank distance (and PEER) macro-averaged over query languages.
    """
    from ..datasets import lareqa_collection

    config = config or LAReQAEvaluationConfig()
    coll = lareqa_collection(collection) if isinstance(collection, str) else collection
    langs = coll.check_languages(langs)
    settings = lareqa_settings(langs)
    notes = [
        "AP is average precision over the whole candidate pool of each setting with every relevant candidate "
        "counted (ir_measures AP without cutoff on the full ranking), computed from exact ranks",
        "R@k is ir_measures R@k (fraction of the relevant candidates in the top k); in the multilingual pool each "
        "question has one relevant candidate per language that holds its answer",
    ]
    frames: dict[EvaluationSetting, pd.DataFrame] = {}
    checked = 0
    with tqdm(total=len(settings), desc=f"{coll.name} settings", unit="setting",
              disable=not config.show_progress) as bar:
        for doc_langs, group in group_by_candidates(settings).items():
            checked += _measure_group(retriever_factory, coll, doc_langs, group, config, frames, notes, bar)
    if config.cross_check:
        notes.append(f"exact AP equal to ir_measures AP on the truncated runs for {checked} queries whose relevant "
                     "candidates all lie in the top of the ranking")
    return build_result(
        collection=coll.name,
        system=system or describe_factory(retriever_factory),
        langs=tuple(langs),
        per_query=pd.concat([frames[setting] for setting in settings], ignore_index=True),  # settings' order
        notes=tuple(notes),
        keep_per_query=config.per_query,
    )


def _measure_group(retriever_factory, coll, doc_langs, group, config: LAReQAEvaluationConfig,
                   frames: dict, notes: list[str], bar) -> int:
    """Measures the settings of ``group``, which share one candidate set (one retriever is built for it), into
    ``frames`` and ``notes``; returns how many queries the cross-check compared."""
    candidates = coll.candidates(doc_langs)
    retriever = retriever_factory(candidates)
    doc_lang_of = dict(zip(candidates["docno"], candidates["lang"]))
    rankers: dict[int, ExactRanker] = {}
    checked = 0
    for setting in group:
        bar.set_postfix_str(setting.name)
        depth = config.depth(setting.setting_type)
        if depth not in rankers:
            rankers[depth] = ExactRanker(retriever, candidates, depth, config.query_batch_size)
        topics = coll.topics(setting.query_langs, setting.doc_langs)
        qrels = coll.qrels(setting.query_langs, setting.doc_langs)
        topics = _drop_unjudged(topics, qrels, setting.name)
        ranking = rankers[depth].rank(topics, qrels, progress=config.show_progress and len(topics) > 4096)
        frame, n_checked, setting_notes = _setting_measures(setting, ranking, topics, doc_lang_of, config)
        frames[setting] = frame
        checked += n_checked
        notes += [note for note in setting_notes if note not in notes]
        bar.update()
    return checked


def _drop_unjudged(topics: pd.DataFrame, qrels: pd.DataFrame, setting_name: str) -> pd.DataFrame:
    judged = topics["qid"].isin(set(qrels.loc[qrels["label"] > 0, "qid"]))
    if not judged.all():
        warnings.warn(f"setting {setting_name}: {int((~judged).sum())} queries without a relevant candidate are "
                      "left out (as trec_eval does)", stacklevel=3)
    return topics[judged]


def _setting_measures(setting: EvaluationSetting, ranking: SettingRanking, topics: pd.DataFrame,
                      doc_lang_of: dict, config: LAReQAEvaluationConfig) -> tuple[pd.DataFrame, int, list[str]]:
    exact = exact_rank_measures(ranking.relevant)
    measured = ir_measures_per_query(ranking, ([AP] if config.cross_check else []) + config.recall_measures)
    checked = cross_check_ap(exact, ranking, measured[AP]) if config.cross_check else 0
    recall = measured[config.recall_measures]
    qids = pd.Index(np.asarray(ranking.qids, dtype=object), name="qid")
    query_lang = pd.Series(np.asarray(topics["lang"], dtype=object), index=pd.Index(topics["qid"]))
    frame = pd.DataFrame(
        {
            "setting": setting.name,
            "setting_type": setting.setting_type,
            "query_lang": query_lang.reindex(qids).to_numpy(),
            "doc_lang": setting.doc_lang,
        },
        index=qids,
    )
    frame = frame.join(exact[["n_relevant", "best_rank", AP]]).join(recall)
    notes = []
    if setting.setting_type == "multilingual":
        frame[RANK_DISTANCE] = exact[RANK_DISTANCE].reindex(qids)
        single = int(frame[RANK_DISTANCE].isna().sum())
        notes.append(f"RankDistance (largest minus smallest rank of a question's relevant candidates in the pool) "
                     f"over {len(frame) - single} questions with two or more relevant candidates"
                     + (f"; {single} with one are left out" if single else ""))
        if config.peer_cutoff is not None:
            try:
                peer = peer_per_query(ranking, doc_lang_of, config.peer_cutoff)
                frame[peer.name] = peer
                notes.append(f"PEER@{config.peer_cutoff} from peer-measure over the relevant candidates grouped by "
                             "language (weights {1: 1.0}); with one relevant candidate per language it only tells "
                             "whether any is in the top k (see LAReQAEvaluationConfig.peer_cutoff)")
            except Exception as error:  # PEER is optional: an incompatible plugin version must not lose the run
                notes.append(f"PEER not reported: peer-measure failed with {type(error).__name__}: {error}")
                warnings.warn(notes[-1], stacklevel=3)
    return frame.reset_index(), checked, notes
