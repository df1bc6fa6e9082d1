"""Evaluate a retriever on any ir_datasets dataset with docs, queries and qrels, as one plain setting.

Dense systems stream the documents through their encoder into a sharded FlexIndex on disk and search it; other
factories (e.g. BM25) get every document in one frame. Runs are each query's top ``run_depth`` results, measured by
ir_measures. The LAReQA evaluation, with exact ranks over whole pools, is :mod:`.runner`.
"""
from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .protocol import describe_factory, has_score_matrix
from .report import EvaluationResult, build_result
from .runs import score_matrix_top_run

if TYPE_CHECKING:
    from ..retrieval.large import RetrieverConfig

__all__ = ["IrdsEvaluationConfig", "evaluate_irds"]


@dataclass(frozen=True)
class IrdsEvaluationConfig:
    """How :func:`evaluate_irds` measures (and, for dense systems, where it keeps the index and how it searches).

    Attributes:
        measures: ir_measures measures. AP is taken at the run depth (``AP@1000``: trec_eval's usual depth of 1000
            results per query), not over the whole corpus.
        run_depth: results kept per query (a retriever's own results frame is cut there too).
        query_batch_size: queries retrieved at once.
        show_progress: tqdm bars.
        index_dir: folder of the dense index (:class:`~pyterrier_hybrid.retrieval.large.ShardedIndex`); reused when
            it was built from the same dataset, model and candidate text; ``None``: a temporary folder, deleted
            afterwards.
        overwrite_index: delete a non-matching index at ``index_dir`` and build again (otherwise an error).
        retriever: which retriever searches the dense index (exact, FAISS flat / HNSW / IVF) and its parameters;
            its ``num_results`` is replaced by ``run_depth``.
        encode_chunk_size: documents read and encoded at a time while indexing.
    """

    measures: tuple[str, ...] = ("nDCG@10", "R@100", "AP@1000")
    run_depth: int = 1000
    query_batch_size: int = 256
    show_progress: bool = True
    index_dir: str | None = None
    overwrite_index: bool = False
    retriever: "RetrieverConfig | None" = None
    encode_chunk_size: int = 4096

    def __post_init__(self):
        import ir_measures

        if self.run_depth < 1:
            raise ValueError(f"run_depth must be >= 1, got {self.run_depth}")
        if self.query_batch_size < 1:
            raise ValueError(f"query_batch_size must be >= 1, got {self.query_batch_size}")
        if self.encode_chunk_size < 1:
            raise ValueError(f"encode_chunk_size must be >= 1, got {self.encode_chunk_size}")
        for name in self.measures:
            measure = ir_measures.parse_measure(name)
            cutoff = measure.params.get("cutoff")
            if cutoff is not None and cutoff > self.run_depth:
                raise ValueError(f"{name} needs a run of depth >= {cutoff}, run_depth is {self.run_depth}")


def evaluate_irds(
    retriever_factory,
    irds_id: str,
    *,
    system: str | None = None,
    config: IrdsEvaluationConfig | None = None,
) -> EvaluationResult:
    """Evaluate a retriever on any ir_datasets dataset with docs, queries and qrels, as one plain setting.

    Args:
        retriever_factory: a dense system, i.e. a ``pyterrier_dr.BiEncoder`` or a factory with one as ``encoder``
            (:class:`~pyterrier_hybrid.retrieval.DenseRetrieverFactory`): the documents stream from ``docs_iter()``
            in chunks through the encoder into a FlexIndex on disk (``config.index_dir``, reused when it matches),
            and queries are searched with ``config.retriever``; nothing holds all texts or all vectors. Any other
            factory (``factory(candidates) -> retriever``, e.g. BM25) gets every document in one frame (``docno``,
            ``text`` and the documents' other fields) and is for collections that fit in memory.
        irds_id: the dataset (``irds:`` prefixes are accepted).

    Each query's run is its top ``run_depth`` results, from the retriever's results frames.
    """
    from ..datasets.irds import load_irds_dataset

    config = config or IrdsEvaluationConfig()
    irds_id = irds_id.removeprefix("irds:")
    dataset = load_irds_dataset(irds_id)
    for part in ("docs", "queries", "qrels"):
        if not getattr(dataset, f"has_{part}")():
            raise ValueError(f"ir_datasets dataset {irds_id!r} has no {part}; evaluation needs docs, queries and qrels")
    topics = _queries_frame(dataset)
    qrels = pd.DataFrame(
        [(q.query_id, q.doc_id, int(q.relevance)) for q in dataset.qrels_iter()], columns=["qid", "docno", "label"]
    )
    encoder = _dense_encoder(retriever_factory)
    if encoder is not None:
        with _dense_retriever(encoder, dataset, irds_id, config) as (retriever, n_documents, how):
            run = _run(retriever, topics, config)
    else:
        candidates = _documents_frame(dataset, config.show_progress)
        n_documents, how = len(candidates), "all documents in memory"
        retriever = retriever_factory(candidates)
        if has_score_matrix(retriever):  # the factories' fast path, through the shared top-k run helper
            run = score_matrix_top_run(retriever, topics, config.run_depth,
                                       query_batch_size=config.query_batch_size).ir_measures_run()
        else:
            run = _run(retriever, topics, config)
    per_query = _ir_measures_frame(run, qrels, config.measures, topics)
    per_query.insert(0, "setting", irds_id)
    per_query.insert(1, "setting_type", "ad hoc")
    per_query.insert(3, "query_lang", _language(dataset.queries_lang))
    per_query.insert(4, "doc_lang", _language(dataset.docs_lang))
    notes = [f"{irds_id}: {n_documents} documents, {per_query.shape[0]} judged queries; runs of depth "
             f"{config.run_depth} ({how}); measures by ir_measures"]
    return build_result(collection=irds_id, system=system or describe_factory(retriever_factory), langs=(),
                        per_query=per_query, notes=tuple(notes), keep_per_query=True)


