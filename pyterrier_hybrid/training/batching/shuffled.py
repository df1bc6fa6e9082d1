"""Batch samplers of multi-dataset training (one dataset per step), beside the hybrid one.

- :class:`ShuffledBatchSampler`: full batches of a dataset in a seeded order that depends only on (seed, epoch), so
  every rank draws the same global batches and a resumed run sees the batches an uninterrupted one would;
- :class:`StepRoundRobinBatchSampler`: takes its datasets in turn, one *global step* at a time.

Why not sentence-transformers' own ``RoundRobinBatchSampler``: it alternates single batches, and accelerate hands
batch i to rank ``i % world_size``; with several ranks the ranks would then train on different datasets in the same
step. Here each turn is ``num_replicas`` consecutive batches of one dataset (one per rank), as the hybrid sampler
yields them.
"""
from __future__ import annotations

from collections.abc import Iterator
from itertools import accumulate

import numpy as np
from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler

from .base import SeededBatchSampler

__all__ = ["ShuffledBatchSampler", "StepRoundRobinBatchSampler"]


class ShuffledBatchSampler(SeededBatchSampler):
    """Full batches of ``batch_size`` rows in an order drawn from (seed, epoch); ``num_replicas`` per-rank batches
    per global step. ``batches_per_epoch`` (global steps) defaults to every row once, the last partial step dropped.
    """

    def __init__(self, dataset, batch_size: int, drop_last: bool = True, valid_label_columns=None, generator=None,
                 seed: int = 0, *, num_replicas: int = 1, batches_per_epoch: int | None = None):
        super().__init__(dataset, batch_size, True, valid_label_columns, generator, seed, num_replicas=num_replicas)
        self.dataset = dataset  # BatchSampler keeps only its sampler (here the dataset itself)
        if len(dataset) < self.global_batch_size:
            raise ValueError(f"{len(dataset)} rows cannot fill one batch of {self.global_batch_size}")
        full = len(dataset) // self.global_batch_size
        self.batches_per_epoch = full if batches_per_epoch is None else max(1, min(full, int(batches_per_epoch)))

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.dataset))
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield order[start:start + self.batch_size].tolist()


class StepRoundRobinBatchSampler(MultiDatasetDefaultBatchSampler):
    """The datasets in turn, ``num_replicas`` batches (one global step) at a time, until one sampler is exhausted."""

    def __init__(self, dataset, batch_samplers, generator=None, seed: int = 0, *, num_replicas: int = 1):
        super().__init__(dataset, batch_samplers=batch_samplers, generator=generator, seed=seed)
        self.num_replicas = int(num_replicas)

    def __iter__(self) -> Iterator[list[int]]:
        offsets = [0] + list(accumulate(len(d) for d in self.dataset.datasets))
        iterators = [iter(sampler) for sampler in self.batch_samplers]
        for _ in range(self._steps()):
            for offset, iterator in zip(offsets, iterators):
                for _ in range(self.num_replicas):
                    yield [index + offset for index in next(iterator)]

    def _steps(self) -> int:
        return min(len(sampler) // self.num_replicas for sampler in self.batch_samplers)

    def __len__(self) -> int:
        return self._steps() * self.num_replicas * len(self.batch_samplers)
