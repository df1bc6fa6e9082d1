"""Pooled batches: whole parallel groups (one row per language: the question and its answer sentence in that
language) per batch, for the multi-positive loss (:mod:`pyterrier_hybrid.training.losses.multi_positive`).

:class:`PooledBatchSampler` never puts two groups that share a passage text in one batch (several questions can share
one answer sentence: it would be a false negative); it is seeded by (seed, epoch) and draws one global batch per step
split into per-rank batches of whole groups, so every rank computes the same split without communicating.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

import numpy as np

from .base import SeededBatchSampler
from .rows import PooledDataError

__all__ = ["MAX_WAITING", "PooledBatchSampler", "PooledDataError"]

#: Groups set aside by one batch (too large for what is left, or sharing a passage) before it is closed as it is.
MAX_WAITING = 64


class PooledBatchSampler(SeededBatchSampler):
    """Batches of whole parallel groups (see the module docstring).

    ``groups``: per dataset row, its group code; ``passage_keys``: per row, a code of its passage text. A batch holds
    at most ``batch_size`` rows; groups are taken in a seeded order and a group that does not fit or shares a passage
    with the batch waits for the next one. An epoch shows every group about once.
    """

    def __init__(self, dataset, batch_size: int, drop_last: bool = False, valid_label_columns=None, generator=None,
                 seed: int = 0, *, groups: Sequence[int], passage_keys: Sequence[int], num_replicas: int = 1,
                 batches_per_epoch: int | None = None):
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed,
                         num_replicas=num_replicas)
        groups, passage_keys = np.asarray(groups), np.asarray(passage_keys)
        if len(groups) != len(dataset) or len(passage_keys) != len(dataset):
            raise ValueError("groups and passage_keys need one entry per dataset row")
        order = np.argsort(groups, kind="stable")
        codes, starts = np.unique(groups[order], return_index=True)
        self.group_rows = [rows for rows in np.split(order, starts[1:])]
        self.group_passages = [set(passage_keys[rows].tolist()) for rows in self.group_rows]
        largest = max(len(rows) for rows in self.group_rows)
        if largest > batch_size:
            raise PooledDataError(f"a parallel group has {largest} rows (languages) but a pooled batch holds "
                                  f"{batch_size}: raise the batch size to at least {largest}")
        self.smallest_group = min(len(rows) for rows in self.group_rows)
        mean_size = float(np.mean([len(rows) for rows in self.group_rows]))
        full = max(1, int(len(self.group_rows) * mean_size // self.global_batch_size))
        self.batches_per_epoch = full if batches_per_epoch is None else max(1, min(full, int(batches_per_epoch)))

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        queue = deque(int(g) for g in rng.permutation(len(self.group_rows)))
        for _ in range(self.batches_per_epoch):
            for _ in range(self.num_replicas):
                yield self._fill(queue, rng)

    def _fill(self, queue: deque, rng: np.random.Generator) -> list[int]:
        batch: list[int] = []
        taken: set[int] = set()
        passages: set[int] = set()
        waiting: list[int] = []
        while len(batch) + self.smallest_group <= self.batch_size and len(waiting) <= MAX_WAITING:
            if not queue:  # the epoch's order is used up: a fresh shuffle, as the hybrid sampler's pools do
                skip = taken | set(waiting)
                queue.extend(int(g) for g in rng.permutation(len(self.group_rows)) if int(g) not in skip)
                if not queue:
                    break
            group = queue.popleft()
            rows = self.group_rows[group]
            if len(batch) + len(rows) > self.batch_size or not passages.isdisjoint(self.group_passages[group]):
                waiting.append(group)
                continue
            batch += rows.tolist()
            taken.add(group)
            passages |= self.group_passages[group]
        queue.extendleft(reversed(waiting))  # first in the next batch
        if not batch:
            raise PooledDataError("no parallel group fits a pooled batch")
        return batch
