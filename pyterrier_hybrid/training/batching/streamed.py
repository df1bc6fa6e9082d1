"""The hybrid batch sampler of streamed ir_datasets sources (:mod:`pyterrier_hybrid.training.sources.streaming`).

The rules are those of :class:`~pyterrier_hybrid.training.batching.hybrid.HybridBatchSampler`: a batch is
monolingual with probability alpha (one language drawn uniformly), else cross-lingual (query language != passage
language, drawn per row); no two rows of a batch share a parallel id (here: a query) or a document (positive or
hard negative). What differs is the state: the rows are not enumerated per language pair, the sampler picks a judged
row and a language pair and yields the dataset key that names both.

Global step s of epoch e takes the queries at positions [s G, (s + 1) G) of the epoch's permutation of the queries
(G = batch size x ranks; a query whose document is already in the batch is skipped for the next ones), one relevant
row of each, and the batch type, language and per-row language pairs, all drawn from generators seeded with
(seed, e, s). Every rank computes the same global batch and yields its slice, as accelerate expects (batch i to
rank i mod world size); a resumed run that skips the first k batches sees what an uninterrupted run saw after them.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from .base import HybridRulesBatchSampler
from .rows import SamplerDataError, check_streamed_feasible

if TYPE_CHECKING:
    from ..sources.streaming import StreamedRows

__all__ = ["StreamedHybridBatchSampler", "check_streamed_feasible"]


class StreamedHybridBatchSampler(HybridRulesBatchSampler):
    """Hybrid batches of keys of a streamed dataset (see the module docstring); the signature is the one
    sentence-transformers passes to a ``batch_sampler``, plus keyword-only ``rows``, ``alpha``, ``num_replicas``
    and ``batches_per_epoch`` (default: queries // global batch). ``generator`` and ``drop_last`` are ignored:
    every batch is full and a function of (seed, epoch, step)."""

    rows: StreamedRows

    def _index_rows(self, batches_per_epoch: int | None) -> int:
        rows = self.rows
        # Rows grouped by query: the parallel ids are drawn, then one relevant row of each.
        # int32 where it fits: these four arrays are the sampler's memory (16 bytes per judged pair).
        index_type = np.int32 if len(rows.queries) < 2**31 else np.int64
        order = np.argsort(rows.queries, kind="stable").astype(index_type)
        self._order = order
        codes, starts, counts = np.unique(rows.queries[order], return_index=True, return_counts=True)
        self.query_codes, self._starts, self._counts = codes, starts.astype(index_type), counts.astype(index_type)
        check_streamed_feasible(rows, self.alpha, self.batch_size, self.num_replicas)
        self._permutation: tuple[int, np.ndarray] | None = None
        return int(batches_per_epoch or max(1, len(self.query_codes) // self.global_batch_size))

    def _queries_of_epoch(self) -> np.ndarray:
        # One permutation per epoch (8 bytes per query), drawn from (seed, epoch) only.
        if self._permutation is None or self._permutation[0] != self.epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 0]))
            self._permutation = (self.epoch, rng.permutation(len(self.query_codes)).astype(self._order.dtype))
        return self._permutation[1]

    def batch_type(self, step: int) -> tuple[str, str | None]:
        """("monolingual", lang) or ("cross-lingual", None) of global step ``step`` of the current epoch."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 1, step]))
        monolingual = rng.random() < self.alpha
        lang = self.rows.languages[int(rng.integers(len(self.rows.languages)))]
        return ("monolingual", lang) if monolingual else ("cross-lingual", None)

    def global_batch(self, step: int) -> list[int]:
        """The keys of global step ``step`` of the current epoch (all ranks' rows, rank r's at [r*B, (r+1)*B))."""
        rows, size = self.rows, self.global_batch_size
        perm = self._queries_of_epoch()
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 2, step]))
        start = step * size
        picked: list[int] = []
        seen_docs: set[bytes] = set()
        for k in range(len(perm)):  # the step's slice of the epoch, then what follows it
            query = perm[(start + k) % len(perm)]
            # one relevant row of the query; a query whose documents are already in the batch waits
            index = int(self._order[self._starts[query] + int(rng.integers(self._counts[query]))])
            docs = {bytes(rows.docs[index])}
            if rows.negatives is not None:
                docs.add(bytes(rows.negatives[index]))
            if not seen_docs.isdisjoint(docs):
                continue
            seen_docs |= docs
            picked.append(index)
            if len(picked) == size:
                break
        if len(picked) < size:
            raise SamplerDataError(f"cannot fill a batch of {size}: too few judged queries with distinct documents; "
                                   "lower the batch size")
        index = np.array(picked)
        kind, lang = self.batch_type(step)
        num_langs = len(rows.languages)
        if kind == "monolingual":
            q = p = np.full(size, rows.languages.index(lang))
        else:
            q = rng.integers(num_langs, size=size)
            p = rng.integers(num_langs - 1, size=size)
            p = p + (p >= q)  # any language but the query's
        return rows.key(index, q, p).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.batches_per_epoch):
            batch = self.global_batch(step)
            for rank in range(self.num_replicas):
                yield batch[rank * self.batch_size : (rank + 1) * self.batch_size]
