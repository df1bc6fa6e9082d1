"""Pooled multi-positive batches: train for the multilingual pool itself.

In the multilingual setting a question's answer exists in every language of the pool and all of them must rank above
every other sentence. Hybrid batches show one positive per question, in one language. A pooled batch instead holds
whole parallel groups (one row per language: the question and its answer sentence in that language); every
translation of the answer is a positive of every translation of the question, and every sentence of the other groups,
in every language, is a negative.

- :class:`PooledBatchSampler`: whole groups per batch, never two groups that share a passage text (several questions
  can share one answer sentence: it would be a false negative), seeded by (seed, epoch), one global batch per step
  split into per-rank batches of whole groups, so every rank computes the same split without communicating.
- :class:`MultiPositiveRankingLoss`: InfoNCE with several positives per query (sentence-transformers has none): each
  positive is scored against the query's negatives only (other positives are not negatives), and the loss is the mean
  over positives of ``-log(exp(s_p) / (exp(s_p) + sum_n exp(s_n)))``. With one positive per query it is exactly
  MultipleNegativesRankingLoss. The ``label`` column holds each row's group code.
- :class:`CachedMultiPositiveRankingLoss`: the same loss with GradCache (sentence-transformers' ``CachedLossMixin``,
  the machinery of its CachedMultipleNegativesRankingLoss): texts are embedded in mini-batches, so a batch of many
  groups fits in memory; the loss and its gradients are those of the one-pass loss.
"""
from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from sentence_transformers.base.losses.gradcache import CachedLossMixin
from sentence_transformers.base.losses.merged_forward import embed_columns
from sentence_transformers.base.sampler import DefaultBatchSampler
from sentence_transformers.util import cos_sim
from torch import Tensor, nn

from ..errors import UserError

__all__ = ["CachedMultiPositiveRankingLoss", "MultiPositiveRankingLoss", "PooledBatchSampler", "PooledData",
           "PooledDataError"]

#: Groups set aside by one batch (too large for what is left, or sharing a passage) before it is closed as it is.
MAX_WAITING = 64


class PooledDataError(UserError, ValueError):
    """The parallel groups cannot fill the pooled batches asked for."""


class MultiPositiveRankingLoss(nn.Module):
    """InfoNCE over in-batch candidates where every candidate with the query's label is a positive (see the module
    docstring). Inputs: (anchor, positive) columns and a ``label`` column of group codes."""

    def __init__(self, model, scale: float = 20.0, similarity_fct=cos_sim):
        super().__init__()
        self.model = model
        self.scale = float(scale)
        self.similarity_fct = similarity_fct

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        embeddings = embed_columns(self.model, list(sentence_features))
        return self.compute_loss_from_embeddings(embeddings, labels)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        queries, candidates = embeddings[0], embeddings[1]
        scores = self.similarity_fct(queries, candidates) * self.scale  # (queries, candidates)
        labels = labels.to(scores.device).view(-1)
        positive = labels[:, None] == labels[None, :]
        # log of the sum over negatives, per query: every positive is set against the same negatives
        negatives_lse = torch.logsumexp(scores.masked_fill(positive, float("-inf")), dim=1, keepdim=True)
        # -log(e^s / (e^s + N)) = log(e^s + N) - s = logaddexp(s, log N) - s
        per_pair = torch.logaddexp(scores, negatives_lse) - scores
        per_query = (per_pair * positive).sum(1) / positive.sum(1)
        return per_query.mean()

    def get_config_dict(self) -> dict:
        return {"scale": self.scale, "similarity_fct": self.similarity_fct.__name__}


