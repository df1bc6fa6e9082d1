"""InfoNCE with the base distillation term (``distill_base_weight``): every text of every batch is pulled towards the
frozen starting model's embedding of the same text (a self-anchor against forgetting), as a cosine distance
(:mod:`pyterrier_hybrid.training.losses.teacher`).
"""
from __future__ import annotations

import torch
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    MultipleNegativesRankingLoss,
)
from torch import Tensor

from .teacher import TeacherTable, TeacherTerm

__all__ = ["DistilledCachedMNRL", "DistilledMNRL"]


class DistilledMNRL(MultipleNegativesRankingLoss):
    """InfoNCE (sentence-transformers' MultipleNegativesRankingLoss) plus ``weight`` x the cosine distance of every
    text's embedding to the frozen base model's embedding of it. The dataset's ``label`` column holds, per row, the
    teacher-table index of each text column; with weight 0 this is exactly MultipleNegativesRankingLoss."""

    def __init__(self, model, table: TeacherTable, weight: float, **kwargs):
        super().__init__(model, **kwargs)
        self.teacher = TeacherTerm(model, table, weight)

    def compute_loss_from_embeddings(self, embeddings: list[Tensor], labels: Tensor) -> Tensor:
        loss = super().compute_loss_from_embeddings(embeddings, labels)
        if self.teacher.weight == 0:
            return loss
        return loss + self.teacher(embeddings, labels)


class DistilledCachedMNRL(CachedMultipleNegativesRankingLoss):
    """The cached (GradCache) form of :class:`DistilledMNRL`: the term is added where the cached loss computes its
    value and the gradients it caches for the embeddings, so both terms reach the encoder through the same
    mini-batch re-forward."""

    def __init__(self, model, table: TeacherTable, weight: float, **kwargs):
        super().__init__(model, **kwargs)
        self.teacher = TeacherTerm(model, table, weight)

    def calculate_loss(self, reps: list[list[Tensor]], labels: Tensor | None = None, *,
                       with_backward: bool = False) -> Tensor:
        loss = super().calculate_loss(reps, labels, with_backward=with_backward)
        if self.teacher.weight == 0:
            return loss
        term = self.teacher([torch.cat(column) for column in reps], labels)
        if with_backward:
            term.backward()
            term = term.detach()
        return loss + term