def _language(method) -> str:
    try:
        return method() or ""
    except Exception:  # not every ir_datasets component declares a language
        return ""


def _dense_encoder(system):
    """The pyterrier-dr BiEncoder of a dense system (the system itself or its ``encoder``), else ``None``: a wrapper
    (e.g. a debiased factory) is evaluated as a whole, not through its base encoder."""
    import pyterrier_dr

    from ..retrieval.system_specs import find_encoder

    encoder = find_encoder(system, through_wrappers=False)
    return encoder if isinstance(encoder, pyterrier_dr.BiEncoder) else None


@contextlib.contextmanager
def _dense_retriever(encoder, dataset, irds_id: str, config: IrdsEvaluationConfig):
    """``encoder.query_encoder() >> index.retriever(...)`` over the streamed index of the dataset's documents."""
    from ..retrieval.large import RetrieverConfig, ShardedIndex, index_identity, irds_documents

    retriever_config = replace(config.retriever or RetrieverConfig(), num_results=config.run_depth)
    with contextlib.ExitStack() as stack:
        index_dir = config.index_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="irds-index-"))
        index = ShardedIndex(index_dir)
        identity = index_identity(irds_id, encoder)
        reused = index.check_reusable(identity, overwrite=config.overwrite_index)
        if not reused:
            documents = irds_documents(dataset)
            if config.show_progress:
                documents = tqdm(documents, total=_documents_count(dataset), desc="documents", unit="doc")
            index.build(encoder, documents, identity=identity, overwrite=True, chunk_size=config.encode_chunk_size,
                        show_progress=False)
        how = (f"{'reused' if reused else 'streamed'} index at {index_dir} ({len(index.shards())} shard(s)), "
               f"{retriever_config.kind} retriever")
        yield encoder.query_encoder(verbose=False) >> index.retriever(retriever_config), len(index), how


def _documents_count(dataset) -> int | None:
    try:
        return dataset.docs_count()
    except Exception:  # not every ir_datasets docs component knows its size
        return None


def _documents_frame(dataset, progress: bool) -> pd.DataFrame:
    """Every document in one frame, for retrievers that need the texts in memory (e.g. BM25); dense systems
    stream instead (:func:`_dense_retriever`)."""
    from ..retrieval.large import irds_documents

    records = list(tqdm(irds_documents(dataset), total=_documents_count(dataset), desc="documents", unit="doc",
                        disable=not progress))
    if not records:
        raise ValueError("the dataset has no documents")
    frame = pd.DataFrame.from_records(records)
    return frame[["docno", "text"] + [c for c in frame.columns if c not in ("docno", "text")]]


def _queries_frame(dataset) -> pd.DataFrame:
    rows = []
    for query in dataset.queries_iter():
        record = query._asdict()
        record["qid"] = record.pop("query_id")
        record.pop("text", None)
        record["query"] = query.default_text()
        rows.append(record)
    frame = pd.DataFrame.from_records(rows)
    empty = frame["query"].str.strip() == ""
    if empty.any():
        raise ValueError(f"empty query text for qid {frame.loc[empty, 'qid'].iloc[0]!r}")
    return frame[["qid", "query"] + [c for c in frame.columns if c not in ("qid", "query")]]


def _run(retriever, topics: pd.DataFrame, config: IrdsEvaluationConfig) -> dict[str, dict[str, float]]:
    """The top ``run_depth`` results of every query, from the retriever's results frames, as an ir_measures run
    ``{qid: {docno: score}}`` (dicts, not a frame: ir_measures iterates frames row by row, slowly for pandas' Arrow
    strings). Ties are cut in trec_eval's order (docno descending)."""
    run: dict[str, dict[str, float]] = {}
    starts = range(0, len(topics), config.query_batch_size)
    for start in tqdm(starts, desc="query batches", unit="batch", disable=not config.show_progress):
        batch = topics.iloc[start : start + config.query_batch_size].reset_index(drop=True)
        results = retriever.transform(batch)
        for column in ("qid", "docno", "score"):
            if column not in results.columns:
                raise ValueError(f"the retriever's results lack the column {column!r}")
        results = results[["qid", "docno", "score"]].sort_values(["qid", "score", "docno"],
                                                                 ascending=[True, False, False])
        results = results.groupby("qid", sort=False).head(config.run_depth)
        for qid, docno, score in zip(results["qid"].tolist(), results["docno"].tolist(),
                                     results["score"].astype(np.float64).tolist()):
            run.setdefault(qid, {})[docno] = score
    return run


def _ir_measures_frame(run: dict, qrels: pd.DataFrame, measures, topics: pd.DataFrame) -> pd.DataFrame:
    import ir_measures

    parsed = [ir_measures.parse_measure(m) for m in measures]
    judged = qrels[qrels["qid"].isin(set(topics["qid"]))]
    irm_qrels: dict[str, dict[str, int]] = {}
    for qid, docno, label in zip(judged["qid"].tolist(), judged["docno"].tolist(), judged["label"].tolist()):
        irm_qrels.setdefault(qid, {})[docno] = int(label)
    values: dict[str, dict[str, float]] = {str(m): {} for m in parsed}
    for metric in ir_measures.iter_calc(parsed, irm_qrels, run):
        values[str(metric.measure)][metric.query_id] = metric.value
    frame = pd.DataFrame(values)
    frame.index.name = "qid"
    return frame.sort_index().reset_index()