class CachedMultiPositiveRankingLoss(CachedLossMixin, MultiPositiveRankingLoss):
    """:class:`MultiPositiveRankingLoss` with gradient caching (GradCache, Gao et al. 2021): every column is embedded
    without a graph in mini-batches of ``mini_batch_size`` texts, the loss over the whole batch gives the gradients
    of the embeddings, and each mini-batch is embedded again with a graph to carry them into the model. Memory grows
    with the mini-batch, not the batch; the loss and gradients equal the one-pass loss's (dropout replayed)."""

    def __init__(self, model, scale: float = 20.0, similarity_fct=cos_sim, mini_batch_size: int = 32):
        super().__init__(model, scale=scale, similarity_fct=similarity_fct)
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be at least 1, got {mini_batch_size}")
        self.mini_batch_size = int(mini_batch_size)

    def forward(self, sentence_features, labels: Tensor) -> Tensor:
        return self.forward_cached(sentence_features, labels)

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        # The score matrix of a pooled batch (a few hundred rows) is small: the loss is computed in one piece.
        loss = self.compute_loss_from_embeddings([torch.cat(column) for column in reps], labels)
        if with_backward:
            loss.backward()
            loss = loss.detach()
        return loss

    def get_config_dict(self) -> dict:
        return {**super().get_config_dict(), "mini_batch_size": self.mini_batch_size}


class PooledBatchSampler(DefaultBatchSampler):
    """Batches of whole parallel groups (see the module docstring).

    ``groups``: per dataset row, its group code; ``passage_keys``: per row, a code of its passage text. A batch holds
    at most ``batch_size`` rows; groups are taken in a seeded order and a group that does not fit or shares a passage
    with the batch waits for the next one. An epoch shows every group about once.
    """

    def __init__(self, dataset, batch_size: int, drop_last: bool = False, valid_label_columns=None, generator=None,
                 seed: int = 0, *, groups: Sequence[int], passage_keys: Sequence[int], num_replicas: int = 1,
                 batches_per_epoch: int | None = None):
        super().__init__(dataset, batch_size=batch_size, drop_last=drop_last, valid_label_columns=valid_label_columns,
                         generator=generator, seed=seed)
        groups, passage_keys = np.asarray(groups), np.asarray(passage_keys)
        if len(groups) != len(dataset) or len(passage_keys) != len(dataset):
            raise ValueError("groups and passage_keys need one entry per dataset row")
        self.seed = int(seed or 0)
        self.num_replicas = int(num_replicas)
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
        full = max(1, int(len(self.group_rows) * mean_size // (batch_size * self.num_replicas)))
        self.batches_per_epoch = full if batches_per_epoch is None else max(1, min(full, int(batches_per_epoch)))

    def __len__(self) -> int:
        return self.batches_per_epoch * self.num_replicas

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


class PooledData:
    """The pooled datasets of a run: one row per (parallel group, language) with the question and its answer passage
    in that language, and the group's code as ``label``; the sampler registrations that batch them."""

    def __init__(self, train_groups, eval_groups=None):
        self.train_groups, self.eval_groups = train_groups, eval_groups

    @classmethod
    def of(cls, train_data, eval_data, candidate_text_mode: str, batch_size: int) -> PooledData:
        """Raises :class:`PooledDataError` when the training examples have no parallel groups or a group has more rows
        (languages) than a batch."""
        from .distillation import DistillationDataError, parallel_groups

        try:
            train_groups = parallel_groups(train_data.examples, candidate_text_mode)
        except DistillationDataError as e:
            raise PooledDataError(str(e).replace("parallel distillation", "pooled batching")) from None
        largest = max(Counter(train_groups.parallel_ids).values())
        if largest > batch_size:
            raise PooledDataError(f"a parallel group has {largest} rows (languages) but a pooled batch holds "
                                  f"{batch_size}: raise the batch size to at least {largest}")
        eval_groups = None
        if len(eval_data):
            try:
                eval_groups = parallel_groups(eval_data.examples, candidate_text_mode)
            except DistillationDataError:
                eval_groups = None
        return cls(train_groups, eval_groups)

    @staticmethod
    def dataset(groups):
        from datasets import Dataset

        from .sampler import _codes

        return Dataset.from_dict({"anchor": list(groups.questions), "positive": list(groups.passages),
                                  "label": _codes(groups.parallel_ids).tolist()})

    @staticmethod
    def register(factory, dataset, groups, world_size: int, **kwargs) -> None:
        from .sampler import _codes

        factory.register_sampler(dataset, PooledBatchSampler, groups=dataset["label"],
                                 passage_keys=_codes(groups.passages), num_replicas=world_size, **kwargs)
