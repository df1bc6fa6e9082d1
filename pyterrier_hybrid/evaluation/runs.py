"""Top-k runs of many queries, kept as arrays and turned into a PyTerrier results frame on demand.

A results frame of every system in every setting does not fit in memory for the full LAReQA collections (a frame
row per query and candidate); the top ``depth`` candidates of each query kept as numpy blocks do. :class:`TopRun`
accumulates them; :func:`score_matrix_top_run` fills one from a retriever's ``score_matrix`` fast path (see
:mod:`pyterrier_hybrid.evaluation.protocol`), with ties in trec_eval's order. :func:`save_top_runs` /
:func:`load_top_runs` keep them on disk, so that an interrupted comparison does not evaluate a finished system again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .measures import check_scores, tie_order, top_k_columns
from .protocol import SCORE_MATRIX_METHOD, has_score_matrix

__all__ = ["TopRun", "load_top_runs", "save_top_runs", "score_matrix_top_run"]


@dataclass
class TopRun:
    """The top-``depth`` results of a set of queries, one block of queries at a time.

    Each block holds ``qids`` ``[n]``, ``docnos`` ``[n, depth]`` and ``scores`` ``[n, depth]`` (row i: the
    candidates of ``qids[i]`` from rank 0 down). :meth:`frame` gives the PyTerrier results frame
    (``qid, docno, score, rank``); :meth:`ir_measures_run` the ``{qid: {docno: score}}`` run of ir_measures.
    """

    qids: list[np.ndarray] = field(default_factory=list)
    docnos: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)

    def add(self, qids: np.ndarray, docnos: np.ndarray, scores: np.ndarray) -> None:
        docnos, scores = np.asarray(docnos), np.asarray(scores)
        if docnos.shape != scores.shape or docnos.ndim != 2 or len(docnos) != len(qids):
            raise ValueError(f"a block needs docnos and scores of shape [{len(qids)}, depth], got {docnos.shape} "
                             f"and {scores.shape}")
        self.qids.append(np.asarray(qids, dtype=object))
        self.docnos.append(docnos)
        self.scores.append(scores)

    def __len__(self) -> int:
        """The number of queries."""
        return sum(len(q) for q in self.qids)

    def frame(self) -> pd.DataFrame:
        """``qid, docno, score, rank`` (rank 0-based), queries in the order they were added."""
        parts = []
        for qids, docnos, scores in zip(self.qids, self.docnos, self.scores):
            depth = docnos.shape[1]
            parts.append(pd.DataFrame({
                "qid": np.repeat(qids, depth), "docno": docnos.ravel(), "score": scores.ravel().astype(np.float64),
                "rank": np.tile(np.arange(depth), len(qids)),
            }))
        if not parts:
            return pd.DataFrame(columns=["qid", "docno", "score", "rank"])
        return pd.concat(parts, ignore_index=True)

    def ir_measures_run(self) -> dict[str, dict[str, float]]:
        """``{qid: {docno: -rank}}``: minus the rank as the score pins ir_measures to this run's order (ties
        included), whatever the raw scores."""
        run: dict[str, dict[str, float]] = {}
        for qids, docnos in zip(self.qids, self.docnos):
            rank_scores = (-np.arange(docnos.shape[1], dtype=np.float64)).tolist()
            for qid, row in zip(qids.tolist(), docnos.tolist()):
                run[qid] = dict(zip(row, rank_scores))
        return run


def save_top_runs(runs: dict[str, TopRun], path: str | Path) -> Path:
    """Write named top runs (e.g. one per setting type) to one ``.npz`` file that :func:`load_top_runs` reads back.

    Docnos are stored as int32 codes into one sorted vocabulary (a string array per cell would be 20x larger); no
    pickled objects, so the file loads with ``allow_pickle=False``.
    """
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    every_docno = [d.ravel() for run in runs.values() for d in run.docnos]
    vocab = np.unique(np.concatenate(every_docno).astype(str)) if every_docno else np.array([], dtype=str)
    arrays["docno_vocab"] = vocab
    arrays["names"] = np.array(list(runs), dtype=str)
    for name_index, run in enumerate(runs.values()):
        arrays[f"run{name_index}_blocks"] = np.array(len(run.qids))
        for block, (qids, docnos, scores) in enumerate(zip(run.qids, run.docnos, run.scores)):
            key = f"run{name_index}_{block}"
            arrays[f"{key}_qids"] = np.asarray(qids).astype(str)
            arrays[f"{key}_docnos"] = np.searchsorted(vocab, docnos.astype(str)).astype(np.int32)
            arrays[f"{key}_scores"] = np.asarray(scores, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def load_top_runs(path: str | Path) -> dict[str, TopRun]:
    """The top runs written by :func:`save_top_runs`, by name; a missing file is a FileNotFoundError naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved top runs at {path} (written by save_top_runs)")
    with np.load(path, allow_pickle=False) as data:
        vocab = data["docno_vocab"].astype(object)
        runs = {}
        for name_index, name in enumerate(data["names"].tolist()):
            run = TopRun()
            for block in range(int(data[f"run{name_index}_blocks"])):
                key = f"run{name_index}_{block}"
                run.add(data[f"{key}_qids"].astype(object), vocab[data[f"{key}_docnos"]], data[f"{key}_scores"])
            runs[name] = run
    return runs


def score_matrix_top_run(retriever, topics: pd.DataFrame, depth: int, *, run_qids=None,
                         query_batch_size: int = 1024, into: TopRun | None = None) -> TopRun:
    """The top-``depth`` run of ``topics`` (``qid``, ``query``, ...) from ``retriever.score_matrix``, ties in
    trec_eval's order (:func:`~pyterrier_hybrid.evaluation.measures.tie_order`).

    ``run_qids``: the qids to record for the topics' rows (default: ``topics["qid"]``), e.g. qids prefixed by their
    setting; ``into``: add to this run instead of a new one.
    """
    if not has_score_matrix(retriever):
        raise TypeError(f"{type(retriever).__name__} has no score_matrix: a top-k run from score matrices needs "
                        "the retriever factory's fast path")
    run = TopRun() if into is None else into
    docnos = np.asarray(retriever.docnos, dtype=object)
    ties = tie_order(docnos)
    run_qids = np.asarray(topics["qid"] if run_qids is None else run_qids, dtype=object)
    if len(run_qids) != len(topics):
        raise ValueError(f"run_qids has {len(run_qids)} values for {len(topics)} topics")
    for start in range(0, len(topics), query_batch_size):
        batch = topics.iloc[start:start + query_batch_size].reset_index(drop=True)
        scores = check_scores(getattr(retriever, SCORE_MATRIX_METHOD)(batch), (len(batch), len(docnos)))
        cols = top_k_columns(scores, ties, depth)
        run.add(run_qids[start:start + len(batch)], docnos[cols],
                np.take_along_axis(scores, cols, axis=1).astype(np.float32))
    return run
