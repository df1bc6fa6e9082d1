"""The hybrid batch sampler (arXiv 2408.10536): every batch is monolingual with probability ``alpha``, else
cross-lingual, and never holds two translations of the same example.

It plugs into sentence-transformers as ``SentenceTransformerTrainingArguments(batch_sampler=...)``. The dataset
given to the trainer has one row per :class:`~pyterrier_hybrid.datasets.parallel.ParallelExample` and only the
text columns the loss reads (anchor, positive[, negative]): sentence-transformers feeds every non-label column to
the loss, so the languages and parallel ids of the rows live here, in :class:`ParallelRows`, indexed by row.

Batch composition
    - monolingual batch: one language drawn uniformly among the languages that have monolingual examples; every
      pair has its query and passage in that language;
    - cross-lingual batch: every pair has query language != passage language; for each parallel id drawn, its
      language pair is drawn uniformly among the cross-lingual rows available for that id;
    - no two rows of a batch share a parallel id (their passages are translations of each other, so one would be a
      false in-batch negative for the other), a query text, or a passage text (positive or hard negative).

Epoch
    One epoch is ``floor(P / (batch_size * world_size))`` global steps, P the number of distinct parallel ids: the
    number of steps it takes to show each parallel id once if every batch held distinct ids. Each pool (the
    monolingual rows of one language; the parallel ids having cross-lingual rows) is a queue shuffled at the start
    of the epoch and drawn without replacement, reshuffled when exhausted, so rows are covered evenly. The batches
    of an epoch are a pure function of (seed, epoch): ``set_epoch`` changes them, and a resumed run that skips the
    first k batches of an epoch sees exactly the batches an uninterrupted run would have seen after them.

Distributed training
    accelerate (used by the transformers Trainer) gives consecutive batches of the sampler to the ranks in turn
    (``BatchSamplerShard``, batch i to rank ``i % world_size``). The sampler therefore draws one *global* batch of
    ``batch_size * world_size`` rows per step (one batch type, one language, distinct parallel ids and texts across
    all ranks, which also suits ``gather_across_devices``) and yields it as ``world_size`` consecutive per-rank
    batches. Every rank builds the same sampler from the same seed, so all ranks agree without communicating.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator

import numpy as np

from .base import HybridRulesBatchSampler
from .rows import ParallelRows, SamplerDataError, check_feasible, text_codes

logger = logging.getLogger(__name__)

__all__ = ["HybridBatchSampler", "ParallelRows", "SamplerDataError", "check_feasible", "text_codes"]


class _Pool:
    """A queue of items drawn without replacement, reshuffled when exhausted; items deferred by a batch (they
    conflicted with it) go back to the front so that they are drawn first by the next batch."""

    def __init__(self, name: str, items: np.ndarray, rng: np.random.Generator):
        self.name = name
        self.items = items
        self.rng = rng
        self.queue: deque[int] = deque()

    def pop(self, deferred: list[int]) -> int | None:
        """The next item, or None when every item is deferred by the current batch."""
        if not self.queue:
            # A refill during a batch must not hand out again what that batch already deferred (those go back to
            # the front afterwards), or they would appear twice in the queue.
            skip = set(deferred)
            self.queue.extend(int(i) for i in self.rng.permutation(self.items) if int(i) not in skip)
            if not self.queue:
                return None
        return self.queue.popleft()

    def give_back(self, deferred: list[int]) -> None:
        self.queue.extendleft(reversed(deferred))


class HybridBatchSampler(HybridRulesBatchSampler):
    """Batches of row indices following the hybrid batch recipe (see the module docstring).

    The signature matches what sentence-transformers passes to a ``batch_sampler`` (dataset, batch_size, drop_last,
    valid_label_columns, generator, seed) plus keyword-only ``rows`` (the per-row metadata), ``alpha`` (probability
    of a monolingual batch), ``num_replicas`` (ranks; default: the torch.distributed world size) and
    ``batches_per_epoch`` (global steps per epoch; default ``P // (batch_size * num_replicas)``).

    ``generator`` is ignored: batches are derived from ``(seed, epoch)`` alone so that they can be reproduced
    after a restart. ``drop_last`` is ignored too: every batch is full.
    """

    rows: ParallelRows

    def _index_rows(self, batches_per_epoch: int | None) -> int:
        rows = self.rows
        mono = rows.query_langs == rows.passage_langs
        self.languages: tuple[str, ...] = tuple(sorted(set(rows.query_langs[mono].tolist())))
        self.monolingual_rows: dict[str, np.ndarray] = {
            lang: np.flatnonzero(mono & (rows.query_langs == lang)) for lang in self.languages
        }
        cross = np.flatnonzero(~mono)
        order = np.argsort(rows.parallel_ids[cross], kind="stable")
        cross_sorted = cross[order]
        cross_ids, starts = np.unique(rows.parallel_ids[cross_sorted], return_index=True)
        self.cross_parallel_ids: np.ndarray = cross_ids
        self.cross_rows: dict[int, np.ndarray] = {
            int(pid): rows_of_pid for pid, rows_of_pid in zip(cross_ids, np.split(cross_sorted, starts[1:]))
        }
        self._check_feasible()

        num_parallel_ids = len(np.unique(rows.parallel_ids))
        if batches_per_epoch is None:
            batches_per_epoch = max(1, num_parallel_ids // self.global_batch_size)
        if batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be at least 1, got {batches_per_epoch}")
        return int(batches_per_epoch)

    def _check_feasible(self) -> None:
        check_feasible(self.rows, self.alpha, self.batch_size, self.num_replicas)

    def batch_plan(self) -> Iterator[tuple[str, str | None]]:
        """The (batch type, language) of each global step of the current epoch: ("monolingual", lang) or
        ("cross-lingual", None). Depends only on (seed, epoch, alpha, languages)."""
        type_rng, _ = self._rngs()
        for _ in range(self.batches_per_epoch):
            yield self._draw_type(type_rng)

    def _rngs(self) -> tuple[np.random.Generator, np.random.Generator]:
        # Two independent streams: the sequence of batch types does not depend on how the pools are drawn.
        type_seq, pool_seq = np.random.SeedSequence([self.seed, self.epoch]).spawn(2)
        return np.random.default_rng(type_seq), np.random.default_rng(pool_seq)

    def _draw_type(self, type_rng: np.random.Generator) -> tuple[str, str | None]:
        # Both draws happen at every step, so the language sequence does not shift with the batch types.
        monolingual = type_rng.random() < self.alpha
        lang_index = int(type_rng.integers(len(self.languages))) if self.languages else 0
        if monolingual:
            return "monolingual", self.languages[lang_index]
        return "cross-lingual", None

    def __iter__(self) -> Iterator[list[int]]:
        type_rng, pool_rng = self._rngs()
        pools: dict[str | None, _Pool] = {}
        for _ in range(self.batches_per_epoch):
            kind, lang = self._draw_type(type_rng)
            if lang not in pools:
                if kind == "monolingual":
                    pools[lang] = _Pool(f"monolingual {lang!r} examples", self.monolingual_rows[lang], pool_rng)
                else:
                    pools[lang] = _Pool("cross-lingual parallel ids", self.cross_parallel_ids, pool_rng)
            global_batch = self._fill(pools[lang], cross=kind == "cross-lingual", rng=pool_rng)
            for rank in range(self.num_replicas):
                yield global_batch[rank * self.batch_size : (rank + 1) * self.batch_size]

    def _fill(self, pool: _Pool, cross: bool, rng: np.random.Generator) -> list[int]:
        rows = self.rows
        batch: list[int] = []
        seen_ids: set[int] = set()
        seen_queries: set[int] = set()
        seen_passages: set[int] = set()
        deferred: list[int] = []
        misses = 0
        max_misses = 2 * len(pool.items) + self.global_batch_size
        while len(batch) < self.global_batch_size:
            item = pool.pop(deferred)
            if item is None or misses > max_misses:
                raise SamplerDataError(
                    f"cannot fill a batch of {self.global_batch_size} from the {pool.name}: too few of them "
                    "have distinct parallel ids, query texts and passage texts; lower the batch size"
                )
            if cross:
                candidates = self.cross_rows[item]
                row = int(candidates[rng.integers(len(candidates))])
            else:
                row = item
            passage_keys = rows.passage_keys[row]
            if (
                int(rows.parallel_ids[row]) in seen_ids
                or int(rows.query_keys[row]) in seen_queries
                or not seen_passages.isdisjoint(passage_keys)
            ):
                deferred.append(item)
                misses += 1
                continue
            misses = 0
            batch.append(row)
            seen_ids.add(int(rows.parallel_ids[row]))
            seen_queries.add(int(rows.query_keys[row]))
            seen_passages.update(passage_keys)
        pool.give_back(deferred)
        return batch
