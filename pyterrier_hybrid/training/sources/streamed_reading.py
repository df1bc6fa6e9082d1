"""What a streamed ``irds:`` source reads from its ir_datasets collections, once, in chunks of :data:`CHUNK` records:
the judged (query id, doc id) pairs, one hard negative per query from the docpairs, and each language's query texts
(written to disk by :class:`QueryTexts`). Ids become numpy byte-string arrays chunk by chunk, so that no Python
object per record stays alive (mMARCO's training split has 532,761 qrels and a far larger docpairs file).

:class:`~pyterrier_hybrid.training.sources.streaming.StreamedParallelSource` puts these together (see its module).
"""
from __future__ import annotations

import os
import weakref
from pathlib import Path

import numpy as np

from ...errors import UserError
from .data import record_text, relevant_qrels

__all__ = ["CHUNK", "QueryTexts", "StreamedSourceError", "first_docpair_negatives", "judged_pairs"]

CHUNK = 65_536


class StreamedSourceError(UserError, ValueError):
    """An ir_datasets training source that cannot give what was asked of it."""


def judged_pairs(dataset, dataset_id: str, max_queries: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(query id, doc id) byte-string arrays of the relevant qrels, in qrels order, of the first ``max_queries``
    queries; read in chunks so that no Python string per pair stays alive."""
    query_chunks, doc_chunks = [], []
    queries, docs = [], []
    for query_id, doc_id in relevant_qrels(dataset, max_queries):
        queries.append(query_id)
        docs.append(doc_id)
        if len(queries) == CHUNK:
            query_chunks.append(np.array(queries, dtype=np.bytes_))
            doc_chunks.append(np.array(docs, dtype=np.bytes_))
            queries, docs = [], []
    if queries:
        query_chunks.append(np.array(queries, dtype=np.bytes_))
        doc_chunks.append(np.array(docs, dtype=np.bytes_))
    if not query_chunks:
        raise StreamedSourceError(f"ir_datasets {dataset_id!r} has no relevant (relevance > 0) qrels")
    return np.concatenate(query_chunks), np.concatenate(doc_chunks)


class QueryTexts:
    """The texts of the judged queries in one language, on disk: ``texts.bin`` (UTF-8, in the order the dataset
    gives them) and ``index.bin`` (per judged query, in ``query_ids`` order: start and length, length -1 when the
    language lacks the query), read with ``os.pread``. Neither memory-mapped nor loaded, so the process holds
    nothing per query: a memory-mapped file would count every page it touches as resident memory."""

    RECORD = np.dtype([("start", "<i8"), ("length", "<i4")])

    def __init__(self, folder: Path):
        self.folder = folder
        self._texts = os.open(folder / "texts.bin", os.O_RDONLY)
        self._index = os.open(folder / "index.bin", os.O_RDONLY)
        for fd in (self._texts, self._index):
            weakref.finalize(self, os.close, fd)

    @classmethod
    def write(cls, dataset, query_ids: np.ndarray, folder: Path) -> tuple[QueryTexts, np.ndarray]:
        """Write the texts of ``query_ids`` (sorted byte strings) found in ``dataset``; returns the store and which
        queries it has."""
        folder.mkdir(parents=True, exist_ok=True)
        index = np.zeros(len(query_ids), dtype=cls.RECORD)
        index["length"] = -1
        written = 0
        with (folder / "texts.bin").open("wb") as out:
            ids, texts = [], []

            def flush():
                nonlocal written
                found = np.array(ids, dtype=np.bytes_)
                pos = np.searchsorted(query_ids, found)
                pos[pos >= len(query_ids)] = 0
                hit = (query_ids[pos] == found) & (index["length"][pos] < 0)
                for i in np.flatnonzero(hit):
                    data = texts[i].encode("utf-8")
                    index[pos[i]] = (written, len(data))
                    out.write(data)
                    written += len(data)
                ids.clear()
                texts.clear()

            for query in dataset.queries_iter():
                ids.append(query.query_id)
                texts.append(record_text(query))
                if len(ids) == CHUNK:
                    flush()
            if ids:
                flush()
        index.tofile(folder / "index.bin")
        return cls(folder), index["length"] >= 0

    def get(self, positions: np.ndarray) -> list[str]:
        size = self.RECORD.itemsize
        texts = []
        for pos in positions:
            start, length = np.frombuffer(os.pread(self._index, size, int(pos) * size), dtype=self.RECORD)[0]
            texts.append(os.pread(self._texts, int(length), int(start)).decode("utf-8"))
        return texts


def first_docpair_negatives(dataset, query_ids: np.ndarray) -> np.ndarray:
    """Per query (sorted byte-string ids), ``doc_id_b`` of its first docpair (b"" when it has none)."""
    chunks_pos, chunks_doc = [], []
    found = np.zeros(len(query_ids), dtype=bool)
    pairs = []

    def flush():
        qids = np.array([p[0] for p in pairs], dtype=np.bytes_)
        pos = np.searchsorted(query_ids, qids)
        pos[pos >= len(query_ids)] = 0
        hit = (query_ids[pos] == qids) & ~found[pos]
        if hit.any():
            # the first docpair of a query within the chunk
            first = np.zeros(len(qids), dtype=bool)
            _, first_index = np.unique(pos[hit], return_index=True)
            first[np.flatnonzero(hit)[first_index]] = True
            chunks_pos.append(pos[first])
            chunks_doc.append(np.array([pairs[i][1] for i in np.flatnonzero(first)], dtype=np.bytes_))
            found[pos[first]] = True
        pairs.clear()

    for docpair in dataset.docpairs_iter():
        pairs.append((docpair.query_id, docpair.doc_id_b))
        if len(pairs) == CHUNK:
            flush()
            if found.all():  # every judged query has its negative: the rest of the (large) file is not needed
                break
    if pairs:
        flush()
    width = max((c.dtype.itemsize for c in chunks_doc), default=1)
    negatives = np.zeros(len(query_ids), dtype=f"S{width}")
    for pos, docs in zip(chunks_pos, chunks_doc):
        negatives[pos] = docs
    return negatives
